//! What a call did, as values: how it reached its nodes ([`Mode`], and why, [`ModeReason`]),
//! what the caller should know ([`Warning`]), its statistics ([`Stats`]), and the collected
//! outcome ([`CallResult`]) with every node's [`NodeOutcome`] and the agent's aggregates.
//!
//! Reasons and warnings are enums a program can branch on; their `Display` is the sentence the
//! command line prints. A node that did not answer is a row in the statistics, not an error.
//!
//! The JSON shapes of a reply ([`reply_json`]) and of a whole result ([`CallResult::to_json`],
//! what `mco rpc --json-full` prints and the web gateway answers) are defined here, once.
//!
//! Not for: producing them (the call, its plan and its replies do).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use mco_ddl::AggregateResult;
use mco_discovery::method::MethodKind;
use mco_spec::Reply;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use crate::ddl::ActionDdl;

/// How a call reached its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One publish on the agent's broadcast subject; nodes apply the filter.
    Broadcast,
    /// One request per node on its direct subject.
    Direct,
}

/// Why a call went the way it did ([`Stats::mode_reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModeReason {
    /// The call named its nodes ([`crate::Call::nodes`]).
    NodesGiven,
    /// The filter was nothing but plain identities (`-I name`): no discovery.
    IdentitiesNamed,
    /// A discovery method that reads a node list gave the nodes.
    NodeList(MethodKind),
    /// Broadcast discovery found at most the direct-addressing threshold.
    FewDiscovered {
        /// Nodes found.
        found: usize,
        /// The threshold.
        threshold: usize,
    },
    /// Broadcast discovery found more: one broadcast carries the filter.
    ManyDiscovered {
        /// Nodes found.
        found: usize,
        /// The threshold.
        threshold: usize,
    },
    /// A limit chose part of the nodes.
    Limited {
        /// Nodes chosen.
        chosen: usize,
        /// Nodes there were.
        of: usize,
    },
    /// Batching sends direct requests in slices.
    Batching,
}

impl fmt::Display for ModeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeReason::NodesGiven => f.write_str("the node list was given"),
            ModeReason::IdentitiesNamed => f.write_str("-I named the nodes"),
            ModeReason::NodeList(method) => {
                write!(f, "the {} discovery method gave the node list", method.name())
            }
            ModeReason::FewDiscovered { found, threshold } => write!(
                f,
                "broadcast discovery found {found} node(s), at most direct_addressing_threshold ({threshold})"
            ),
            ModeReason::ManyDiscovered { found, threshold } => write!(
                f,
                "broadcast discovery found {found} nodes, more than direct_addressing_threshold ({threshold}): one broadcast with the filter"
            ),
            ModeReason::Limited { chosen, of } => {
                write!(f, "--limit-nodes chose {chosen} of {of} nodes")
            }
            ModeReason::Batching => f.write_str("batching sends direct requests in slices"),
        }
    }
}

/// Something the caller should know about a call ([`Stats::warnings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Direct requests are not queued in JetStream: nodes that are down now will not get
    /// them.
    NotQueued {
        /// Why (no JetStream, turned off).
        reason: String,
    },
    /// The request's TTL is shorter than the batched run may take.
    ShortTtl {
        /// The TTL, seconds.
        ttl: u64,
        /// How long the run may take, seconds.
        run: u64,
    },
    /// The call stopped early (the next slice could not be sent).
    Stopped {
        /// Why.
        reason: String,
    },
    /// Nodes refused because their clock and this machine's differ by more than they allow
    /// (their `clock_skew_seconds`): they will not act on requests from here until one of
    /// the clocks is fixed.
    ClockSkew {
        /// The nodes, sorted.
        nodes: Vec<String>,
    },
}

