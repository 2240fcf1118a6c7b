//! What happens to one message, from bytes to a reply, with no broker involved.
//!
//! [`Node::handle`] is two steps. **Admission** ([`Node::admit`]) decides whether to act:
//!
//! decode (size, JSON, protocol) → verify the caller's token and the signature over the
//! exact request bytes → parse → the token speaks for the request's caller, agent and
//! collective → collective check → time window ([`timeliness`]: not from the future beyond the
//! clock skew; neither its TTL nor the node's `max_ttl_seconds` passed; clock trouble is
//! answered only once the request proves to be for this node) → **targets**: a direct request
//! names its nodes in its signed bytes, and its copy must prove this node is one of them;
//! a request without targets is selected by its **filter** alone, whichever subject it
//! arrived on → action policy → agent, action and DDL input validation → **replay**: the id
//! enters the replay memory, within the caller's share, only now that the request will run.
//!
//! Every refusal is a [`Rejection`], counted, logged and audited in one place
//! ([`Node::refuse`]); a broadcast that does not select this node is ignored silently.
//! **Acting** runs the action bounded by the DDL timeout, applies output defaults, audits the
//! acceptance (with the policy rule that allowed it) and encodes the signed reply.
//!
//! Filters and policies that call data plugins (`fstat(...)`, `service(...)`) are evaluated
//! on a blocking thread, at most `[data] max_concurrent` at once and each within
//! `[data] timeout_seconds`; a call that fails or runs out of time is *unknown*, so the filter
//! does not match and a policy fails closed. Nothing in a message can make this panic or
//! block the daemon's async threads.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use mco_agents::data::{AllowedPlugins, NodeData};
use mco_agents::{ActionContext, Agent, NodeInfo, Outcome};
use mco_spec::compound::DataSource;
use mco_spec::message::{now_millis, ReplyFields};
use mco_spec::security::check_request_authority;
use mco_spec::security::Token;
use mco_spec::targets::TargetProof;
use mco_spec::{CompiledFilter, NodeView, ReplyEnvelope, Request, RequestEnvelope, StatusCode};
use serde_json::{Map, Value};

use crate::audit::{Accepted, AuditDecision};
use crate::node::{AgentTable, Node};
use crate::policy::{Decision, PolicyRequest};
use crate::rejection::{Rejection, RejectionKind};
use crate::replay::ReplayError;
use crate::stats::Stats;

/// The facts of a node as a filter that does not read them sees them.
static NO_FACTS: Value = Value::Null;

/// The reply a caller gets when a policy denies it (MCollective's wording).
pub const NOT_AUTHORIZED: &str = "You are not authorized to call this agent or action.";

/// How a message arrived. It decides nothing (a request is selected by its targets or its
/// filter, whatever the subject); it is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On `<collective>.broadcast.agent.<agent>`.
    Broadcast,
    /// On `<collective>.node.<identity>` (or from its JetStream queue).
    Direct,
}

/// A reply to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Where to publish it.
    pub subject: String,
    /// The encoded reply envelope.
    pub payload: Vec<u8>,
}

/// A request that passed admission: it will run.
struct Admitted<'a> {
    request: Request<'a>,
    /// The agent that runs it.
    agent: Arc<dyn Agent>,
    /// Its inputs, converted and checked against the DDL.
    data: Map<String, Value>,
    /// The policy rule (or the reason no policy applied) that allowed it.
    rule: Cow<'static, str>,
}

/// What a request needs to run: its agent, and its inputs checked against the DDL.
struct Runnable {
    agent: Arc<dyn Agent>,
    data: Map<String, Value>,
}

