//! Calls: what to send ([`Call`], a builder), and [`Client::call`], which checks it against
//! the agent's DDL, finds its nodes, decides how to reach them ([`crate::plan`]), signs one
//! request for all of them and sends it, returning the replies as they arrive
//! ([`crate::Replies`]).
//!
//! A direct request names its nodes inside the signed bytes (a Merkle commitment) and each
//! node gets its own copy with the proof that it is one of them, so a copy read off one
//! node's subject cannot run on another; one signature serves every slice of a call.
//!
//! Not for: reading replies (that is [`crate::replies`]), or sending without waiting
//! ([`crate::listen`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mco_discovery::limit::Size;
use mco_spec::{subjects, Filter, TargetSet};
use serde_json::{Map, Value};

use crate::client::Client;
use crate::ddl::ActionDdl;
use crate::discovery::Discovery;
use crate::error::{invalid, CallError, CallErrorKind};
use crate::link::{DirectRequest, QueueUse};
use crate::plan::{decide, Batch, Limit, Shape, Source};
use crate::replies::Replies;
use crate::result::{Mode, Stats, Warning};

/// An RPC call to send with [`Client::call`] (or [`Client::send`]).
///
/// ```
/// use std::time::Duration;
/// use mco_client::{Call, Filter};
///
/// let mut filter = Filter::default();
/// filter.add_fact("country=uk").unwrap();
/// let call = Call::new("service", "restart")
///     .arg("service", "httpd")
///     .filter(filter)
///     .timeout(Duration::from_secs(20));
/// assert_eq!(call.agent(), "service");
/// ```
#[derive(Debug, Clone)]
pub struct Call {
    agent: String,
    action: String,
    data: Map<String, Value>,
    text: Vec<(String, String)>,
    filter: Filter,
    collective: Option<String>,
    timeout: Option<Duration>,
    ttl: Option<u64>,
    discovery_timeout: Option<Duration>,
    nodes: Option<Vec<String>>,
    discovery: Option<Discovery>,
    limit: Option<Limit>,
    batch: Option<Batch>,
    reply_to: Option<String>,
    request_id: Option<String>,
}