impl Warning {
    /// The warning that `nodes` (sorted) refused for clock trouble, if there are any.
    pub fn clock_skew(nodes: &[String]) -> Option<Warning> {
        (!nodes.is_empty()).then(|| Warning::ClockSkew {
            nodes: nodes.to_vec(),
        })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NotQueued { reason } => write!(
                f,
                "direct requests are not queued ({reason}): nodes that are down now will not get them"
            ),
            Warning::ShortTtl { ttl, run } => write!(
                f,
                "the TTL of {ttl} s is shorter than the batched run may take ({run} s): nodes in late batches may refuse the request as expired"
            ),
            Warning::Stopped { reason } => write!(f, "stopped: {reason}"),
            Warning::ClockSkew { nodes } => write!(
                f,
                "{} refused: their clocks differ from this machine's by more than they allow: {}",
                match nodes.len() {
                    1 => "1 node".to_string(),
                    n => format!("{n} nodes"),
                },
                nodes.join(", ")
            ),
        }
    }
}

/// What happened in a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// How the call was sent (`None` if nothing was sent).
    pub mode: Option<Mode>,
    /// Why that mode.
    #[serde(serialize_with = "as_text")]
    pub mode_reason: Option<ModeReason>,
    /// The discovery method used, if discovery happened.
    #[serde(serialize_with = "method_name")]
    pub discovery_method: Option<MethodKind>,
    /// Nodes the call was for (discovered, or named, after any limit).
    pub discovered: usize,
    /// Nodes that answered.
    pub responded: usize,
    /// Replies with status 0.
    pub ok: usize,
    /// Replies with another status.
    pub failed: usize,
    /// Nodes that did not answer, sorted: those sent a request, and those the discovery
    /// expected ([`Stats::discovery_missing`]).
    pub no_response_from: Vec<String>,
    /// Nodes a broadcast discovery expected (from the registry or the discovery cache) that
    /// did not answer it, sorted; never sent the request, and also in
    /// [`Stats::no_response_from`].
    pub discovery_missing: Vec<String>,
    /// Why a broadcast discovery ended.
    #[serde(serialize_with = "as_text")]
    pub discovery_end: Option<crate::discovery::DiscoveryEnding>,
    /// Nodes that answered without being expected, sorted.
    pub unexpected_from: Vec<String>,
    /// Nodes never sent the request because the call was stopped between batches, sorted.
    pub not_contacted: Vec<String>,
    /// Nodes whose direct request the broker refused to queue, with why.
    pub send_failures: Vec<(String, String)>,
    /// Nodes that refused the call, or its discovery, for clock trouble ([`clock_offset`]),
    /// sorted: [`Stats::clock_warning`] says so in words.
    pub clock_refused: Vec<String>,
    /// Whether direct requests were queued in JetStream (`None` for a broadcast).
    pub queued: Option<bool>,
    /// Slices sent (1 without batching).
    pub batches: usize,
    /// Slices the call will send (1 unless batching; 0 when there is nobody to send to).
    pub batches_planned: usize,
    /// Things the caller should know.
    #[serde(serialize_with = "all_as_text")]
    pub warnings: Vec<Warning>,
    /// Time spent discovering.
    pub discovery_time: Duration,
    /// Time from publishing to the last reply (or the timeout).
    pub elapsed: Duration,
    /// Messages on the reply subject that were not valid replies to this request.
    pub dropped: usize,
    /// Replies whose signature or token did not verify (ignored).
    pub forged: usize,
}

impl Stats {
    /// The warning about [`Stats::clock_refused`], if any node refused for clock trouble.
    pub fn clock_warning(&self) -> Option<Warning> {
        Warning::clock_skew(&self.clock_refused)
    }

    /// Notes `reply`'s sender in [`Stats::clock_refused`] if it is a refusal for clock
    /// trouble.
    pub(crate) fn note_clock_refusal(&mut self, reply: &Reply) {
        if clock_offset(reply).is_some() {
            note_sorted(&mut self.clock_refused, &reply.sender);
        }
    }
}

