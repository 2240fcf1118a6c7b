//! The broker link: the NATS connection of a client, what it publishes and subscribes, and
//! direct requests — into the collective's JetStream work queue, where each waits for its
//! node (up to its TTL and the queue's maximum age), or, when the broker has no JetStream or
//! queuing is turned off, on the plain direct subject, where only nodes that are up now get
//! them.
//!
//! Every connection reads its inbox under its own prefix ([`mco_transport::inbox_prefix`]),
//! the only one the broker permissions of `mco broker config` let it read, and remembers the
//! subjects the broker refused it (`Denials`): a refused publish is dropped without an
//! answer, so that is how a sender learns why a request got no acknowledgement.
//!
//! Whether a collective's queue can be used is found out once per link and remembered, with
//! the stream's limits, so that a request the broker refuses to queue is reported in words
//! ("the direct queue for web1 is full (1000 waiting)"). The stream is created with the
//! client's `[direct_queue]` settings when it does not exist yet (a request to a fleet whose
//! nodes have never started); nodes bring its settings in line with theirs. Under the broker
//! permissions of `mco broker config` clients may not create it: `mco broker setup` does.
//!
//! Not for: building or signing requests, or accepting replies.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use mco_spec::{subjects, RequestEnvelope, TargetSet};

use crate::error::{broker, invalid, CallError, CallErrorKind, ConnectError, ConnectErrorKind};

/// How direct requests travel in one collective.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueUse {
    /// Through the JetStream work queue: a node that is down gets them when it starts.
    Queued,
    /// On plain subjects, with the reason (no JetStream, or turned off): nodes then read
    /// the plain subjects too.
    NotQueued(String),
    /// Not at all for now: the broker has JetStream, so the nodes take direct requests from
    /// the queue, but the queue cannot be reached (its stream's servers are down, the
    /// cluster is electing a leader, permissions forbid it). Sending on plain subjects would
    /// reach no one, so nothing is sent. Found out again on the next call.
    Unusable(String),
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
    fn copy_for(&self, node: &str) -> Result<Bytes, CallError> {
        match RequestEnvelope::copy_for(&self.envelope, &self.targets, node) {
            Ok(Some(copy)) => Ok(Bytes::from(copy)),
            Ok(None) => Err(invalid(format!(
                "{node} is not one of the request's targets"
            ))),
            Err(e) => Err(invalid(format!("cannot encode the request: {e}"))),
        }
    }
}

/// The outcome of sending one request to several nodes directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectSend {
    /// Nodes whose request the broker refused (queue full, message too large), with why.
    pub(crate) failed: Vec<(String, String)>,
}

/// The subjects the broker refused this connection to publish to, most recent last (a few
/// dozen).
#[derive(Debug, Clone, Default)]
pub(crate) struct Denials(Arc<Mutex<VecDeque<String>>>);

impl Denials {
    const KEPT: usize = 64;

    /// Notes a server error if it is a publish permission violation.
    fn record(&self, error: &str) {
        let Some(subject) = error
            .strip_prefix("Permissions Violation for Publish to ")
            .map(|s| s.trim_matches(['"', '\'']).to_string())
        else {
            return;
        };
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() == Self::KEPT {
            list.pop_front();
        }
        list.push_back(subject);
    }

    /// Whether the broker refused a publish to `subject`.
    fn refused(&self, subject: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|s| s == subject)
    }
}

/// Connects to one of `brokers` with `auth` as `role` `name`, failing within `timeout`; the
/// subjects the broker refuses go into `denied`.
async fn connect_nats(
    brokers: &[String],
    auth: &mco_keys::BrokerAuth,
    role: mco_transport::BrokerRole,
    name: &str,
    timeout: Duration,
    denied: &Denials,
) -> Result<async_nats::Client, ConnectError> {
    for b in brokers {
        if let Err(e) = b.parse::<async_nats::ServerAddr>() {
            return Err(ConnectError::with_source(
                ConnectErrorKind::InvalidOptions,
                format!("{b:?} is not a NATS URL: {e}"),
                e,
            ));
        }
    }
    let recorder = denied.clone();
    let options = async_nats::ConnectOptions::new()
        .name(format!("mco {name}"))
        .custom_inbox_prefix(mco_transport::inbox_prefix(role, name))
        .connection_timeout(timeout)
        .ping_interval(mco_transport::PING_INTERVAL)
        .event_callback(move |event| {
            let recorder = recorder.clone();
            async move {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = event
                {
                    recorder.record(&text);
                }
            }
        });
    let options = auth
        .apply(options)
        .await
        .map_err(|e| ConnectError::from_source(ConnectErrorKind::BrokerAuth, e))?;
    let unavailable = |reason: String| {
        format!(
            "cannot connect to the broker at {}: {reason}",
            brokers.join(",")
        )
    };
    match tokio::time::timeout(timeout, options.connect(brokers)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(ConnectError::with_source(
            ConnectErrorKind::Unavailable,
            unavailable(e.to_string()),
            e,
        )),
        Err(_) => Err(ConnectError::new(
            ConnectErrorKind::Unavailable,
            unavailable(format!("no answer within {timeout:?}")),
        )),
    }
}

