//! Refusals as values: every way the pipeline refuses a message is a [`Rejection`] of a
//! [`RejectionKind`], and [`Node::refuse`] is the one place that counts it, logs it, audits
//! it and, where the caller should hear about it, builds the reply.
//!
//! Each kind says which `daemon_stats` counter it bumps, how loudly it is logged, whether it
//! is audited and whether the caller gets a reply. Warnings and audit lines pass the node's
//! [`crate::audit::RefusalGate`] first, so a flood of junk is counted in full but logged and
//! audited at a bounded rate, in bounded form.
//!
//! Not for: deciding whether to refuse (the pipeline's admission step does).

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use mco_agents::Outcome;
use mco_spec::message::{now_millis, CLOCK_OFFSET_FIELD};
use mco_spec::Request;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::audit::{Claimed, Gate, Refusal};
use crate::node::Node;
use crate::pipeline::{Outgoing, NOT_AUTHORIZED};
use crate::stats::Stats;

/// Which stage refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Not a well-formed request envelope or request.
    Malformed,
    /// The token or the signature does not verify.
    Unverified,
    /// The token does not speak for the request's caller, agent or collective.
    Unauthorized,
    /// Received in another collective than it names.
    WrongCollective,
    /// Clock trouble: the request's time and this node's clock differ by more than
    /// `clock_skew_seconds` allows ([`crate::pipeline::timeliness`]). Logged as a warning;
    /// the caller hears why only when the request is for this node, and only ever on its own
    /// reply subject (`check_reply_to` held when it parsed, and a replayed old request gets
    /// nothing else), so a node whose clock is off says so rather than falling silent.
    ClockSkew {
        /// This node's clock minus the request's time, in seconds, rounded.
        offset_secs: i64,
        /// Whether its targets prove, or its filter selects, this node.
        for_this_node: bool,
    },
    /// Its TTL (or the node's TTL cap) has passed.
    Expired,
    /// A targeted request whose copy does not prove this node is a target.
    NotTargeted,
    /// A filter this node cannot evaluate (bad syntax, over the limits).
    BadFilter,
    /// A broadcast whose filter does not select this node: ignored silently.
    NotSelected,
    /// The action policy denies it.
    Denied,
    /// Its id was seen before.
    Replayed,
    /// The replay memory has no room for it (the caller's share, or all of it).
    Throttled,
}

/// How a refusal is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loudness {
    Debug,
    Info,
    Warn,
}

impl RejectionKind {
    /// The `daemon_stats` counter this kind bumps.
    fn counter(self, stats: &Stats) -> &AtomicU64 {
        match self {
            RejectionKind::Malformed
            | RejectionKind::Unverified
            | RejectionKind::Unauthorized
            | RejectionKind::WrongCollective
            | RejectionKind::NotTargeted
            | RejectionKind::BadFilter => &stats.unvalidated,
            RejectionKind::Expired => &stats.ttlexpired,
            RejectionKind::ClockSkew { .. } => &stats.clockskew,
            RejectionKind::NotSelected => &stats.filtered,
            RejectionKind::Denied => &stats.denied,
            RejectionKind::Replayed => &stats.replayed,
            RejectionKind::Throttled => &stats.throttled,
        }
    }

    fn loudness(self) -> Loudness {
        match self {
            RejectionKind::NotSelected => Loudness::Debug,
            RejectionKind::Expired => Loudness::Info,
            _ => Loudness::Warn,
        }
    }

    /// Whether the refusal is written to the audit log: everything but a broadcast that
    /// was simply not for this node.
    fn audited(self) -> bool {
        self != RejectionKind::NotSelected
    }
}

/// A message the pipeline will not act on, and why. It borrows from the message's bytes.
#[derive(Debug)]
pub struct Rejection<'a> {
    /// Which stage refused it.
    pub kind: RejectionKind,
    /// Why, in words for the log and the audit line (a fixed text where it can be: a node
    /// refuses most broadcasts, as not for it, and that must cost no allocation).
    pub reason: Cow<'static, str>,
    /// The request, when it was parsed; otherwise what the message claims.
    pub subject: Subject<'a>,
}