/// Adds `name` to the sorted list `names` unless it is there.
pub(crate) fn note_sorted(names: &mut Vec<String>, name: &str) {
    if let Err(at) = names.binary_search_by(|n| n.as_str().cmp(name)) {
        names.insert(at, name.to_string());
    }
}

/// If `reply` is a node's refusal for clock trouble, the node's clock minus the request's
/// time in seconds, as the node reported it (`mco_spec::message::CLOCK_OFFSET_FIELD`).
pub fn clock_offset(reply: &Reply) -> Option<i64> {
    if reply.statuscode.is_ok() {
        return None;
    }
    reply
        .data
        .get(mco_spec::message::CLOCK_OFFSET_FIELD)?
        .as_i64()
}

fn method_name<S: Serializer>(m: &Option<MethodKind>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.name()),
        None => s.serialize_none(),
    }
}

fn as_text<S: Serializer, T: fmt::Display>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

fn all_as_text<S: Serializer, T: fmt::Display>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(ToString::to_string))
}

/// Replies with their statistics.
#[derive(Debug, Clone, Default)]
pub struct CallResult {
    /// Every reply, in arrival order, output defaults filled in where the agent has a DDL.
    pub replies: Vec<Reply>,
    /// Every node the call was for, sorted.
    pub nodes: Vec<String>,
    /// What happened.
    pub stats: Stats,
    /// The action's DDL, when the client has one.
    pub(crate) action: Option<ActionDdl>,
    /// The aggregates plugins computed ([`CallResult::run_aggregate_plugins`]).
    pub(crate) plugin_aggregates: Vec<AggregateResult>,
}

/// What became of one node of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeOutcome<'a> {
    /// It answered (look at the status code).
    Replied(&'a Reply),
    /// It was sent the request and did not answer in time.
    NoResponse,
    /// The call was stopped before its batch.
    NotContacted,
}

impl CallResult {
    /// Each node the call was for, with its reply or why there is none: a caller can act on
    /// every host it named.
    pub fn by_node(&self) -> BTreeMap<&str, NodeOutcome<'_>> {
        let replies: BTreeMap<&str, &Reply> = self
            .replies
            .iter()
            .map(|r| (r.sender.as_str(), r))
            .collect();
        let not_contacted: HashSet<&str> = self
            .stats
            .not_contacted
            .iter()
            .map(String::as_str)
            .collect();
        self.nodes
            .iter()
            .map(|n| {
                let outcome = match replies.get(n.as_str()) {
                    Some(r) => NodeOutcome::Replied(r),
                    None if not_contacted.contains(n.as_str()) => NodeOutcome::NotContacted,
                    None => NodeOutcome::NoResponse,
                };
                (n.as_str(), outcome)
            })
            .collect()
    }

    /// The summaries the action's DDL declares (`summarize`, `average`, ...) over the
    /// successful replies; none when the client has no DDL for the agent.
    /// Aggregate plugins' results come after the built-in ones, once computed by
    /// [`CallResult::run_aggregate_plugins`] ([`crate::Replies::collect`] does).
    pub fn aggregates(&self) -> Vec<AggregateResult> {
        let mut aggregates = match &self.action {
            Some(action) => action.aggregates(&self.replies),
            None => Vec::new(),
        };
        aggregates.extend(self.plugin_aggregates.iter().cloned());
        aggregates
    }

    /// Runs the aggregate plugins the action's DDL names over the replies, for
    /// [`CallResult::aggregates`]; a result made with [`crate::Replies::result`] needs it once.
    pub async fn run_aggregate_plugins(&mut self) {
        if let Some(action) = &self.action {
            self.plugin_aggregates = action.plugin_aggregates(&self.replies).await;
        }
    }

    /// The action's DDL, when the client has one (for display rules and labels).
    pub fn action_ddl(&self) -> Option<&ActionDdl> {
        self.action.as_ref()
    }

    /// The result as `mco rpc --json-full` prints it: `replies` ([`reply_json`], in this
    /// result's order), `aggregates` and `stats` ([`stats_json`]).
    pub fn to_json(&self) -> Value {
        json!({
            "replies": self.replies.iter().map(reply_json).collect::<Vec<_>>(),
            "aggregates": self.aggregates(),
            "stats": stats_json(&self.stats),
        })
    }
}

