//! Sending direct requests: into the collective's JetStream work queue, where each waits for
//! its node (up to its TTL and the queue's maximum age), or — when the broker has no
//! JetStream or queuing is turned off — on the plain direct subject, where only nodes that
//! are up now get them.
//!
//! Whether a collective's queue can be used is found out once per [`crate::Client`] and
//! remembered ([`QueueCache`]). The stream is created with default settings when it does not
//! exist yet (a request to a fleet whose nodes have never started); nodes bring its settings
//! in line with their configuration.
//!
//! Not for: building or signing requests, or reading replies.

use std::collections::HashMap;

use bytes::Bytes;
use futures::future::join_all;
use mco_spec::{subjects, RequestEnvelope, TargetSet};

use crate::client::{Client, ClientError};

/// How direct requests travel in one collective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueUse {
    /// Through the JetStream work queue: a node that is down gets them when it starts.
    Queued,
    /// On plain subjects, with the reason (no JetStream, or turned off).
    NotQueued(String),
}

/// What [`QueueUse`] each collective has, once found out.
#[derive(Debug, Default)]
pub struct QueueCache {
    by_collective: tokio::sync::Mutex<HashMap<String, QueueUse>>,
}

/// A signed direct request and the set of nodes it is bound to. Each node gets its own copy:
/// the same signed envelope plus the proof that it is one of the targets.
#[derive(Debug)]
pub(crate) struct DirectRequest {
    /// The encoded envelope, without a target proof.
    pub(crate) envelope: Bytes,
    /// The nodes the signed request names.
    pub(crate) targets: TargetSet,
}

impl DirectRequest {
    /// The copy for `node`.
    fn copy_for(&self, node: &str) -> Result<Bytes, ClientError> {
        let proof = self.targets.proof(node).ok_or_else(|| {
            ClientError::InvalidInput(format!("{node} is not one of the request's targets"))
        })?;
        RequestEnvelope::append_target(&self.envelope, &proof)
            .map(Bytes::from)
            .map_err(|e| ClientError::InvalidInput(format!("cannot encode the request: {e}")))
    }
}

/// The outcome of sending one request to several nodes directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectSend {
    /// How the requests travelled.
    pub queue: QueueUse,
    /// Nodes whose request the broker refused (queue full, message too large), with why.
    pub failed: Vec<(String, String)>,
}

impl Client {
    /// How direct requests travel in `collective` (found out on first use).
    pub async fn direct_queue_use(&self, collective: &str) -> QueueUse {
        if !self.options().direct_queue {
            return QueueUse::NotQueued("direct_queue = false in the client configuration".into());
        }
        let mut cache = self.queues().by_collective.lock().await;
        if let Some(known) = cache.get(collective) {
            return known.clone();
        }
        let found = match mco_transport::ensure_stream(
            self.jetstream(),
            collective,
            &mco_transport::QueueSettings::default(),
            mco_transport::Ownership::UseExisting,
        )
        .await
        {
            Ok(_) => QueueUse::Queued,
            Err(e) => {
                tracing::warn!("direct requests in {collective} are not queued: {e}");
                QueueUse::NotQueued(e.to_string())
            }
        };
        cache.insert(collective.to_string(), found.clone());
        found
    }

    /// Sends `request` to each of `nodes` (which must be among its targets) on its direct
    /// subject in `collective`, each node its own copy.
    ///
    /// Queued requests are published together and their acknowledgements awaited together,
    /// so queuing costs about one broker round trip however many nodes there are, and it
    /// overlaps with the nodes' work (their replies wait in the reply subscription).
    pub(crate) async fn send_direct(
        &self,
        collective: &str,
        nodes: &[String],
        request: &DirectRequest,
    ) -> Result<DirectSend, ClientError> {
        let queue = self.direct_queue_use(collective).await;
        let mut failed = Vec::new();
        match &queue {
            QueueUse::Queued => {
                let mut pending = Vec::with_capacity(nodes.len());
                for node in nodes {
                    let payload = request.copy_for(node)?;
                    match self
                        .jetstream()
                        .publish(subjects::direct(collective, node), payload)
                        .await
                    {
                        Ok(ack) => pending.push((node, ack)),
                        Err(e) => failed.push((node.clone(), e.to_string())),
                    }
                }
                let acks = join_all(
                    pending
                        .into_iter()
                        .map(|(node, ack)| async move { (node, ack.await) }),
                )
                .await;
                for (node, ack) in acks {
                    if let Err(e) = ack {
                        failed.push((node.clone(), format!("not queued: {e}")));
                    }
                }
                if !nodes.is_empty() && failed.len() == nodes.len() {
                    let (_, reason) = &failed[0];
                    return Err(ClientError::Broker(format!(
                        "no request could be queued: {reason}"
                    )));
                }
            }
            QueueUse::NotQueued(_) => {
                for node in nodes {
                    self.publish_bytes(subjects::direct(collective, node), request.copy_for(node)?)
                        .await?;
                }
            }
        }
        self.flush().await?;
        Ok(DirectSend { queue, failed })
    }
}