/// What admission decided: run it, refuse it, or answer it without running (unknown agent or
/// action, invalid inputs: the caller hears why, and nothing enters the replay memory).
enum Admission<'a> {
    Run(Box<Admitted<'a>>),
    Refuse(Rejection<'a>),
    Answer(Box<Request<'a>>, Outcome),
}

/// How admission decides whether a request is this node's.
enum FilterCheck {
    /// Bound to named nodes, and its copy proved this node one of them.
    Targeted,
    /// Its filter is only exact agent names ([`mco_spec::Filter::plain_agents`]), looked up
    /// in `table`: `served` when this node serves each.
    PlainAgents {
        table: arc_swap::Guard<Arc<AgentTable>>,
        served: bool,
    },
    /// Any other filter, compiled.
    Compiled(CompiledFilter),
}

/// Why a node a filter does not select stays silent, whichever way the filter was decided.
const NOT_SELECTED: &str = "not selected by the filter";

/// Where a request stands in time on this node ([`timeliness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeliness {
    /// Within its time window.
    Current,
    /// Its TTL, or this node's cap on it, has passed, as a queued request's may while it
    /// waited for the node.
    Expired,
    /// Its time and this node's clock differ by more than the allowed skew.
    ClockOff {
        /// This node's clock minus the request's time, in seconds, rounded (negative: the
        /// node is behind).
        offset_secs: i64,
    },
}

/// The one rule for a request's time window, received by `route` at `now` (Unix ms), with
/// `expires_at` the expiry this node honours (its own TTL or the node's cap, whichever is
/// earlier) and `skew_ms` the clock difference allowed.
///
/// A request from further in the future than the skew is clock trouble. So is a broadcast
/// already past its own TTL and the skew on arrival: core NATS holds nothing back, so it cannot
/// have waited that long. A direct request past its TTL is merely expired, since it may have
/// waited in the node's JetStream queue while the node was down.
pub(crate) fn timeliness(
    route: Route,
    request: &Request<'_>,
    expires_at: u64,
    now: u64,
    skew_ms: u64,
) -> Timeliness {
    // Rounded to the nearest second: the message was on its way for a few milliseconds.
    let secs = |ms: u64| i64::try_from(ms.saturating_add(500) / 1000).unwrap_or(i64::MAX);
    let offset_secs = if now >= request.time {
        secs(now - request.time)
    } else {
        -secs(request.time - now)
    };
    let beyond_own_ttl = now > request.expires_at().saturating_add(skew_ms);
    if request.time > now.saturating_add(skew_ms) || (route == Route::Broadcast && beyond_own_ttl) {
        Timeliness::ClockOff { offset_secs }
    } else if now > expires_at {
        Timeliness::Expired
    } else {
        Timeliness::Current
    }
}

/// The refusal of a message that does not open as a request, as a node that verifies
/// signatures words it: the envelope's error, or the request's with what the envelope held.
/// (Reading the message a second time costs only messages that are refused.)
fn unreadable(payload: &[u8]) -> Rejection<'_> {
    match RequestEnvelope::decode(payload) {
        Err(e) => Rejection::unparsed(RejectionKind::Malformed, None, e.to_string()),
        Ok(envelope) => {
            let reason = match envelope.body() {
                Err(e) => format!("request: {e}"),
                // Both readings accept the same messages; this one would have said why.
                Ok(_) => "request: unreadable".to_string(),
            };
            Rejection::unparsed(RejectionKind::Malformed, Some(envelope.body), reason)
        }
    }
}

/// Why a node refuses a request for clock trouble: what the log, the audit line and the
/// caller read.
fn clock_reason(offset_secs: i64, skew_ms: u64) -> String {
    let way = if offset_secs < 0 {
        "behind"
    } else {
        "ahead of"
    };
    format!(
        "clock trouble: this node's clock is {} s {way} the request's time, more than its clock_skew_seconds ({} s) allows",
        offset_secs.unsigned_abs(),
        skew_ms / 1000
    )
}