/// A reply as `mco rpc -j` prints it: `{sender, agent, action, statuscode, statusmsg, data}`.
pub fn reply_json(reply: &Reply) -> Value {
    json!({"sender": reply.sender, "agent": reply.agent, "action": reply.action,
           "statuscode": reply.statuscode.code(), "statusmsg": reply.statusmsg, "data": reply.data})
}

/// The statistics as `mco rpc --json-full` prints them (times in milliseconds).
pub fn stats_json(stats: &Stats) -> Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    json!({
        "discovered": stats.discovered,
        "responded": stats.responded,
        "ok": stats.ok,
        "failed": stats.failed,
        "no_response_from": stats.no_response_from,
        "unexpected_from": stats.unexpected_from,
        "clock_refused": stats.clock_refused,
        "discovery_time_ms": ms(stats.discovery_time),
        "elapsed_ms": ms(stats.elapsed),
        "forged": stats.forged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_node_names_every_node() {
        let reply = Reply {
            request_id: "r".into(),
            sender: "a".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 0,
            statuscode: mco_spec::StatusCode::Ok,
            statusmsg: "OK".into(),
            data: serde_json::Value::Null,
        };
        let result = CallResult {
            replies: vec![reply.clone()],
            nodes: vec!["a".into(), "b".into(), "c".into()],
            stats: Stats {
                not_contacted: vec!["c".into()],
                ..Stats::default()
            },
            action: None,
            plugin_aggregates: Vec::new(),
        };
        let by_node = result.by_node();
        assert_eq!(by_node["a"], NodeOutcome::Replied(&reply));
        assert_eq!(by_node["b"], NodeOutcome::NoResponse);
        assert_eq!(by_node["c"], NodeOutcome::NotContacted);
    }

    #[test]
    fn clock_refusals_are_told_apart_and_named() {
        let reply = |sender: &str, status, data| Reply {
            request_id: "r".into(),
            sender: sender.into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 0,
            statuscode: status,
            statusmsg: "refused".into(),
            data,
        };
        let offset = json!({mco_spec::message::CLOCK_OFFSET_FIELD: -600});
        let mut stats = Stats::default();
        for r in [
            reply("b", mco_spec::StatusCode::Aborted, offset.clone()),
            reply("a", mco_spec::StatusCode::Aborted, offset.clone()),
            reply("b", mco_spec::StatusCode::Aborted, offset.clone()),
            // Only a refusal counts, and only one that says so.
            reply("c", mco_spec::StatusCode::Ok, offset.clone()),
            reply("d", mco_spec::StatusCode::Aborted, json!({})),
        ] {
            stats.note_clock_refusal(&r);
        }
        assert_eq!(stats.clock_refused, ["a", "b"]);
        assert_eq!(
            stats.clock_warning().unwrap().to_string(),
            "2 nodes refused: their clocks differ from this machine's by more than they allow: a, b"
        );
        assert_eq!(Stats::default().clock_warning(), None);
    }

    #[test]
    fn reasons_and_warnings_read_as_the_command_line_prints_them() {
        assert_eq!(
            ModeReason::FewDiscovered {
                found: 2,
                threshold: 10
            }
            .to_string(),
            "broadcast discovery found 2 node(s), at most direct_addressing_threshold (10)"
        );
        let stats = Stats {
            mode_reason: Some(ModeReason::Batching),
            warnings: vec![Warning::ShortTtl { ttl: 30, run: 55 }],
            ..Stats::default()
        };
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(
            json["mode_reason"],
            "batching sends direct requests in slices"
        );
        assert!(json["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("the TTL of 30 s is shorter"));
    }
}
