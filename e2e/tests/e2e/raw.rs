//! A hostile or hand-rolled client's tools: requests built from the `mco_spec` types, signed
//! with any credentials, published on raw NATS connections, their replies read off the reply
//! subject. Tests of a node's own defences use these, so the client library's checks never
//! hide a missing check on the node. Not a client: no discovery, no reply verification.

use std::time::Duration;

use futures::StreamExt;
use mco_spec::message::{new_request_id, now_millis};
use mco_spec::security::Credentials;
use mco_spec::{subjects, Filter, Reply, ReplyEnvelope, Request, RequestEnvelope};
use mco_testsupport::Fleet;
use serde_json::Map;

/// A request in collective `mco` as a caller builds it, with its reply subject under the
/// caller's own prefix, a TTL of 60 s and no inputs.
pub fn request(caller: &str, agent: &str, action: &str, filter: Filter) -> Request<'static> {
    let id = new_request_id();
    Request {
        reply_to: subjects::reply("mco", caller, &id).into(),
        id: id.into(),
        collective: "mco".into(),
        agent: agent.to_string().into(),
        action: action.to_string().into(),
        data: Map::new(),
        filter,
        caller: caller.to_string().into(),
        sender: "attacker".into(),
        time: now_millis(),
        ttl: 60,
        targets: None,
    }
}

/// Credentials for a new identity `name` with a token of `role` (`client`, `server`, …)
/// signed by the fleet's issuer; `extra` are `mco-keys issue` flags (`--agents`, …).
pub fn credentials(fleet: &Fleet, role: &str, name: &str, extra: &[&str]) -> Credentials {
    let (key, token) = fleet.keys.issue(role, name, extra);
    mco_keys::read_credentials(&key, &token).unwrap()
}

/// `request` signed by `creds`, as it goes on the wire.
pub fn signed(request: &Request, creds: &Credentials) -> Vec<u8> {
    RequestEnvelope::signed(request, creds)
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Publishes `bytes` on `subject` and waits up to `wait` for one reply on `reply_to`.
pub async fn send(
    nats: &async_nats::Client,
    subject: &str,
    reply_to: &str,
    bytes: Vec<u8>,
    wait: Duration,
) -> Option<Reply> {
    let mut sub = nats.subscribe(reply_to.to_string()).await.unwrap();
    nats.publish(subject.to_string(), bytes.into())
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let message = tokio::time::timeout(wait, sub.next()).await.ok()??;
    ReplyEnvelope::decode(&message.payload).ok()?.body().ok()
}