impl Node {
    /// Handles one message received in `collective`; returns the reply to publish, if any.
    pub async fn handle(
        self: &Arc<Self>,
        collective: &str,
        route: Route,
        payload: &[u8],
    ) -> Option<Outgoing> {
        Stats::bump(&self.stats.total);
        let size = payload.len();
        // The request (and any rejection) borrows from the payload: nothing of the message is
        // copied to decide what to do with it.
        let Some(trust) = &self.security.trust else {
            // A node that verifies nothing reads the envelope and the request in one pass.
            return match RequestEnvelope::open_unverified(payload) {
                Ok(opened) => {
                    let target = opened.target.as_ref();
                    let admission = self.admit(collective, route, opened.body, target, None);
                    self.conclude(admission.await, collective, size).await
                }
                Err(_) => self.refuse(unreadable(payload), collective, size),
            };
        };
        let envelope = match RequestEnvelope::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                let rejection = Rejection::unparsed(RejectionKind::Malformed, None, e.to_string());
                return self.refuse(rejection, collective, size);
            }
        };
        let token = match self
            .security
            .tokens
            .verify(&envelope, trust, now_millis() / 1000)
        {
            Ok(token) => token,
            Err(e) => {
                let body = Some(Cow::Borrowed(&*envelope.body));
                let rejection = Rejection::unparsed(
                    RejectionKind::Unverified,
                    body,
                    format!("unverified: {e}"),
                );
                return self.refuse(rejection, collective, size);
            }
        };
        let request = match envelope.body() {
            Ok(r) => r,
            Err(e) => {
                let body = Some(Cow::Borrowed(&*envelope.body));
                let rejection =
                    Rejection::unparsed(RejectionKind::Malformed, body, format!("request: {e}"));
                return self.refuse(rejection, collective, size);
            }
        };
        let target = envelope.target.as_ref();
        let admission = self.admit(collective, route, request, target, Some(token));
        self.conclude(admission.await, collective, size).await
    }

    /// Refuses, answers or runs what admission decided.
    async fn conclude(
        &self,
        admission: Admission<'_>,
        collective: &str,
        size: usize,
    ) -> Option<Outgoing> {
        match admission {
            Admission::Refuse(rejection) => self.refuse(rejection, collective, size),
            Admission::Answer(request, outcome) => self.reply(&request, outcome),
            Admission::Run(admitted) => self.act(*admitted).await,
        }
    }

    /// Admission of a parsed request, `verified` by the token that signed it (`None` on an
    /// insecure node), received with the target proof `target`.
    async fn admit<'a>(
        self: &Arc<Self>,
        collective: &str,
        route: Route,
        mut request: Request<'a>,
        target: Option<&TargetProof>,
        verified: Option<Arc<Token>>,
    ) -> Admission<'a> {
        use RejectionKind::*;
        let now = now_millis();
        if let Some(token) = &verified {
            if let Err(e) = check_request_authority(token, &request) {
                return Admission::Refuse(Rejection::of(
                    Unauthorized,
                    request,
                    format!("unauthorized: {e}"),
                ));
            }
        }
        if request.collective != collective {
            let reason = format!(
                "sent for collective {} but received in {collective}",
                request.collective
            );
            return Admission::Refuse(Rejection::of(WrongCollective, request, reason));
        }
        let expires_at = self.security.expires_at(&request);
        let skew_ms = self.security.clock_skew_ms;
        let clock_off = match timeliness(route, &request, expires_at, now, skew_ms) {
            Timeliness::Current => None,
            Timeliness::ClockOff { offset_secs } => Some(offset_secs),
            Timeliness::Expired => {
                let reason = if expires_at < request.expires_at() {
                    format!(
                        "expired: older than this node's max_ttl_seconds ({} s; it asked for {} s)",
                        self.security.max_ttl_ms / 1000,
                        request.ttl
                    )
                } else {
                    format!("expired: its TTL of {} s has passed", request.ttl)
                };
                return Admission::Refuse(Rejection::of(Expired, request, reason));
            }
        };
        // A request this node's clock cannot honour is still checked for being this node's:
        // only then does its caller hear why, so a node with a wrong clock neither answers
        // every broadcast of the fleet nor shows up in discoveries that do not select it.
        // Until then its other refusals count as clock trouble, the node's real problem.
        let refusal = |kind: RejectionKind, request: Request<'a>, reason: Cow<'static, str>| {
            match clock_off {
                Some(offset_secs) => Rejection::of(
                    ClockSkew {
                        offset_secs,
                        for_this_node: false,
                    },
                    request,
                    clock_reason(offset_secs, skew_ms),
                ),
                None => Rejection::of(kind, request, reason),
            }
        };
        // Bound to its targets, or selected by its filter: never neither.
        let filter = match &request.targets {
            Some(targets) => {
                let proven = target.is_some_and(|proof| targets.contains(self.identity(), proof));
                if !proven {
                    let reason = format!(
                        "not addressed to this node: the request is for {} named node(s) and its copy{} does not prove {} is one of them",
                        targets.count,
                        if route == Route::Broadcast { ", sent as a broadcast," } else { "" },
                        self.identity()
                    );
                    return Admission::Refuse(refusal(NotTargeted, request, reason.into()));
                }
                FilterCheck::Targeted
            }
            None => match request.filter.plain_agents() {
                // The filter a call adds its agent to and nothing else: decided by looking the
                // names up, without compiling it (a node evaluates every broadcast's filter).
                Some(names) => {
                    let table = self.agents_now();
                    let served = names.iter().all(|name| table.filter_sees(name));
                    FilterCheck::PlainAgents { table, served }
                }
                // The request's own filter becomes the compiled one: nothing reads it after.
                None => match std::mem::take(&mut request.filter).into_compiled() {
                    Ok(filter) => FilterCheck::Compiled(filter),
                    Err(e) => {
                        let reason = format!("refused a filter this node does not evaluate: {e}");
                        return Admission::Refuse(refusal(BadFilter, request, reason.into()));
                    }
                },
            },
        };
        if clock_off.is_none() {
            Stats::bump(&self.stats.validated);
        }
        // One snapshot of the agents for the whole admission: the filter, the policy and the
        // agent that runs see the same table even if a reload replaces it meanwhile. It is
        // taken for the filter only when the filter reads agents, so a broadcast that does not
        // select this node (most discoveries of a filtered fleet) costs no lock for it.
        let mut agents = None;
        match filter {
            FilterCheck::Targeted => {}
            FilterCheck::PlainAgents { table, served } => {
                if !served {
                    let reason = Cow::Borrowed(NOT_SELECTED);
                    return Admission::Refuse(refusal(NotSelected, request, reason));
                }
                agents = Some(table);
            }
            FilterCheck::Compiled(filter) => {
                agents = filter.reads_agents().then(|| self.agents_now());
                if let Err(reason) = self.selected_by(filter, &request, agents.as_deref()).await {
                    return Admission::Refuse(refusal(NotSelected, request, reason));
                }
            }
        }
        if let Some(offset_secs) = clock_off {
            let reason = clock_reason(offset_secs, skew_ms);
            let kind = ClockSkew {
                offset_secs,
                for_this_node: true,
            };
            return Admission::Refuse(Rejection::of(kind, request, reason));
        }
        Stats::bump(&self.stats.passed);
        let agents = agents.unwrap_or_else(|| self.agents_now());
        let rule = match self.authorize(&request, &agents).await {
            Ok(rule) => rule,
            Err(reason) => return Admission::Refuse(Rejection::of(Denied, request, reason)),
        };
        let Runnable { agent, data } = match self.checked_inputs(&request, &agents).await {
            Ok(runnable) => runnable,
            Err(outcome) => return Admission::Answer(Box::new(request), outcome),
        };
        let admitted = self
            .security
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(
                &request.id,
                &request.caller,
                expires_at.saturating_add(self.security.clock_skew_ms),
                now,
            );
        match admitted {
            Ok(()) => Admission::Run(Box::new(Admitted {
                request,
                agent,
                data,
                rule,
            })),
            Err(ReplayError::Replayed) => Admission::Refuse(Rejection::of(
                Replayed,
                request,
                "replayed: this request id was seen before",
            )),
            Err(ReplayError::CallerShareFull) => {
                let reason = format!(
                    "throttled: this node holds {} recent request ids of {} (its replay_caller_share); try again when they expire",
                    self.security.replay.lock().unwrap_or_else(|p| p.into_inner()).held_by(&request.caller),
                    request.caller
                );
                Admission::Refuse(Rejection::of(Throttled, request, reason))
            }
            Err(ReplayError::Full) => Admission::Refuse(Rejection::of(
                Throttled,
                request,
                "throttled: this node's replay memory is full; try again when ids expire",
            )),
        }
    }

    /// Runs `decide` with the node's data plugins. Inline when `needs_data` is false (no
    /// data-plugin call can happen); otherwise on a blocking thread, holding one of the
    /// node's data slots, within the data time limit. `None` when the slot or the answer did
    /// not come in time (the blocking work, if it started, keeps its slot until it ends).
    async fn with_data<T: Send + 'static>(
        self: &Arc<Self>,
        needs_data: bool,
        decide: impl FnOnce(&Node, &dyn DataSource) -> T + Send + 'static,
    ) -> Option<T> {
        if !needs_data {
            return Some(decide(self, &NodeData(self.as_ref())));
        }
        let limit = Duration::from_secs(self.settings.data.timeout_seconds);
        let deadline = tokio::time::Instant::now() + limit;
        let slot = tokio::time::timeout_at(deadline, self.data_slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        let node = Arc::clone(self);
        let work = tokio::task::spawn_blocking(move || {
            let answer = decide(&node, &NodeData(node.as_ref()));
            drop(slot);
            answer
        });
        tokio::time::timeout_at(deadline, work).await.ok()?.ok()
    }

    /// Whether the request's filter selects this node, serving `agents` (given when the
    /// filter reads them): `Err` says why not.
    async fn selected_by(
        self: &Arc<Self>,
        filter: CompiledFilter,
        request: &Request<'_>,
        agents: Option<&Arc<AgentTable>>,
    ) -> Result<(), Cow<'static, str>> {
        // A filter that calls no data plugin is decided here, on the table the admission
        // holds; only one that does takes a reference of its own to a blocking thread.
        let decided = if filter.uses_data_plugins() {
            let agents = agents.cloned();
            self.with_data(true, move |node, data| {
                node.filter_selects(&filter, agents.as_deref(), data, true)
            })
            .await
        } else {
            let data = NodeData(self.as_ref());
            Some(self.filter_selects(&filter, agents.map(|a| &**a), &data, false))
        };
        match decided {
            Some(Ok(true)) => Ok(()),
            Some(Ok(false)) => Err(Cow::Borrowed(NOT_SELECTED)),
            Some(Err(e)) => {
                tracing::info!(id = %request.id, "not selected: the filter needs {e}");
                Err(Cow::Owned(format!("the filter could not be decided: {e}")))
            }
            None => {
                tracing::warn!(id = %request.id, "not selected: the filter's data-plugin calls took more than {} s", self.settings.data.timeout_seconds);
                Err(Cow::Borrowed("the filter's data-plugin calls timed out"))
            }
        }
    }

    /// `filter` evaluated on this node serving `agents`, with the data plugins the settings
    /// allow filters when `calls_data` (a filter that calls no plugin is allowed none).
    fn filter_selects(
        &self,
        filter: &CompiledFilter,
        agents: Option<&AgentTable>,
        data: &dyn DataSource,
        calls_data: bool,
    ) -> Result<bool, mco_spec::compound::DataError> {
        let allowed = AllowedPlugins {
            inner: data,
            allowed: if calls_data {
                self.settings.data.filter_plugins.as_deref()
            } else {
                Some(&[])
            },
        };
        // Only what the filter looks at is taken from behind its lock: a node evaluates the
        // filter of every broadcast of its fleet.
        let facts = filter.reads_facts().then(|| self.facts());
        let classes = filter.reads_classes().then(|| self.classes());
        let view = NodeView {
            identity: self.identity(),
            facts: facts.as_deref().unwrap_or(&NO_FACTS),
            classes: classes.as_deref().map_or(&[], Vec::as_slice),
            agents: agents.map_or(&[], AgentTable::names),
        };
        filter.evaluate(&view, &allowed)
    }

    /// The policy rule that allows `request` on this node serving `agents`, or why it is
    /// denied.
    async fn authorize(
        self: &Arc<Self>,
        request: &Request<'_>,
        agents: &Arc<AgentTable>,
    ) -> Result<Cow<'static, str>, String> {
        let Some(policies) = self.security.policies() else {
            return Ok(Cow::Borrowed("no policy_dir: every verified caller"));
        };
        // Discovery only tells a verified caller that this node matches its filter; like
        // MCollective's discovery agent it is not subject to action policies, so callers can
        // find the nodes their policies then allow or deny.
        if request.agent == mco_spec::subjects::DISCOVERY_AGENT {
            return Ok(Cow::Borrowed("discovery is not subject to action policies"));
        }
        let needs_data = policies.uses_data_plugins(&request.agent);
        let (agent, caller, action) = (
            request.agent.to_string(),
            request.caller.to_string(),
            request.action.to_string(),
        );
        let agents = Arc::clone(agents);
        let verdict = self
            .with_data(needs_data, move |node, data| {
                let (facts, classes) = (node.facts(), node.classes());
                Some(policies.decide(
                    &agent,
                    &PolicyRequest {
                        caller: &caller,
                        action: &action,
                        node: node.view(&facts, &classes, &agents),
                        data,
                    },
                ))
            })
            .await
            .flatten();
        match verdict {
            Some(v) if v.decision == Decision::Allow => Ok(Cow::Owned(v.reason)),
            Some(v) => Err(format!("denied by policy ({})", v.reason)),
            None => Err(format!(
                "denied: the policy's data-plugin calls took more than {} s",
                self.settings.data.timeout_seconds
            )),
        }
    }

    /// The agent to run the request and its inputs checked against the action's DDL, or the
    /// outcome that says why the action cannot run (unknown agent or action, missing or
    /// invalid inputs, by the DDL or a validator plugin).
    async fn checked_inputs(
        &self,
        request: &Request<'_>,
        agents: &AgentTable,
    ) -> Result<Runnable, Outcome> {
        let Some(agent) = agents.get(&request.agent).cloned() else {
            return Err(Outcome::fail(
                StatusCode::UnknownAction,
                format!("Unknown agent '{}'", request.agent),
            ));
        };
        let Some(action) = agent.ddl().action(&request.action) else {
            return Err(Outcome::unknown_action(&request.agent, &request.action));
        };
        let mut data = request.data.clone();
        self.plugins
            .validate_inputs(action, &mut data)
            .await
            .map_err(|e| Outcome::fail(e.status(), e.to_string()))?;
        Ok(Runnable { agent, data })
    }

    /// Runs an admitted request's action and encodes the reply.
    async fn act(&self, admitted: Admitted<'_>) -> Option<Outgoing> {
        let Admitted {
            request,
            agent,
            data,
            rule,
        } = admitted;
        if let Some(audit) = &self.security.audit {
            let record = Accepted {
                time: now_millis(),
                request_id: &request.id,
                caller: &request.caller,
                sender: &request.sender,
                agent: &request.agent,
                action: &request.action,
                data: self.security.redaction.apply(&data),
                decision: AuditDecision::Accepted,
                rule: &rule,
                reason: format!("allowed by {rule}"),
            };
            if let Err(e) = audit.accepted(&record) {
                tracing::error!("cannot write the audit log {}: {e}", audit.path().display());
            }
        }
        let outcome = self.run_action(agent.as_ref(), &request, &data).await;
        self.events
            .after_action(&request, || self.security.redaction.apply(&data), &outcome);
        self.reply(&request, outcome)
    }

    async fn run_action(
        &self,
        agent: &dyn Agent,
        request: &Request<'_>,
        data: &Map<String, Value>,
    ) -> Outcome {
        // Admission found the action in this agent's DDL.
        let Some(action) = agent.ddl().action(&request.action) else {
            return Outcome::unknown_action(&request.agent, &request.action);
        };
        let timeout = Duration::from_secs(agent.ddl().metadata.timeout);
        let ctx = ActionContext {
            request,
            node: self,
        };
        // Most actions a broadcast runs answer at once (a ping, a fact); only one that has to
        // wait gets a timer.
        let started = tokio::time::Instant::now();
        let mut call = agent.call(&ctx, &request.action, data);
        let first = futures::poll!(call.as_mut());
        let finished = match first {
            std::task::Poll::Ready(outcome) => Ok(outcome),
            std::task::Poll::Pending => tokio::time::timeout_at(started + timeout, call).await,
        };
        let mut outcome = match finished {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(id = %request.id, "{}#{} timed out after {} s", request.agent, request.action, timeout.as_secs());
                Outcome::aborted(format!(
                    "action timed out after {} seconds",
                    timeout.as_secs()
                ))
            }
        };
        action.apply_output_defaults(&mut outcome.data);
        outcome
    }

    /// This node as the filter evaluator sees it, over a snapshot of its facts and classes.
    pub(crate) fn view<'a>(
        &'a self,
        facts: &'a Value,
        classes: &'a [String],
        agents: &'a crate::node::AgentTable,
    ) -> NodeView<'a> {
        NodeView {
            identity: &self.settings.identity,
            facts,
            classes,
            agents: agents.names(),
        }
    }

    pub(crate) fn reply(&self, request: &Request<'_>, outcome: Outcome) -> Option<Outgoing> {
        // Encoded straight from the request's and outcome's fields, without copying them
        // into a `Reply` first: a broadcast makes every node do this at once.
        let Outcome {
            statuscode,
            statusmsg,
            data,
        } = outcome;
        let data = Value::Object(data);
        let fields = ReplyFields {
            request_id: &request.id,
            sender: self.identity(),
            agent: &request.agent,
            action: &request.action,
            time: now_millis(),
            statuscode,
            statusmsg: &statusmsg,
            data: &data,
        };
        let encoded = match &self.security.credentials {
            Some(credentials) => ReplyEnvelope::encode_signed(&fields, credentials),
            None => fields.encode_envelope(None),
        };
        let payload = match encoded {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(id = %request.id, "could not encode a reply: {e}");
                return None;
            }
        };
        if payload.len() > mco_spec::MAX_MESSAGE_BYTES {
            tracing::error!(id = %request.id, "reply of {} bytes is too large to send", payload.len());
            return self.reply(
                request,
                Outcome::fail(StatusCode::UnknownError, "reply too large to send"),
            );
        }
        Stats::bump(&self.stats.replies);
        if !statuscode.is_ok() {
            Stats::bump(&self.stats.failed);
        }
        tracing::info!(
            id = %request.id, caller = %request.caller, status = statuscode.code(),
            "{}#{} from {}", request.agent, request.action, request.sender
        );
        Some(Outgoing {
            subject: request.reply_to.to_string(),
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: u64, ttl: u64) -> Request<'static> {
        Request {
            id: "r".into(),
            collective: "mco".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            data: Map::new(),
            filter: Default::default(),
            caller: "alice".into(),
            sender: "admin".into(),
            time,
            ttl,
            reply_to: "mco.reply.x.r".into(),
            targets: None,
        }
    }

    #[test]
    fn the_time_window_tells_clock_trouble_from_a_wait_in_the_queue() {
        use Route::{Broadcast, Direct};
        use Timeliness::{ClockOff, Current, Expired};
        const NOW: u64 = 1_000_000_000_000;
        const SKEW: u64 = 30_000;
        // (route, request time, its TTL s, the node's TTL cap s, expected)
        let table = [
            (Broadcast, NOW, 60, 86_400, Current),
            (Direct, NOW - 59_000, 60, 86_400, Current),
            // Ahead within the skew: a clock a little off is allowed.
            (Broadcast, NOW + 30_000, 60, 86_400, Current),
            // From the future beyond the skew, whatever the route.
            (
                Broadcast,
                NOW + 600_000,
                60,
                86_400,
                ClockOff { offset_secs: -600 },
            ),
            (
                Direct,
                NOW + 31_000,
                60,
                86_400,
                ClockOff { offset_secs: -31 },
            ),
            // Past its TTL but within the skew: expired, as a small drift may make it.
            (Broadcast, NOW - 80_000, 60, 86_400, Expired),
            // A broadcast past its TTL and the skew cannot have waited that long.
            (
                Broadcast,
                NOW - 600_000,
                60,
                86_400,
                ClockOff { offset_secs: 600 },
            ),
            (
                Broadcast,
                NOW - 90_001,
                60,
                86_400,
                ClockOff { offset_secs: 90 },
            ),
            // A queued direct request may have waited for the node: only expired.
            (Direct, NOW - 600_000, 60, 86_400, Expired),
            // The node's cap passed, the request's own TTL not: expired, also by broadcast.
            (Broadcast, NOW - 120_000, 3_600, 60, Expired),
        ];
        for (route, time, ttl, cap_secs, want) in table {
            let request = at(time, ttl);
            let expires_at = request.expires_at().min(time + cap_secs * 1000);
            assert_eq!(
                timeliness(route, &request, expires_at, NOW, SKEW),
                want,
                "{route:?} at {} ms, ttl {ttl}",
                time as i64 - NOW as i64
            );
        }
        assert_eq!(
            clock_reason(-600, SKEW),
            "clock trouble: this node's clock is 600 s behind the request's time, more than its clock_skew_seconds (30 s) allows"
        );
    }
}