/// A raw NATS connection to one of `brokers` with `auth` as `role` `name` (`mco broker
/// setup` connects as the admin this way), with the same rules as a client's: its own inbox
/// prefix, failing within `timeout`.
pub async fn connect_as(
    brokers: &[String],
    auth: &mco_keys::BrokerAuth,
    role: mco_transport::BrokerRole,
    name: &str,
    timeout: Duration,
) -> Result<async_nats::Client, ConnectError> {
    connect_nats(brokers, auth, role, name, timeout, &Denials::default()).await
}

/// How long the broker has to confirm that it queued a direct request (JetStream's publish
/// acknowledgement) or to answer a stream look-up; an unconfirmed request is reported per node
/// with the reason ([`Link::send_direct`]).
const QUEUE_CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// What the link needs to know of the client's settings.
#[derive(Debug, Clone)]
pub(crate) struct LinkSettings {
    pub(crate) brokers: Vec<String>,
    pub(crate) auth: mco_keys::BrokerAuth,
    pub(crate) caller: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) direct_queue: bool,
    pub(crate) queue_settings: mco_transport::QueueSettings,
}

/// A client's connection to the broker.
pub(crate) struct Link {
    nats: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    denied: Denials,
    /// The longest any one exchange with the broker may take (the connect timeout): while
    /// the connection is down async-nats holds a flush, and queues a publish or subscribe,
    /// until it reconnects, which may be never.
    broker_wait: Duration,
    direct_queue: bool,
    queue_settings: mco_transport::QueueSettings,
    /// Per collective: how direct requests travel, found out once, with the stream's limits.
    queues: tokio::sync::Mutex<HashMap<String, (QueueUse, Option<Limits>)>>,
}

impl Link {
    /// Connects as the caller.
    pub(crate) async fn connect(settings: LinkSettings) -> Result<Link, ConnectError> {
        let denied = Denials::default();
        let nats = connect_nats(
            &settings.brokers,
            &settings.auth,
            mco_transport::BrokerRole::Client,
            &settings.caller,
            settings.connect_timeout,
            &denied,
        )
        .await?;
        let mut jetstream = async_nats::jetstream::new(nats.clone());
        jetstream.set_timeout(QUEUE_CONFIRM_WAIT);
        Ok(Link {
            jetstream,
            nats,
            denied,
            broker_wait: settings.connect_timeout,
            direct_queue: settings.direct_queue,
            queue_settings: settings.queue_settings,
            queues: tokio::sync::Mutex::default(),
        })
    }

    /// The NATS connection.
    pub(crate) fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    pub(crate) async fn subscribe(
        &self,
        subject: &str,
    ) -> Result<async_nats::Subscriber, CallError> {
        let subscribing = self.nats.subscribe(subject.to_string());
        match tokio::time::timeout(self.broker_wait, subscribing).await {
            Ok(done) => done.map_err(broker),
            Err(_) => Err(self.unanswered(self.broker_wait)),
        }
    }

    pub(crate) async fn publish(&self, subject: String, payload: Bytes) -> Result<(), CallError> {
        let publishing = self.nats.publish(subject, payload);
        match tokio::time::timeout(self.broker_wait, publishing).await {
            Ok(done) => done.map_err(broker),
            Err(_) => Err(self.unanswered(self.broker_wait)),
        }
    }

    /// Waits until the broker has what was published and subscribed so far, for at most
    /// the connect timeout.
    pub(crate) async fn flush(&self) -> Result<(), CallError> {
        self.flush_before(tokio::time::Instant::now() + self.broker_wait)
            .await
    }

