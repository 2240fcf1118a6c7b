//! How direct requests reach this node: from its durable consumer on the collective's
//! JetStream work queue (so requests sent while the node was down wait for it), or, when the
//! broker has no JetStream or the queue is disabled, from the plain direct subject.
//!
//! [`direct_requests`] sets this up for one collective and keeps it up: it retries while the
//! broker is unreachable, falls back to the plain subject (with one warning) when JetStream is
//! missing, and sets the consumer up again when its message stream ends (a broker restart
//! with memory storage, a deleted consumer). With `[direct_queue] provisioned = true` (broker
//! permissions from `mco broker config`) it only looks up the consumer `mco broker setup`
//! made, and says to run that when it is missing. Messages come out as [`Incoming`], which the
//! daemon acknowledges once it has handled them ([`Incoming::acknowledge`]).
//!
//! Not for: deciding what to do with a request (the pipeline) or publishing replies (the
//! daemon).

use std::time::Duration;

use async_nats::jetstream;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

use crate::config::Settings;

/// A message for this node, with what is needed to acknowledge it.
#[derive(Debug)]
pub enum Incoming {
    /// From a plain subscription: nothing to acknowledge.
    Core(async_nats::Message),
    /// From the JetStream work queue: acknowledged after handling, so a node that dies
    /// mid-action gets it again (and recognises it by its id).
    Queued {
        /// The message.
        message: Box<jetstream::Message>,
        /// Its consumer's ack wait: how long the node may hold it without reporting progress.
        ack_wait: Duration,
    },
}

impl Incoming {
    /// The message body.
    pub fn payload(&self) -> &[u8] {
        match self {
            Incoming::Core(m) => &m.payload,
            Incoming::Queued { message, .. } => &message.payload,
        }
    }

    /// Keeps JetStream from handing the message to the node again while a long action runs;
    /// returns a task to abort when the handling is over (none for plain messages).
    pub fn keep_alive(&self) -> Option<tokio::task::JoinHandle<()>> {
        let Incoming::Queued { message, ack_wait } = self else {
            return None;
        };
        let ack_wait = *ack_wait;
        let reply = message.reply.clone()?;
        let client = message.context.client();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(ack_wait / 3);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(e) = client.publish(reply.clone(), "+WPI".into()).await {
                    tracing::debug!("could not report progress on a queued request: {e}");
                }
            }
        }))
    }

    /// Tells JetStream the message is done with (handled, refused or dropped alike: every
    /// outcome is final, and a repeat would be refused as a replay anyway). A request refused
    /// as busy is acknowledged too: its caller has the refusal, and its id is in the replay
    /// memory, so it must not come back and run later than its caller was told.
    pub async fn acknowledge(&self) {
        if let Incoming::Queued { message, .. } = self {
            if let Err(e) = message.ack().await {
                tracing::warn!("could not acknowledge a queued request: {e}");
            }
        }
    }
}

/// How long to wait before setting the queue up again after a failure.
const RETRY: Duration = Duration::from_secs(2);

/// How long to wait before looking again for a stream or consumer that an administrator must
/// make (`mco broker setup`): long enough not to flood the log, short enough that the node
/// starts taking requests soon after.
const NOT_SET_UP_RETRY: Duration = Duration::from_secs(10);

/// Starts feeding `collective`'s direct requests for this node into `sink`, at most
/// `max_pending` handed out and not yet acknowledged, and returns the task doing it (abort
/// it to stop).
pub fn direct_requests(
    client: async_nats::Client,
    settings: &Settings,
    collective: &str,
    max_pending: usize,
    sink: mpsc::Sender<(String, Incoming)>,
) -> tokio::task::JoinHandle<()> {
    let collective = collective.to_string();
    let identity = settings.identity.clone();
    let queue = settings.direct_queue.clone();
    tokio::spawn(async move {
        let subject = mco_spec::subjects::direct(&collective, &identity);
        if queue.enabled {
            let js = jetstream::new(client.clone());
            loop {
                match consume_queue(&js, &collective, &identity, &queue, max_pending, &sink).await {
                    QueueEnd::SinkClosed => return,
                    QueueEnd::NoJetStream(reason) => {
                        tracing::warn!(
                            "direct requests in {collective} are not queued: {reason}; taking them from {subject} (requests sent while this node is down are lost)"
                        );
                        break;
                    }
                    QueueEnd::Retry(reason) => {
                        tracing::warn!(
                            "direct-request queue in {collective}: {reason}; retrying in {RETRY:?}"
                        );
                        tokio::time::sleep(RETRY).await;
                    }
                    QueueEnd::NotSetUp(reason) => {
                        tracing::error!(
                            "direct requests in {collective} cannot be taken: {reason}; retrying in {NOT_SET_UP_RETRY:?}"
                        );
                        tokio::time::sleep(NOT_SET_UP_RETRY).await;
                    }
                }
            }
        }
        plain_subject(&client, subject, &collective, sink).await;
    })
}

