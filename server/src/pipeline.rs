//! What happens to one message, from bytes to a reply, with no broker involved:
//!
//! decode (size, JSON, protocol) → verify the caller's token and the signature over the
//! exact request bytes, and that the token speaks for the request's caller, agent and
//! collective → collective check → time window (not from the future beyond the clock skew,
//! TTL not passed) → replay check → filter (the one evaluator; broadcast only) → action
//! policy → agent and action known? → DDL input validation → the action, bounded by the DDL
//! timeout → output defaults → signed reply → audit line.
//!
//! Every stage that refuses a message counts it in [`crate::stats::Stats`], logs why, and (when
//! an audit log is configured) writes a rejected audit line; a broadcast that does not match
//! the filter is ignored silently. Nothing in a message can make this panic: every failure is a
//! counted drop or a reply with a status code.

use std::time::Duration;

use mco_agents::data::NodeData;
use mco_agents::{ActionContext, NodeInfo, Outcome};
use mco_spec::message::now_millis;
use mco_spec::message::ReplyFields;
use mco_spec::security::check_request_authority;
use mco_spec::{NodeView, ReplyEnvelope, Request, RequestEnvelope, StatusCode};
use serde_json::Map;

use crate::audit::{AuditDecision, AuditRecord};
use crate::node::Node;
use crate::policy::{Decision, PolicyRequest};
use crate::replay::ReplayError;
use crate::stats::Stats;

/// The reply a caller gets when a policy denies it (MCollective's wording).
pub const NOT_AUTHORIZED: &str = "You are not authorized to call this agent or action.";

/// How a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On `<collective>.broadcast.agent.<agent>`: the filter decides whether to act.
    Broadcast,
    /// On `<collective>.node.<identity>`: addressed to this node, the filter is not applied.
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

