//! Requests whose replies are read elsewhere: [`Client::send`] sends a call without waiting
//! (`--nr`, `--reply-to`), and [`Client::listen`] reads the replies to one request on a
//! subject, in this task, another task or another process (`mco replies`, a web
//! application's worker).
//!
//! A listener is bound to one request id: any other signed reply that reaches its subject (an
//! old one replayed, one to another request) is dropped, through the same reply gate as a
//! call's replies.
//!
//! Not for: batched calls, which wait for each slice's replies before the next.

use mco_spec::{subjects, Reply};

use crate::accept::ReplyGate;
use crate::call::Call;
use crate::client::Client;
use crate::error::{invalid, CallError};
use crate::result::{Mode, Stats};

/// A request sent by [`Client::send`], whose replies are read elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The request id, which every reply carries.
    pub request_id: String,
    /// Where the replies go.
    pub reply_to: String,
    /// Every node the request went to (for a broadcast: the discovered ones).
    pub nodes: Vec<String>,
    /// How it was sent.
    pub stats: Stats,
}

impl Client {
    /// Sends `call` without waiting for replies: they go to its reply subject (the client's
    /// own, where nobody listens, unless [`Call::reply_to`] names one), to be read by
    /// [`Client::listen`] here or in another process. Batching needs the replies of each
    /// slice, so it is refused here.
    pub async fn send(&self, call: Call) -> Result<Sent, CallError> {
        if call.is_batched() {
            return Err(invalid(
                "batching waits for each slice's replies, so it cannot be combined with sending without waiting (--nr, --reply-to)",
            ));
        }
        let mut prepared = self.prepare(&call).await?;
        if !prepared.nodes.is_empty() {
            match prepared.mode {
                Mode::Broadcast => {
                    self.link()
                        .publish(
                            subjects::broadcast(&prepared.collective, &prepared.agent),
                            prepared.payload.clone(),
                        )
                        .await?;
                    self.link().flush().await?;
                }
                Mode::Direct => {
                    if let Some(direct) = &prepared.direct {
                        let sent = self
                            .link()
                            .send_direct(&prepared.collective, &prepared.nodes, direct)
                            .await?;
                        prepared.stats.send_failures = sent.failed;
                    }
                }
            }
            prepared.stats.batches = 1;
        }
        Ok(Sent {
            request_id: prepared.request_id,
            reply_to: prepared.reply_to,
            nodes: prepared.nodes,
            stats: prepared.stats,
        })
    }

    /// Subscribes to `subject` for the replies to request `request_id`; signed replies to
    /// anything else (another request, an old one replayed onto the subject) are dropped.
    /// Subscribe before sending, or replies that arrive first are missed.
    pub async fn listen(&self, subject: &str, request_id: &str) -> Result<Listener, CallError> {
        let subscriber = self.link().subscribe(subject).await?;
        // The subscription must be in place on the broker before anyone sends.
        self.link().flush().await?;
        Ok(Listener {
            client: self.clone(),
            subscriber,
            gate: ReplyGate::new(request_id),
        })
    }
}

/// Replies to one request arriving on a subject; see [`Client::listen`].
pub struct Listener {
    client: Client,
    subscriber: async_nats::Subscriber,
    gate: ReplyGate,
}

impl Listener {
    /// The next verified reply to the request before `deadline`, or `None` at the deadline.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<Reply> {
        use futures::StreamExt;
        loop {
            let message = tokio::time::timeout_at(deadline, self.subscriber.next())
                .await
                .ok()??;
            if let Some(reply) = self.gate.admit(self.client.accept_reply(&message.payload)) {
                return Some(reply);
            }
        }
    }

    /// Messages that were not replies to the request (malformed, strays, duplicates).
    pub fn dropped(&self) -> usize {
        self.gate.dropped
    }

    /// Replies whose signature did not verify.
    pub fn forged(&self) -> usize {
        self.gate.forged
    }
}