/// What a rejection is about.
#[derive(Debug)]
pub enum Subject<'a> {
    /// A request that parsed (its fields are still the sender's claims unless verified).
    Request(Box<Request<'a>>),
    /// A message that did not parse as a request, or did not verify: its inner message, if
    /// it had one, read for what it claims only when the refusal is written down (a flood
    /// of junk is counted without parsing it twice).
    Unparsed(Option<Cow<'a, RawValue>>),
}

/// The identifying fields of a message that did not verify or parse, read leniently for the
/// record only.
#[derive(Debug, Default, Deserialize)]
struct ClaimedFields {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    caller: Value,
    #[serde(default)]
    sender: Value,
    #[serde(default)]
    agent: Value,
    #[serde(default)]
    action: Value,
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

impl<'a> Rejection<'a> {
    /// A rejection of a parsed request.
    pub fn of(
        kind: RejectionKind,
        request: Request<'a>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Rejection<'a> {
        Rejection {
            kind,
            reason: reason.into(),
            subject: Subject::Request(Box::new(request)),
        }
    }

    /// A rejection of a message that did not parse as a request (or did not verify), with
    /// its inner message `body` if it had one.
    pub fn unparsed(
        kind: RejectionKind,
        body: Option<Cow<'a, RawValue>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Rejection<'a> {
        Rejection {
            kind,
            reason: reason.into(),
            subject: Subject::Unparsed(body),
        }
    }

    /// The request id, as far as it is known without parsing anything.
    fn id(&self) -> &str {
        match &self.subject {
            Subject::Request(r) => &r.id,
            Subject::Unparsed(_) => "",
        }
    }

    /// The refusal line of this rejection of a message of `size` bytes at `time`.
    fn refusal(&self, size: usize, time: u64) -> Refusal {
        match &self.subject {
            Subject::Request(r) => {
                let claimed = Claimed {
                    request_id: &r.id,
                    caller: &r.caller,
                    sender: &r.sender,
                    agent: &r.agent,
                    action: &r.action,
                };
                Refusal::new(&claimed, size, &self.reason, time)
            }
            Subject::Unparsed(body) => {
                let fields: ClaimedFields = body
                    .as_ref()
                    .and_then(|b| serde_json::from_str(b.get()).ok())
                    .unwrap_or_default();
                let claimed = Claimed {
                    request_id: text(&fields.id),
                    caller: text(&fields.caller),
                    sender: text(&fields.sender),
                    agent: text(&fields.agent),
                    action: text(&fields.action),
                };
                Refusal::new(&claimed, size, &self.reason, time)
            }
        }
    }
}

impl Node {
    /// Counts, logs (rate-limited) and audits (rate-limited, bounded) a refusal of a
    /// message of `size` bytes received in `collective`; returns the reply the caller gets,
    /// if this kind of refusal gets one.
    pub fn refuse(
        &self,
        rejection: Rejection<'_>,
        collective: &str,
        size: usize,
    ) -> Option<Outgoing> {
        Stats::bump(rejection.kind.counter(&self.stats));
        let loudness = rejection.kind.loudness();
        if loudness == Loudness::Debug {
            tracing::debug!(id = %rejection.id(), "{}", rejection.reason);
        } else {
            let now = now_millis();
            let gate = self
                .security
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .check(now);
            match gate {
                Gate::Pass { suppressed } => {
                    let line = rejection.refusal(size, now);
                    let what = if line.agent.is_empty() && line.request_id.is_empty() {
                        format!(
                            "refused a message of {size} bytes in {collective}: {}",
                            line.reason
                        )
                    } else {
                        format!(
                            "refused {}#{} from {} in {collective} (id {}, caller {:?}): {}",
                            line.agent,
                            line.action,
                            line.sender,
                            line.request_id,
                            line.caller,
                            line.reason
                        )
                    };
                    if loudness == Loudness::Warn {
                        tracing::warn!("{what}");
                    } else {
                        tracing::info!("{what}");
                    }
                    if suppressed > 0 {
                        tracing::warn!("{suppressed} refusals before this one were counted but not logged (audit_refusals_per_second)");
                    }
                    if let (true, Some(audit)) = (rejection.kind.audited(), &self.security.audit) {
                        if let Err(e) = audit.refusal(&line, suppressed) {
                            tracing::error!(
                                "cannot write the audit log {}: {e}",
                                audit.path().display()
                            );
                        }
                    }
                }
                Gate::Hold => {
                    tracing::debug!(id = %rejection.id(), "refused (not logged: over the rate limit): {}", rejection.reason);
                }
            }
        }
        let Subject::Request(request) = &rejection.subject else {
            return None;
        };
        match rejection.kind {
            RejectionKind::Denied => self.reply(request, Outcome::aborted(NOT_AUTHORIZED)),
            RejectionKind::Throttled => {
                self.reply(request, Outcome::aborted(rejection.reason.into_owned()))
            }
            RejectionKind::ClockSkew {
                offset_secs,
                for_this_node: true,
            } => {
                let mut data = serde_json::Map::new();
                data.insert(CLOCK_OFFSET_FIELD.into(), offset_secs.into());
                data.insert(
                    "clock_skew_seconds".into(),
                    (self.security.clock_skew_ms / 1000).into(),
                );
                let outcome = Outcome::aborted(rejection.reason.into_owned()).with_data(data);
                self.reply(request, outcome)
            }
            _ => None,
        }
    }
}
