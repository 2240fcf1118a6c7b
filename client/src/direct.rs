//! Sending direct requests: into the collective's JetStream work queue, where each waits for
//! its node (up to its TTL and the queue's maximum age), or — when the broker has no
//! JetStream or queuing is turned off — on the plain direct subject, where only nodes that
//! are up now get them.
//!
//! Whether a collective's queue can be used is found out once per [`crate::Client`] and
//! remembered ([`QueueCache`]), with the stream's limits, so that a request the broker refuses
//! to queue is reported in words ("the direct queue for web1 is full (1000 waiting)"). The
//! stream is created with the client's `[direct_queue]` settings when it does not exist yet (a
//! request to a fleet whose nodes have never started); nodes bring its settings in line with
//! their configuration. Under the broker permissions of `mco broker config` clients may not
//! create it: `mco broker setup` does.
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

/// What [`QueueUse`] each collective has, once found out, with its stream's limits.
#[derive(Debug, Default)]
pub struct QueueCache {
    by_collective: tokio::sync::Mutex<HashMap<String, (QueueUse, Option<Limits>)>>,
}

/// The limits of a collective's stream, for saying which one a refused request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    per_node: i64,
    messages: i64,
    bytes: i64,
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
        match RequestEnvelope::copy_for(&self.envelope, &self.targets, node) {
            Ok(Some(copy)) => Ok(Bytes::from(copy)),
            Ok(None) => Err(ClientError::InvalidInput(format!(
                "{node} is not one of the request's targets"
            ))),
            Err(e) => Err(ClientError::InvalidInput(format!(
                "cannot encode the request: {e}"
            ))),
        }
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
        self.direct_queue(collective).await.0
    }

    async fn direct_queue(&self, collective: &str) -> (QueueUse, Option<Limits>) {
        if !self.options().direct_queue {
            return (
                QueueUse::NotQueued("direct_queue = false in the client configuration".into()),
                None,
            );
        }
        let mut cache = self.queues().by_collective.lock().await;
        if let Some(known) = cache.get(collective) {
            return known.clone();
        }
        let found = match mco_transport::ensure_stream(
            self.jetstream(),
            collective,
            &self.options().queue_settings,
            mco_transport::Ownership::UseExisting,
        )
        .await
        {
            Ok(stream) => {
                let config = &stream.cached_info().config;
                let limits = Limits {
                    per_node: config.max_messages_per_subject,
                    messages: config.max_messages,
                    bytes: config.max_bytes,
                };
                (QueueUse::Queued, Some(limits))
            }
            Err(e) => {
                tracing::warn!("direct requests in {collective} are not queued: {e}");
                let why = match e {
                    // The broker permissions of `mco broker config` let a client read the
                    // stream but not create it; a refused create goes unanswered.
                    mco_transport::QueueError::TimedOut(_) => format!(
                        "{e}; if the broker runs the permissions of `mco broker config`, run `mco broker setup` to create the stream"
                    ),
                    _ => e.to_string(),
                };
                (QueueUse::NotQueued(why), None)
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
        let (queue, limits) = self.direct_queue(collective).await;
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
                        Err(e) => {
                            failed.push((node.clone(), self.refusal(collective, node, &e, limits)))
                        }
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
                        failed.push((node.clone(), self.refusal(collective, node, &e, limits)));
                    }
                }
                if !nodes.is_empty() && failed.len() == nodes.len() {
                    return Err(ClientError::NotQueued(not_queued_summary(&failed)));
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

    /// Why the broker did not queue the request for `node`, in words.
    fn refusal(
        &self,
        collective: &str,
        node: &str,
        error: &async_nats::jetstream::context::PublishError,
        limits: Option<Limits>,
    ) -> String {
        use mco_transport::Refusal;
        let subject = subjects::direct(collective, node);
        match mco_transport::refusal(error) {
            Refusal::NodeFull => match limits {
                Some(l) => format!("the direct queue for {node} is full ({} waiting)", l.per_node),
                None => format!("the direct queue for {node} is full"),
            },
            Refusal::QueueFull(why) => match limits {
                Some(l) => format!(
                    "the direct queue of collective {collective} is full (at most {} requests, {} bytes): {why}",
                    l.messages, l.bytes
                ),
                None => format!("the direct queue of collective {collective} is full: {why}"),
            },
            // A publish the broker's permissions refuse is dropped without an answer.
            Refusal::TimedOut if self.denied().refused(&subject) => format!(
                "the broker does not let this caller send to {subject} ({node} is not a node in the broker permissions of `mco broker config`)"
            ),
            Refusal::TimedOut => "the broker did not confirm that it queued the request".into(),
            Refusal::NotCaptured => format!(
                "no stream takes {subject} (was the stream {} deleted? `mco broker setup` makes it)",
                mco_transport::stream_name(collective)
            ),
            Refusal::Other(why) => format!("the broker refused to queue it: {why}"),
            _ => format!("the broker refused to queue it: {error}"),
        }
    }
}

/// One line for "not one request was queued": the first node's reason, and how many more.
fn not_queued_summary(failed: &[(String, String)]) -> String {
    match failed {
        [] => "no request could be queued".into(),
        [(node, why)] => format!("{node}: {why}"),
        [(node, why), rest @ ..] => format!(
            "{node}: {why} (and {} more node{} not queued)",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ),
    }
}