enum QueueEnd {
    SinkClosed,
    NoJetStream(String),
    Retry(String),
    /// An administrator must make the stream or consumer (`mco broker setup`).
    NotSetUp(String),
}

impl From<mco_transport::QueueError> for QueueEnd {
    fn from(e: mco_transport::QueueError) -> Self {
        match e {
            mco_transport::QueueError::Unavailable(reason) => QueueEnd::NoJetStream(reason),
            missing @ mco_transport::QueueError::Missing { .. } => {
                QueueEnd::NotSetUp(missing.to_string())
            }
            other => QueueEnd::Retry(other.to_string()),
        }
    }
}

/// The node's consumer: looked up as `mco broker setup` made it (`provisioned`), or created
/// with the stream, which is brought in line with this node's settings.
async fn consumer(
    js: &jetstream::Context,
    collective: &str,
    identity: &str,
    queue: &crate::config::DirectQueueConfig,
    max_pending: usize,
) -> Result<jetstream::consumer::PullConsumer, QueueEnd> {
    let ack_wait = Duration::from_secs(queue.ack_wait_seconds);
    if queue.provisioned {
        return Ok(mco_transport::existing_consumer(
            js,
            collective,
            identity,
            max_pending,
            ack_wait,
        )
        .await?);
    }
    let stream = mco_transport::ensure_stream(
        js,
        collective,
        &queue.settings,
        mco_transport::Ownership::Configure,
    )
    .await
    .map_err(|e| match QueueEnd::from(e) {
        // A broker that does not answer stream look-ups may be one whose permissions forbid
        // them: say what to change.
        QueueEnd::Retry(reason) => QueueEnd::Retry(format!(
            "{reason} (under the broker permissions of `mco broker config`, set [direct_queue] provisioned = true and run `mco broker setup`)"
        )),
        other => other,
    })?;
    Ok(mco_transport::node_consumer(&stream, collective, identity, max_pending, ack_wait).await?)
}

async fn consume_queue(
    js: &jetstream::Context,
    collective: &str,
    identity: &str,
    queue: &crate::config::DirectQueueConfig,
    max_pending: usize,
    sink: &mpsc::Sender<(String, Incoming)>,
) -> QueueEnd {
    let consumer = match consumer(js, collective, identity, queue, max_pending).await {
        Ok(c) => c,
        Err(end) => return end,
    };
    let ack_wait = consumer.cached_info().config.ack_wait;
    let mut messages = match consumer.messages().await {
        Ok(m) => m,
        Err(e) => return QueueEnd::Retry(format!("cannot read the consumer: {e}")),
    };
    tracing::info!(
        "taking direct requests in {collective} from stream {} (consumer {})",
        mco_transport::stream_name(collective),
        mco_transport::consumer_name(identity)
    );
    let mut sink = sink.clone();
    while let Some(item) = messages.next().await {
        match item {
            Ok(message) => {
                if let Ok(info) = message.info() {
                    if info.delivered > 1 {
                        tracing::info!(
                            "queued request delivered again (delivery {}); its id decides whether it runs",
                            info.delivered
                        );
                    }
                }
                if sink
                    .send((
                        collective.to_string(),
                        Incoming::Queued {
                            message: Box::new(message),
                            ack_wait,
                        },
                    ))
                    .await
                    .is_err()
                {
                    return QueueEnd::SinkClosed;
                }
            }
            // Heartbeat gaps and pull errors during a broker restart: the stream keeps going
            // and recovers by itself; only its end means the consumer must be set up again.
            Err(e) => tracing::debug!("direct-request queue in {collective}: {e}"),
        }
    }
    QueueEnd::Retry("the consumer's message stream ended".into())
}

async fn plain_subject(
    client: &async_nats::Client,
    subject: String,
    collective: &str,
    mut sink: mpsc::Sender<(String, Incoming)>,
) {
    let mut subscriber = loop {
        match client.subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!("cannot subscribe to {subject}: {e}; retrying in {RETRY:?}");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    tracing::debug!("subscribed to {subject}");
    while let Some(message) = subscriber.next().await {
        if sink
            .send((collective.to_string(), Incoming::Core(message)))
            .await
            .is_err()
        {
            return;
        }
    }
}