impl Call {
    /// A call of `agent`'s `action` with no inputs, to every node that has the agent.
    pub fn new(agent: impl Into<String>, action: impl Into<String>) -> Call {
        Call {
            agent: agent.into(),
            action: action.into(),
            data: Map::new(),
            text: Vec::new(),
            filter: Filter::default(),
            collective: None,
            timeout: None,
            ttl: None,
            discovery_timeout: None,
            nodes: None,
            discovery: None,
            limit: None,
            batch: None,
            reply_to: None,
            request_id: None,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The action.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Adds a typed input.
    pub fn arg(mut self, key: impl Into<String>, value: impl Into<Value>) -> Call {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Sets all typed inputs.
    pub fn data(mut self, data: Map<String, Value>) -> Call {
        self.data = data;
        self
    }

    /// Adds an input as typed on a command line (`key=value`): converted by the type the
    /// agent's DDL declares (`true/yes/1` for booleans, numbers, JSON for hashes and arrays),
    /// or sent as a string when the client has no DDL for the agent.
    pub fn text_arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Call {
        self.text.push((key.into(), value.into()));
        self
    }

    /// Sets the filter; the agent is added to it when sending.
    pub fn filter(mut self, filter: Filter) -> Call {
        self.filter = filter;
        self
    }

    /// Sets the collective (the client's main one by default).
    pub fn collective(mut self, collective: impl Into<String>) -> Call {
        self.collective = Some(collective.into());
        self
    }

    /// Sets how long to wait for replies (per slice when batching; the client's default
    /// otherwise).
    pub fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the TTL, seconds (the client's default, stretched to cover a batched run,
    /// otherwise).
    pub fn ttl(mut self, ttl: u64) -> Call {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the discovery timeout.
    pub fn discovery_timeout(mut self, timeout: Duration) -> Call {
        self.discovery_timeout = Some(timeout);
        self
    }

    /// Addresses exactly these nodes, without discovery.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Call {
        self.nodes = Some(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// Discovers with `discovery` instead of the client's default method.
    pub fn discovery(mut self, discovery: Discovery) -> Call {
        self.discovery = Some(discovery);
        self
    }

    /// Acts on `size` of the nodes, chosen at random (repeatably with `seed`).
    pub fn limit(mut self, size: Size, seed: Option<u64>) -> Call {
        self.limit = Some(Limit { size, seed });
        self
    }

    /// Sends in slices of `size`, pausing `sleep` between them.
    pub fn batch(mut self, size: Size, sleep: Duration) -> Call {
        self.batch = Some(Batch { size, sleep });
        self
    }

    /// Has replies sent to `subject`, which must be under this caller's reply prefix
    /// ([`Client::reply_subject`] makes one from a name).
    pub fn reply_to(mut self, subject: impl Into<String>) -> Call {
        self.reply_to = Some(subject.into());
        self
    }

    /// Sends the request with id `id` instead of a fresh one: set it when a reader started
    /// before the call must know which replies are this call's ([`Client::listen`]). Ids
    /// must not repeat: nodes refuse an id they have run as a replay.
    pub fn request_id(mut self, id: impl Into<String>) -> Call {
        self.request_id = Some(id.into());
        self
    }

    pub(crate) fn is_batched(&self) -> bool {
        self.batch.is_some()
    }

    pub(crate) fn batch_sleep(&self) -> Duration {
        self.batch.map(|b| b.sleep).unwrap_or_default()
    }
}

/// A call resolved: who, how, and the signed request.
pub(crate) struct Prepared {
    pub(crate) collective: String,
    pub(crate) agent: String,
    pub(crate) mode: Mode,
    pub(crate) nodes: Vec<String>,
    pub(crate) request_id: String,
    pub(crate) reply_to: String,
    /// The encoded request: the broadcast's payload, or the base of every direct copy.
    pub(crate) payload: Bytes,
    /// For direct mode: the signed request and the targets it is bound to.
    pub(crate) direct: Option<Arc<DirectRequest>>,
    pub(crate) slices: VecDeque<Vec<String>>,
    pub(crate) stats: Stats,
    pub(crate) action: Option<ActionDdl>,
    pub(crate) timeout: Duration,
}

impl Client {
    /// Sends `call` and returns its replies.
    ///
    /// Inputs are converted and checked against the agent's DDL before anything is sent
    /// (an input error is [`CallErrorKind::InvalidInput`] and no node hears of the call); the
    /// agent is added to the filter, so nodes without it stay silent. See [`crate::plan`] for
    /// how the nodes are reached.
    pub async fn call(&self, call: Call) -> Result<Replies, CallError> {
        let prepared = self.prepare(&call).await?;
        Replies::start(self, prepared, call.batch_sleep()).await
    }

    /// Checks `call`, finds its nodes, plans it and signs its request.
    pub(crate) async fn prepare(&self, call: &Call) -> Result<Prepared, CallError> {
        let collective = self.collective(call.collective.as_deref())?;
        if !subjects::is_valid_token(&call.agent) || !subjects::is_valid_token(&call.action) {
            return Err(invalid(format!(
                "{}#{} is not a valid agent and action",
                call.agent, call.action
            )));
        }
        let o = self.options();
        if let Some(subject) = &call.reply_to {
            subjects::check_reply_to(&collective, &o.caller, subject)
                .map_err(|e| CallError::from_source(CallErrorKind::InvalidInput, e))?;
        }
        let action = self.ddls().action(&call.agent, &call.action)?;
        let data = self
            .ddls()
            .inputs(action.as_ref(), call.data.clone(), &call.text)
            .await?;
        let mut filter = call.filter.clone();
        if !filter.agent.contains(&call.agent) {
            filter.agent.push(call.agent.clone());
        }
        self.ddls().check_filter(&filter)?;

        let mut stats = Stats::default();
        let started_discovery = Instant::now();
        let discovery = match &call.discovery {
            Some(d) => d.clone(),
            None => self.default_discovery()?,
        };
        let source = match (&call.nodes, &discovery) {
            (Some(nodes), _) => Source::Given(nodes.clone()),
            (None, Discovery::Broadcast) if call.filter.plain_identities().is_some() => {
                Source::Identities(call.filter.plain_identities().unwrap_or_default().to_vec())
            }
            (None, _) => {
                // A node list knows names only: the agent this call adds is not a filter on it.
                let for_method = match discovery {
                    Discovery::List { .. } => &call.filter,
                    _ => &filter,
                };
                let found = self
                    .discover_with(
                        &discovery,
                        for_method,
                        Some(&collective),
                        call.discovery_timeout,
                    )
                    .await?;
                stats.discovery_method = Some(found.method);
                stats.discovery_time = started_discovery.elapsed();
                stats.clock_refused = found.clock_refused;
                stats.discovery_missing = found.missing;
                stats.discovery_end = found.ending;
                Source::Discovered {
                    nodes: found.nodes,
                    method: found.method,
                }
            }
        };
        let timeout = call.timeout.unwrap_or(o.timeout);
        let plan = decide(
            source,
            Shape {
                direct_threshold: o.direct_threshold,
                limit: call.limit,
                batch: call.batch,
                timeout,
                ttl: call.ttl,
                default_ttl: o.ttl,
            },
        )?;
        stats.mode = (!plan.nodes.is_empty()).then_some(plan.mode);
        stats.batches_planned = plan.batches_planned();
        stats.mode_reason = Some(plan.reason.clone());
        stats.discovered = plan.nodes.len();
        stats.warnings = plan.warnings.clone();
        if plan.mode == Mode::Direct && !plan.nodes.is_empty() {
            match self.direct_queue_use(&collective).await {
                QueueUse::Queued => stats.queued = Some(true),
                QueueUse::NotQueued(reason) => {
                    stats.queued = Some(false);
                    stats.warnings.push(Warning::NotQueued { reason });
                }
                QueueUse::Unusable(why) => {
                    return Err(crate::link::unusable_queue(&collective, &why));
                }
            }
        }

        let request_filter = match plan.mode {
            Mode::Broadcast => filter,
            // A direct request is for the nodes it names; its filter is only the agent.
            Mode::Direct => Filter {
                agent: vec![call.agent.clone()],
                ..Filter::default()
            },
        };
        let mut request = self.request(
            &collective,
            &call.agent,
            &call.action,
            data,
            request_filter,
            plan.ttl,
        );
        if let Some(id) = &call.request_id {
            request.reply_to = subjects::reply(&collective, &request.caller, id).into();
            request.id = id.clone().into();
        }
        if let Some(subject) = &call.reply_to {
            request.reply_to = subject.clone().into();
        }
        // A direct request names its nodes in the signed bytes, so a copy read off one node's
        // subject cannot be run on another: every slice's nodes are among one target set.
        let targets = match plan.mode {
            Mode::Direct => TargetSet::new(plan.nodes.iter().cloned()),
            Mode::Broadcast => None,
        };
        request.targets = targets.as_ref().map(TargetSet::targets);
        request.validate().map_err(|e| {
            CallError::with_source(CallErrorKind::InvalidInput, format!("the request: {e}"), e)
        })?;
        let payload = self.encode(&request)?;
        let direct = targets.map(|targets| {
            Arc::new(DirectRequest {
                envelope: payload.clone(),
                targets,
            })
        });
        Ok(Prepared {
            collective,
            agent: call.agent.clone(),
            mode: plan.mode,
            nodes: plan.nodes,
            request_id: request.id.into_owned(),
            reply_to: request.reply_to.into_owned(),
            payload,
            direct,
            slices: plan.slices,
            stats,
            action,
            timeout,
        })
    }
}