    /// Like [`Self::flush`], giving up at `deadline` (a call's or a discovery's end) if that
    /// comes first.
    pub(crate) async fn flush_before(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(), CallError> {
        let started = tokio::time::Instant::now();
        let deadline = deadline.min(started + self.broker_wait);
        match tokio::time::timeout_at(deadline, self.nats.flush()).await {
            Ok(done) => done.map_err(broker),
            Err(_) => Err(self.unanswered(deadline - started)),
        }
    }

    /// The error for an exchange with the broker that did not end within `waited`.
    pub(crate) fn unanswered(&self, waited: Duration) -> CallError {
        let state = match self.nats.connection_state() {
            async_nats::connection::State::Connected => "the broker did not answer",
            _ => "the connection to the broker is lost",
        };
        CallError::new(
            CallErrorKind::Broker,
            format!(
                "{state}: nothing sent was confirmed within {:.1} s",
                waited.as_secs_f64()
            ),
        )
    }

    /// How many nodes the broker knows in `collective`: the consumers of its direct queue
    /// (one per node that ever started, kept until `mco broker` removes it), asked afresh,
    /// within `limit`. `None` without the queue, or when the broker does not say in time.
    /// Discovery compares it with what its cache entry saw, to notice a node that joined.
    pub(crate) async fn fleet_size(&self, collective: &str, limit: Duration) -> Option<u64> {
        if !self.direct_queue {
            return None;
        }
        let name = mco_transport::stream_name(collective);
        let asked = async {
            // Looking the stream up is one STREAM.INFO request, the count in its answer.
            let stream = self.jetstream.get_stream(&name).await.ok()?;
            Some(stream.cached_info().state.consumer_count as u64)
        };
        tokio::time::timeout(limit, asked).await.ok().flatten()
    }

    /// Returns once the broker has sent this connection everything it had for it when
    /// asked, or after `limit`: the broker itself answers a request for the direct queue's
    /// stream information (with the information, an error, or "no responders" where no
    /// JetStream answers), and its answer arrives behind whatever was already on its way
    /// here. Every client may ask it (`mco broker config`).
    pub(crate) async fn settle(&self, collective: &str, limit: Duration) {
        let subject = mco_transport::stream_info_subject(&mco_transport::stream_name(collective));
        let asked = self.nats.request(subject, bytes::Bytes::new());
        let _ = tokio::time::timeout(limit, asked).await;
    }

    /// How direct requests travel in `collective` (found out on first use).
    pub(crate) async fn queue_use(&self, collective: &str) -> QueueUse {
        self.queue(collective).await.0
    }

    async fn queue(&self, collective: &str) -> (QueueUse, Option<Limits>) {
        if !self.direct_queue {
            return (
                QueueUse::NotQueued("direct_queue = false in the client configuration".into()),
                None,
            );
        }
        let mut cache = self.queues.lock().await;
        if let Some(known) = cache.get(collective) {
            return known.clone();
        }
        let mut looked_up = self.look_up_stream(collective).await;
        // A cluster that lost the server leading the stream answers again once it has
        // elected another: one more try covers that.
        if let Err(mco_transport::QueueError::TimedOut(_)) = &looked_up {
            looked_up = self.look_up_stream(collective).await;
        }
        let found = match looked_up {
            Ok(stream) => {
                let config = &stream.cached_info().config;
                let limits = Limits {
                    per_node: config.max_messages_per_subject,
                    messages: config.max_messages,
                    bytes: config.max_bytes,
                };
                (QueueUse::Queued, Some(limits))
            }
            // No JetStream here: the nodes read plain subjects, and so this is settled.
            Err(e @ mco_transport::QueueError::Unavailable(_)) => {
                tracing::warn!("direct requests in {collective} are not queued: {e}");
                (QueueUse::NotQueued(e.to_string()), None)
            }
            Err(e) => {
                let why = match e {
                    // The broker permissions of `mco broker config` let a client read the
                    // stream but not create it; a refused create goes unanswered.
                    mco_transport::QueueError::TimedOut(_) => format!(
                        "{e} (the servers that hold the stream may be down; or the broker runs the permissions of `mco broker config` and the stream was never made: run `mco broker setup`)"
                    ),
                    _ => e.to_string(),
                };
                tracing::warn!("direct requests in {collective} cannot be queued: {why}");
                return (QueueUse::Unusable(why), None);
            }
        };
        cache.insert(collective.to_string(), found.clone());
        found
    }

    async fn look_up_stream(
        &self,
        collective: &str,
    ) -> Result<async_nats::jetstream::stream::Stream, mco_transport::QueueError> {
        mco_transport::ensure_stream(
            &self.jetstream,
            collective,
            &self.queue_settings,
            mco_transport::Ownership::UseExisting,
        )
        .await
    }

    /// The longest [`Self::send_direct`] can take when the broker answers nothing: the wait
    /// for the queue's confirmations and then for the flush. A caller that bounds a send by
    /// its own deadline gives it at least this, so that a refusal is reported with its reason
    /// rather than as silence.
    pub(crate) fn send_direct_limit(&self) -> Duration {
        QUEUE_CONFIRM_WAIT + self.broker_wait
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
    ) -> Result<DirectSend, CallError> {
        let (queue, limits) = self.queue(collective).await;
        let mut failed = Vec::new();
        match &queue {
            QueueUse::Queued => {
                let mut pending = Vec::with_capacity(nodes.len());
                for node in nodes {
                    let payload = request.copy_for(node)?;
                    match self
                        .jetstream
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
                    return Err(CallError::new(
                        CallErrorKind::NotQueued,
                        format!(
                            "no request could be queued: {}",
                            not_queued_summary(&failed)
                        ),
                    ));
                }
            }
            QueueUse::Unusable(why) => return Err(unusable_queue(collective, why)),
            QueueUse::NotQueued(_) => {
                for node in nodes {
                    self.publish(subjects::direct(collective, node), request.copy_for(node)?)
                        .await?;
                }
            }
        }
        self.flush().await?;
        Ok(DirectSend { failed })
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
            Refusal::TimedOut if self.denied.refused(&subject) => format!(
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

/// The error of a call whose direct requests cannot be queued now (see [`QueueUse::Unusable`]).
pub(crate) fn unusable_queue(collective: &str, why: &str) -> CallError {
    CallError::new(
        CallErrorKind::NotQueued,
        format!(
            "direct requests in {collective} cannot be queued, so none was sent (the nodes take them from the queue; plain subjects would reach none of them): {why}"
        ),
    )
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
