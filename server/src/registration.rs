//! Publishing this node's registration: identity, facts, classes, agents and collectives,
//! signed with the node's key like a reply, on `<collective>.broadcast.agent.registration` in
//! each of its collectives, every `[registration] interval_seconds` after a random first
//! delay of up to `splay_seconds`.
//!
//! Not for: receiving registrations (that is the registry service, [`crate::registry`]).

use std::sync::Arc;
use std::time::Duration;

use mco_agents::NodeInfo;
use mco_spec::message::now_millis;
use mco_spec::registration::{Registration, RegistrationEnvelope};

use crate::node::Node;

/// What `node` says about itself now.
pub fn registration(node: &Node) -> Registration {
    Registration {
        identity: node.settings.identity.clone(),
        collectives: node.settings.collectives.clone(),
        facts: (*node.facts()).clone(),
        classes: (*node.classes()).clone(),
        agents: node.agent_names().to_vec(),
        time: now_millis(),
    }
}

/// The registration as bytes to publish: signed with the node's credentials, or unsigned
/// when the node runs insecure.
pub fn encode(node: &Node) -> Result<Vec<u8>, serde_json::Error> {
    let registration = registration(node);
    match &node.security.credentials {
        Some(credentials) => RegistrationEnvelope::signed(&registration, credentials),
        None => RegistrationEnvelope::unsigned(&registration),
    }?
    .to_bytes()
}

/// A random delay in `0..=splay`, different for each process: a fleet restarted together
/// spreads its first registrations out.
fn first_delay(splay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per process: enough randomness for a splay without a
    // random-number crate.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let millis = u64::try_from(splay.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(random % millis.saturating_add(1))
}

/// Starts publishing registrations, or returns `None` when registration is off. The daemon
/// aborts the task on shutdown.
pub fn spawn(client: async_nats::Client, node: Arc<Node>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = node.settings.registration.interval()?;
    let splay = Duration::from_secs(node.settings.registration.splay_seconds);
    Some(tokio::spawn(async move {
        tokio::time::sleep(first_delay(splay)).await;
        let mut ticks = tokio::time::interval(interval);
        // After a long stall (a suspended VM), register once, not once per missed tick.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            publish(&client, &node).await;
        }
    }))
}

async fn publish(client: &async_nats::Client, node: &Node) {
    let payload = match encode(node) {
        Ok(bytes) => bytes::Bytes::from(bytes),
        Err(e) => {
            tracing::warn!("cannot encode the registration: {e}");
            return;
        }
    };
    for collective in &node.settings.collectives {
        let subject = mco_spec::subjects::registration(collective);
        match client.publish(subject.clone(), payload.clone()).await {
            Ok(()) => tracing::debug!("registered on {subject}"),
            Err(e) => tracing::warn!("cannot publish the registration on {subject}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_delay_stays_within_the_splay() {
        for _ in 0..100 {
            assert!(first_delay(Duration::from_secs(3)) <= Duration::from_secs(3));
        }
        assert_eq!(first_delay(Duration::ZERO), Duration::ZERO);
    }
}
