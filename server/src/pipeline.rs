//! What happens to one message, from bytes to a reply, with no broker involved:
//!
//! decode (size, JSON, protocol) → [verify signature and caller token: the security work
//! item plugs in here] → collective check → TTL → filter (the one evaluator; broadcast only)
//! → agent and action known? → DDL input validation → the action, bounded by the DDL
//! timeout → output defaults → reply.
//!
//! Every stage that refuses a message counts it in [`crate::stats::Stats`] and logs why; a
//! broadcast that does not match the filter is ignored silently. Nothing in a message can make
//! this panic: every failure is a counted drop or a reply with a status code.

use std::time::Duration;

use mco_agents::data::NodeData;
use mco_agents::{ActionContext, NodeInfo, Outcome};
use mco_spec::message::now_millis;
use mco_spec::{NodeView, Reply, ReplyEnvelope, Request, RequestEnvelope, StatusCode};

use crate::node::Node;
use crate::stats::Stats;

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
    /// The reply, for logs and tests.
    pub reply: Reply,
}

impl Node {
    /// Handles one message received in `collective`; returns the reply to publish, if any.
    pub async fn handle(&self, collective: &str, route: Route, payload: &[u8]) -> Option<Outgoing> {
        Stats::bump(&self.stats.total);
        let request = match RequestEnvelope::decode(payload).and_then(|e| e.request()) {
            Ok(request) => request,
            Err(e) => {
                Stats::bump(&self.stats.unvalidated);
                tracing::warn!("dropping a message in {collective}: {e}");
                return None;
            }
        };
        Stats::bump(&self.stats.validated);
        if request.collective != collective {
            Stats::bump(&self.stats.unvalidated);
            tracing::warn!(
                id = %request.id,
                "dropping a request for collective {} received in {collective}",
                request.collective
            );
            return None;
        }
        if request.is_expired(now_millis()) {
            Stats::bump(&self.stats.ttlexpired);
            tracing::info!(id = %request.id, caller = %request.caller, "dropping {}#{}: its TTL of {} s has passed", request.agent, request.action, request.ttl);
            return None;
        }
        if route == Route::Broadcast && !self.selected_by(&request) {
            return None;
        }
        Stats::bump(&self.stats.passed);
        let outcome = self.run_action(&request).await;
        self.reply(&request, outcome)
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
        let reply = Reply {
            request_id: request.id.clone(),
            sender: self.identity().to_string(),
            agent: request.agent.clone(),
            action: request.action.clone(),
            time: now_millis(),
            statuscode: outcome.statuscode,
            statusmsg: outcome.statusmsg,
            data: serde_json::Value::Object(outcome.data),
        };
        let payload = match ReplyEnvelope::unsigned(&reply).and_then(|e| e.to_bytes()) {
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
        if !reply.statuscode.is_ok() {
            Stats::bump(&self.stats.failed);
        }
        tracing::info!(
            id = %request.id, caller = %request.caller, status = reply.statuscode.code(),
            "{}#{} from {}", request.agent, request.action, request.sender
        );
        Some(Outgoing {
            subject: request.reply_to.clone(),
            payload,
            reply,
        })
    }
}