impl Node {
    /// Handles one message received in `collective`; returns the reply to publish, if any.
    pub async fn handle(&self, collective: &str, route: Route, payload: &[u8]) -> Option<Outgoing> {
        Stats::bump(&self.stats.total);
        let envelope = match RequestEnvelope::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                Stats::bump(&self.stats.unvalidated);
                tracing::warn!("dropping a message in {collective}: {e}");
                return None;
            }
        };
        let now = now_millis();
        let verified = match &self.security.trust {
            None => None,
            Some(trust) => match self
                .security
                .tokens
                .verify_request(&envelope, trust, now / 1000)
            {
                Ok(token) => Some(token),
                Err(e) => {
                    Stats::bump(&self.stats.unvalidated);
                    self.reject_unparsed(&envelope, &format!("unverified: {e}"));
                    return None;
                }
            },
        };
        let request = match envelope.request() {
            Ok(r) => r,
            Err(e) => {
                Stats::bump(&self.stats.unvalidated);
                tracing::warn!("dropping a message in {collective}: {e}");
                return None;
            }
        };
        if let Some(token) = &verified {
            if let Err(e) = check_request_authority(token, &request) {
                Stats::bump(&self.stats.unvalidated);
                self.audit_rejected(&request, &format!("unauthorized: {e}"));
                return None;
            }
        }
        Stats::bump(&self.stats.validated);
        if request.collective != collective {
            Stats::bump(&self.stats.unvalidated);
            self.audit_rejected(
                &request,
                &format!(
                    "sent for collective {} but received in {collective}",
                    request.collective
                ),
            );
            return None;
        }
        if request.time > now.saturating_add(self.security.clock_skew_ms) {
            Stats::bump(&self.stats.unvalidated);
            self.audit_rejected(
                &request,
                "request time is in the future beyond the allowed clock skew",
            );
            return None;
        }
        if request.is_expired(now) {
            Stats::bump(&self.stats.ttlexpired);
            self.audit_rejected(
                &request,
                &format!("expired: its TTL of {} s has passed", request.ttl),
            );
            return None;
        }
        let admitted = self
            .security
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(
                &request.id,
                request
                    .expires_at()
                    .saturating_add(self.security.clock_skew_ms),
                now,
            );
        match admitted {
            Ok(()) => {}
            Err(ReplayError::Replayed) => {
                Stats::bump(&self.stats.replayed);
                self.audit_rejected(&request, "replayed: this request id was seen before");
                return None;
            }
            Err(ReplayError::Full) => {
                Stats::bump(&self.stats.unvalidated);
                self.audit_rejected(&request, "replay memory is full; refusing until ids expire");
                return None;
            }
        }
        if route == Route::Broadcast && !self.selected_by(&request) {
            return None;
        }
        Stats::bump(&self.stats.passed);
        if let Some(reason) = self.denied_by_policy(&request) {
            Stats::bump(&self.stats.denied);
            self.audit_rejected(&request, &reason);
            return self.reply(&request, Outcome::aborted(NOT_AUTHORIZED));
        }
        self.audit(&request, AuditDecision::Accepted, "accepted");
        let outcome = self.run_action(&request).await;
        self.reply(&request, outcome)
    }

    fn denied_by_policy(&self, request: &Request) -> Option<String> {
        let policies = self.security.policies.as_ref()?;
        // Discovery only tells a verified caller that this node matches its filter; like
        // MCollective's discovery agent it is not subject to action policies, so callers can
        // find the nodes their policies then allow or deny.
        if request.agent == mco_spec::subjects::DISCOVERY_AGENT {
            return None;
        }
        let facts = self.facts.facts();
        let classes = self.facts.classes();
        let node = NodeView {
            identity: &self.settings.identity,
            facts: &facts,
            classes: &classes,
            agents: self.agent_names(),
        };
        let verdict = policies.decide(
            &request.agent,
            &PolicyRequest {
                caller: &request.caller,
                action: &request.action,
                node,
            },
        );
        match verdict.decision {
            Decision::Allow => None,
            Decision::Deny => Some(format!("denied by policy ({})", verdict.reason)),
        }
    }

    fn audit(&self, request: &Request, decision: AuditDecision, reason: &str) {
        let Some(audit) = &self.security.audit else {
            return;
        };
        let record = AuditRecord {
            time: now_millis(),
            request_id: &request.id,
            caller: &request.caller,
            sender: &request.sender,
            agent: &request.agent,
            action: &request.action,
            data: &request.data,
            decision,
            reason,
        };
        if let Err(e) = audit.write(&record) {
            tracing::error!("cannot write the audit log {}: {e}", audit.path().display());
        }
    }

    fn audit_rejected(&self, request: &Request, reason: &str) {
        tracing::warn!(id = %request.id, caller = %request.caller, "refused {}#{} from {}: {reason}", request.agent, request.action, request.sender);
        self.audit(request, AuditDecision::Rejected, reason);
    }

    /// Audits a request whose signature failed: its fields are the sender's claims, parsed
    /// leniently for the record only.
    fn reject_unparsed(&self, envelope: &RequestEnvelope, reason: &str) {
        match serde_json::from_str::<Request>(envelope.request.get()) {
            Ok(claimed) => self.audit_rejected(&claimed, reason),
            Err(_) => {
                tracing::warn!("refused an unparseable request: {reason}");
                let empty = Map::new();
                if let Some(audit) = &self.security.audit {
                    let _ = audit.write(&AuditRecord {
                        time: now_millis(),
                        request_id: "",
                        caller: "",
                        sender: "",
                        agent: "",
                        action: "",
                        data: &empty,
                        decision: AuditDecision::Rejected,
                        reason,
                    });
                }
            }
        }
    }

    fn selected_by(&self, request: &Request) -> bool {
        let filter = match request.filter.compile() {
            Ok(f) => f,
            Err(e) => {
                Stats::bump(&self.stats.unvalidated);
                tracing::warn!(id = %request.id, "dropping a request with an invalid filter: {e}");
                return false;
            }
        };
        let facts = self.facts.facts();
        let classes = self.facts.classes();
        let view = NodeView {
            identity: &self.settings.identity,
            facts: &facts,
            classes: &classes,
            agents: self.agent_names(),
        };
        if filter.matches_with(&view, &NodeData(self)) {
            true
        } else {
            Stats::bump(&self.stats.filtered);
            tracing::debug!(id = %request.id, "not selected by the filter");
            false
        }
    }

    async fn run_action(&self, request: &Request) -> Outcome {
        let Some(agent) = self.agent(&request.agent) else {
            return Outcome::fail(
                StatusCode::UnknownAction,
                format!("Unknown agent '{}'", request.agent),
            );
        };
        let Some(action) = agent.ddl().action(&request.action) else {
            return Outcome::unknown_action(&request.agent, &request.action);
        };
        let mut data = request.data.clone();
        if let Err(e) = action.validate_inputs(&mut data) {
            return Outcome::fail(e.status(), e.to_string());
        }
        let timeout = Duration::from_secs(agent.ddl().metadata.timeout);
        let ctx = ActionContext {
            request,
            node: self,
        };
        let mut outcome = match tokio::time::timeout(
            timeout,
            agent.call(&ctx, &request.action, &data),
        )
        .await
        {
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

    fn reply(&self, request: &Request, outcome: Outcome) -> Option<Outgoing> {
        // Encoded straight from the request's and outcome's fields, without copying them
        // into a `Reply` first: a broadcast makes every node do this at once.
        let Outcome {
            statuscode,
            statusmsg,
            data,
        } = outcome;
        let data = serde_json::Value::Object(data);
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
            subject: request.reply_to.clone(),
            payload,
        })
    }
}
