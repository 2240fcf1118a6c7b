//! The NATS seam shared by `mcod`, `mco` and the fleet simulator: the JetStream work queue
//! that holds direct requests until their node takes them, and the broker permissions
//! ([`permissions`]) that confine each connection to its own part.
//!
//! A direct request (`<collective>.node.<identity>`) must be able to wait for a node that is
//! not up yet. Each collective has one work-queue stream over `<collective>.node.>`
//! ([`stream_name`], [`stream_subject`]) bounded by a maximum age, and each node identity has
//! one durable pull consumer filtered to its own subject ([`consumer_name`]). A message stays
//! in the stream until the node acknowledges it, or until it is older than the maximum age.
//! Each node's share is bounded (`max_msgs_per_subject`, refusing new requests rather than
//! dropping queued ones), and so is the whole (`max_msgs`, `max_bytes`); why the broker
//! refused to queue a request is told apart by [`refusal`].
//!
//! On an open broker, whoever needs the stream first creates it with [`ensure_stream`]: a node
//! with its configured [`QueueSettings`] (and it brings an existing stream's settings in line
//! with its own), a client with its own settings only when the stream does not exist yet.
//! Under broker permissions an administrator makes the stream and every node's consumer
//! ([`setup`]) and nodes only look theirs up ([`existing_consumer`]). Brokers without
//! JetStream are detected by [`probe`]; callers then fall back to plain subjects. Each
//! connection reads its inbox under its own prefix ([`inbox_prefix`]).
//!
//! Not for: subject names and message formats (those are `mco_spec`), signing, or running
//! requests. Nothing here decodes a payload.
#![warn(missing_docs)]

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod events;
pub mod permissions;
pub use events::{ensure_events_stream, events_stream_name, EventHistorySettings};
pub use permissions::permissions;

/// The default time a node may hold a queued request without acknowledging it before
/// JetStream hands it out again. Nodes report progress three times within it while an action
/// runs, so only a node that died lets it run out; it is also how long a request taken by a
/// node that was then killed waits before the restarted node gets it again.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// How often every mco connection pings its server. A link that is cut without a reset (a
/// partition, a dead host) is noticed after two unanswered pings, so a node reconnects
/// elsewhere within about half a minute instead of after the client library's default of
/// minutes plus TCP's retransmission backoff; at 10 s a fleet of 100,000 nodes sends 10,000
/// pings a second across its cluster, which NATS serves without noticing.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Why the direct-request queue could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The broker has no JetStream (or this account may not use it): use plain subjects.
    #[error("the broker has no JetStream: {0}")]
    Unavailable(String),
    /// The broker did not answer in time.
    #[error("JetStream did not answer in time: {0}")]
    TimedOut(String),
    /// The stream could not be created, read or updated.
    #[error("direct-request stream {stream}: {reason}")]
    Stream {
        /// The stream name.
        stream: String,
        /// Why.
        reason: String,
    },
    /// The stream or this node's consumer does not exist, and this side may not create it.
    #[error("{what} does not exist; create it with `mco broker setup` (with the broker's admin credentials)")]
    Missing {
        /// What is missing.
        what: String,
    },
    /// The node's consumer could not be created or updated.
    #[error("direct-request consumer {consumer} on {stream}: {reason}")]
    Consumer {
        /// The stream name.
        stream: String,
        /// The consumer name.
        consumer: String,
        /// Why.
        reason: String,
    },
}

/// Where queued requests are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueStorage {
    /// On disk: queued requests survive a broker restart.
    #[default]
    File,
    /// In memory: faster, lost when the broker restarts.
    Memory,
}

/// The settings of a collective's direct-request stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// How long a request may wait for its node, seconds. A request's own TTL still applies:
    /// a node drops a request whose TTL has passed when it finally takes it.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
    /// Where the broker keeps queued requests.
    #[serde(default)]
    pub storage: QueueStorage,
    /// Copies kept in a JetStream cluster: `"auto"` (the default) keeps [`AUTO_REPLICAS`] in a
    /// cluster and one on a single server.
    #[serde(default)]
    pub replicas: Replicas,
    /// Most bytes queued in the collective; when full, new direct requests are refused (the
    /// sender hears it) rather than queued ones dropped.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: i64,
    /// Most requests queued in the collective, all nodes together; when full, new direct
    /// requests are refused like at `max_bytes`.
    #[serde(default = "default_max_msgs")]
    pub max_msgs: i64,
    /// Most requests waiting for any one node. When a node's share is full, new requests for
    /// it are refused (the sender hears "the direct queue for NODE is full") and nothing
    /// queued is dropped, so junk published for one name cannot take the queue from the
    /// others.
    #[serde(default = "default_max_msgs_per_subject")]
    pub max_msgs_per_subject: i64,
}

fn default_max_age() -> u64 {
    86_400
}
/// The copies of the queue that `replicas = "auto"` keeps in a JetStream cluster: three, so
/// that the queue survives the loss of any one server and keeps a quorum.
pub const AUTO_REPLICAS: usize = 3;

/// How many copies of a collective's queue a JetStream cluster keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Replicas {
    /// [`AUTO_REPLICAS`] where the broker is a JetStream cluster that can hold them, one on a
    /// single server: a cluster is safe without the operator knowing it must say so. A stream
    /// with fewer copies in a cluster is brought up to [`AUTO_REPLICAS`] by the nodes.
    #[default]
    Auto,
    /// Exactly this many (1 to 5); the broker refuses more than it has servers.
    Fixed(usize),
}

impl Replicas {
    /// The copies to ask for first when creating the stream.
    pub fn first_choice(self) -> usize {
        match self {
            Replicas::Auto => AUTO_REPLICAS,
            Replicas::Fixed(n) => n,
        }
    }
}

impl std::fmt::Display for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Replicas::Auto => f.write_str("auto"),
            Replicas::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Replicas {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Replicas::Auto => serializer.serialize_str("auto"),
            Replicas::Fixed(n) => serializer.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Replicas {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Count(u64),
            Word(String),
        }
        match Given::deserialize(deserializer)? {
            Given::Count(n) => usize::try_from(n)
                .map(Replicas::Fixed)
                .map_err(|_| serde::de::Error::custom("replicas must be between 1 and 5")),
            Given::Word(w) if w == "auto" => Ok(Replicas::Auto),
            Given::Word(w) => Err(serde::de::Error::custom(format!(
                "replicas must be \"auto\" or a number from 1 to 5, not {w:?}"
            ))),
        }
    }
}
fn default_max_bytes() -> i64 {
    1 << 30
}
fn default_max_msgs() -> i64 {
    1_000_000
}
fn default_max_msgs_per_subject() -> i64 {
    1_000
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            max_age_seconds: default_max_age(),
            storage: QueueStorage::default(),
            replicas: Replicas::Auto,
            max_bytes: default_max_bytes(),
            max_msgs: default_max_msgs(),
            max_msgs_per_subject: default_max_msgs_per_subject(),
        }
    }
}

impl QueueSettings {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_age_seconds == 0 {
            return Err("max_age_seconds must be at least 1".into());
        }
        if let Replicas::Fixed(n) = self.replicas {
            if n == 0 || n > 5 {
                return Err("replicas must be \"auto\" or between 1 and 5".into());
            }
        }
        if self.max_bytes < 1024 * 1024 {
            return Err("max_bytes must be at least 1 MiB".into());
        }
        if self.max_msgs < 1 {
            return Err("max_msgs must be at least 1".into());
        }
        if self.max_msgs_per_subject < 1 || self.max_msgs_per_subject > self.max_msgs {
            return Err("max_msgs_per_subject must be between 1 and max_msgs".into());
        }
        Ok(())
    }

    /// The stream configuration these settings describe for `collective`.
    pub fn stream_config(&self, collective: &str) -> stream::Config {
        stream::Config {
            name: stream_name(collective),
            description: Some(format!("mco direct requests in collective {collective}")),
            subjects: vec![stream_subject(collective)],
            retention: RetentionPolicy::WorkQueue,
            max_age: Duration::from_secs(self.max_age_seconds),
            storage: match self.storage {
                QueueStorage::File => StorageType::File,
                QueueStorage::Memory => StorageType::Memory,
            },
            num_replicas: self.replicas.first_choice(),
            max_bytes: self.max_bytes,
            max_messages: self.max_msgs,
            max_messages_per_subject: self.max_msgs_per_subject,
            // A full node share refuses the new request instead of dropping its oldest.
            discard_new_per_subject: true,
            discard: DiscardPolicy::New,
            // Nothing may purge the queue or delete queued requests through the API. The
            // broker answers a publish on the reply subject its sender names, and a publish
            // acknowledgement (`{"stream":..,"seq":N}`) sent to `$JS.API.STREAM.PURGE.<s>`
            // reads as "purge everything before N": any client that may publish a direct
            // request could purge everyone's. Once set these cannot be turned off.
            deny_purge: true,
            deny_delete: true,
            max_message_size: i32::try_from(mco_spec::MAX_MESSAGE_BYTES).unwrap_or(i32::MAX),
            ..stream::Config::default()
        }
    }
}

/// The stream of `collective`'s direct requests: `MCO_DIRECT_<collective>`.
pub fn stream_name(collective: &str) -> String {
    format!("MCO_DIRECT_{collective}")
}

/// The JetStream API subject that asks for stream `stream`'s information. Clients are
/// granted it for their collectives' streams ([`permissions`]), and a client's discovery asks
/// it to learn that the broker has sent everything it had for it.
pub fn stream_info_subject(stream: &str) -> String {
    format!("$JS.API.STREAM.INFO.{stream}")
}

/// The subjects that stream captures: `<collective>.node.>`.
pub fn stream_subject(collective: &str) -> String {
    format!("{collective}.node.>")
}

/// The durable consumer name of `identity`.
///
/// Consumer names may not contain dots, and identities usually do (FQDNs), so dots become
/// underscores; a short hash of the exact identity keeps `a.b` and `a_b` apart.
pub fn consumer_name(identity: &str) -> String {
    let readable: String = identity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let digest = Sha256::digest(identity.as_bytes());
    format!("node_{readable}_{}", hex::encode(&digest[..4]))
}

/// Checks that the broker offers JetStream to this connection.
///
/// This asks `$JS.API.INFO` directly rather than decoding the account information, whose
/// shape changes between server versions: only "nobody answers" and "not enabled" matter.
pub async fn probe(js: &jetstream::Context) -> Result<(), QueueError> {
    let asked = js
        .client()
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await;
    match asked {
        Ok(reply) => {
            let answer: serde_json::Value =
                serde_json::from_slice(&reply.payload).unwrap_or_default();
            match answer.get("error") {
                Some(error) => Err(QueueError::Unavailable(format!(
                    "JetStream is not enabled for this account ({})",
                    error
                        .get("description")
                        .and_then(|d| d.as_str())
                        .unwrap_or("no description")
                ))),
                None => Ok(()),
            }
        }
        Err(e) => match e.kind() {
            async_nats::RequestErrorKind::NoResponders => Err(QueueError::Unavailable(
                "no JetStream API answers on this broker".into(),
            )),
            async_nats::RequestErrorKind::TimedOut => Err(QueueError::TimedOut(e.to_string())),
            _ => Err(QueueError::Unavailable(e.to_string())),
        },
    }
}

/// Who is asking for the stream, which decides what happens to one that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// A node: its configuration is the fleet's; an existing stream with other limits is
    /// updated to them.
    Configure,
    /// A client: it creates the stream only when none exists, and otherwise uses it as is.
    UseExisting,
}

/// Gets `collective`'s direct-request stream, creating it with `settings` when it does not
/// exist (a creation race with another node or client is harmless).
pub async fn ensure_stream(
    js: &jetstream::Context,
    collective: &str,
    settings: &QueueSettings,
    ownership: Ownership,
) -> Result<stream::Stream, QueueError> {
    let name = stream_name(collective);
    let wanted = settings.stream_config(collective);
    let failed = |reason: String| QueueError::Stream {
        stream: name.clone(),
        reason,
    };
    match js.get_stream(&name).await {
        Ok(mut existing) => {
            if ownership == Ownership::Configure {
                let info = existing.info().await.map_err(|e| failed(e.to_string()))?;
                let clustered = info.cluster.as_ref().is_some_and(|c| c.name.is_some());
                let current = info.config.clone();
                let mut wanted = wanted;
                wanted.num_replicas = match settings.replicas {
                    Replicas::Fixed(n) => n,
                    // Never fewer copies than an administrator gave it.
                    Replicas::Auto if clustered => AUTO_REPLICAS.max(current.num_replicas),
                    Replicas::Auto => current.num_replicas,
                };
                if differs(&current, &wanted) {
                    update_stream(js, &name, &current, &wanted, settings.replicas)
                        .await
                        .map_err(|e| failed(format!("cannot update its settings: {e}")))?;
                }
            }
            Ok(existing)
        }
        Err(get_error) => {
            if let jetstream::context::GetStreamErrorKind::Request = get_error.kind() {
                return Err(classify_request_failure(&name, &get_error));
            }
            let replicas = wanted.num_replicas;
            let created = match js.create_stream(wanted.clone()).await {
                // A single server, or a cluster with fewer JetStream servers than copies:
                // "auto" settles for one copy rather than no queue.
                Err(e) if settings.replicas == Replicas::Auto && too_few_servers(&e) => {
                    tracing::info!(
                        "stream {name}: the broker cannot keep {replicas} copies ({e}); keeping one"
                    );
                    js.create_stream(stream::Config {
                        num_replicas: 1,
                        ..wanted
                    })
                    .await
                }
                other => other,
            };
            match created {
                Ok(created) => {
                    tracing::info!(
                        "created stream {name} with {} replica(s)",
                        created.cached_info().config.num_replicas
                    );
                    Ok(created)
                }
                Err(create_error) => existing_after_failed_create(js, &name, create_error).await,
            }
        }
    }
}

/// Stream `name` after creating it failed: someone else may have created it in between
/// (then theirs is used), otherwise why it could not be created.
pub(crate) async fn existing_after_failed_create(
    js: &jetstream::Context,
    name: &str,
    create_error: jetstream::context::CreateStreamError,
) -> Result<stream::Stream, QueueError> {
    js.get_stream(name)
        .await
        .map_err(|_| match create_error.kind() {
            jetstream::context::CreateStreamErrorKind::JetStreamUnavailable => {
                QueueError::Unavailable(create_error.to_string())
            }
            // Broker permissions that forbid creating it leave the request unanswered.
            jetstream::context::CreateStreamErrorKind::TimedOut => {
                QueueError::TimedOut(format!("creating stream {name}"))
            }
            _ => QueueError::Stream {
                stream: name.to_string(),
                reason: create_error.to_string(),
            },
        })
}

/// Whether the broker refused a stream because it has too few (JetStream) servers for the
/// copies asked for.
fn too_few_servers(error: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::ErrorCode;
    match error.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(e) => matches!(
            e.error_code(),
            ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED | ErrorCode::INSUFFICIENT_RESOURCES
        ),
        _ => false,
    }
}

/// Brings stream `name` from its `current` settings to the `wanted` ones a node owns. With
/// `replicas = "auto"`, a cluster that cannot hold more copies keeps the ones it has.
async fn update_stream(
    js: &jetstream::Context,
    name: &str,
    current: &stream::Config,
    wanted: &stream::Config,
    replicas: Replicas,
) -> Result<(), jetstream::context::UpdateStreamError> {
    if current.storage != wanted.storage {
        tracing::warn!(
            "stream {name} keeps its {:?} storage; this node's configuration asks for {:?} (storage cannot change in place)",
            current.storage,
            wanted.storage
        );
    }
    let mut updated = current.clone();
    updated.max_age = wanted.max_age;
    updated.max_bytes = wanted.max_bytes;
    updated.max_messages = wanted.max_messages;
    updated.max_messages_per_subject = wanted.max_messages_per_subject;
    updated.discard_new_per_subject = wanted.discard_new_per_subject;
    updated.deny_purge = wanted.deny_purge;
    updated.deny_delete = wanted.deny_delete;
    updated.num_replicas = wanted.num_replicas;
    updated.discard = wanted.discard;
    updated.max_message_size = wanted.max_message_size;
    let result = match js.update_stream(&updated).await {
        Err(e) if replicas == Replicas::Auto && updated.num_replicas != current.num_replicas => {
            tracing::info!(
                "stream {name}: the broker cannot keep {} copies ({e}); keeping {}",
                updated.num_replicas,
                current.num_replicas
            );
            updated.num_replicas = current.num_replicas;
            if differs(current, &updated) {
                js.update_stream(&updated).await
            } else {
                return Ok(());
            }
        }
        other => other,
    };
    result?;
    tracing::info!(
        "updated stream {name}: max age {:?}, max bytes {}, max requests {} ({} per node), replicas {}",
        updated.max_age,
        updated.max_bytes,
        updated.max_messages,
        updated.max_messages_per_subject,
        updated.num_replicas
    );
    Ok(())
}

fn classify_request_failure(
    stream: &str,
    error: &jetstream::context::GetStreamError,
) -> QueueError {
    let request = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::context::RequestError>());
    match request.map(|r| r.kind()) {
        Some(jetstream::context::RequestErrorKind::NoResponders) => {
            QueueError::Unavailable("no JetStream API answers on this broker".into())
        }
        Some(jetstream::context::RequestErrorKind::TimedOut) => {
            QueueError::TimedOut(error.to_string())
        }
        _ => QueueError::Stream {
            stream: stream.to_string(),
            reason: error.to_string(),
        },
    }
}

/// Whether an existing stream's limits differ from the wanted ones (the fields a node owns).
fn differs(existing: &stream::Config, wanted: &stream::Config) -> bool {
    existing.max_age != wanted.max_age
        || existing.max_bytes != wanted.max_bytes
        || existing.max_messages != wanted.max_messages
        || existing.max_messages_per_subject != wanted.max_messages_per_subject
        || existing.discard_new_per_subject != wanted.discard_new_per_subject
        || existing.deny_purge != wanted.deny_purge
        || existing.deny_delete != wanted.deny_delete
        || existing.num_replicas != wanted.num_replicas
        || existing.discard != wanted.discard
        || existing.max_message_size != wanted.max_message_size
        || existing.storage != wanted.storage
}

/// The configuration of `identity`'s durable consumer: its own direct subject only, at most
/// `max_ack_pending` requests handed out at once (a backlog waits in the broker, not in the
/// node), an unacknowledged request handed out again after `ack_wait`.
pub fn consumer_config(
    collective: &str,
    identity: &str,
    max_ack_pending: usize,
    ack_wait: Duration,
) -> pull::Config {
    pull::Config {
        durable_name: Some(consumer_name(identity)),
        description: Some(format!("mco direct requests for {identity}")),
        filter_subject: mco_spec::subjects::direct(collective, identity),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_ack_pending: i64::try_from(max_ack_pending.max(1)).unwrap_or(i64::MAX),
        ..pull::Config::default()
    }
}

/// The durable consumer through which `identity` takes its requests from `stream`, created
/// when missing and updated when its settings changed ([`consumer_config`]).
pub async fn node_consumer(
    stream: &stream::Stream,
    collective: &str,
    identity: &str,
    max_ack_pending: usize,
    ack_wait: Duration,
) -> Result<jetstream::consumer::Consumer<pull::Config>, QueueError> {
    let name = consumer_name(identity);
    let config = consumer_config(collective, identity, max_ack_pending, ack_wait);
    let failed = |reason: String| QueueError::Consumer {
        stream: stream_name(collective),
        consumer: name.clone(),
        reason,
    };
    match stream.create_consumer(config.clone()).await {
        Ok(consumer) => Ok(consumer),
        Err(create_error) => {
            // An existing consumer whose settings cannot be changed in place (from an older
            // configuration) is replaced; its unacknowledged messages stay in the work queue
            // and go to the new consumer.
            tracing::warn!("consumer {name}: {create_error}; recreating it");
            stream
                .delete_consumer(&name)
                .await
                .map_err(|e| failed(format!("{create_error}; and cannot delete it: {e}")))?;
            stream
                .create_consumer(config)
                .await
                .map_err(|e| failed(e.to_string()))
        }
    }
}

/// `identity`'s consumer as `mco broker setup` made it, used as it is.
///
/// Under the broker permissions that `mco broker config` writes, a node may read its own
/// consumer (look it up, take messages, acknowledge them) but may not create or change a
/// stream or a consumer: on nats-server 2.9 a consumer's subject travels in the request body,
/// so a node allowed to create consumers could make one on another node's subject. This
/// only looks the consumer up. Settings that differ from `max_ack_pending` and `ack_wait`
/// are warned about and the consumer's own are used; a consumer that takes another subject
/// than this node's is refused.
pub async fn existing_consumer(
    js: &jetstream::Context,
    collective: &str,
    identity: &str,
    max_ack_pending: usize,
    ack_wait: Duration,
) -> Result<jetstream::consumer::Consumer<pull::Config>, QueueError> {
    let stream = stream_name(collective);
    let name = consumer_name(identity);
    let wanted = consumer_config(collective, identity, max_ack_pending, ack_wait);
    let consumer = js
        .get_consumer_from_stream::<pull::Config, _, _>(&name, &stream)
        .await
        .map_err(|e| classify_consumer_lookup(&stream, &name, &e))?;
    let have = &consumer.cached_info().config;
    if have.filter_subject != wanted.filter_subject {
        return Err(QueueError::Consumer {
            stream,
            consumer: name,
            reason: format!(
                "it takes {:?}, not this node's {:?}; run `mco broker setup` again",
                have.filter_subject, wanted.filter_subject
            ),
        });
    }
    if have.ack_wait != wanted.ack_wait || have.max_ack_pending != wanted.max_ack_pending {
        tracing::warn!(
            "consumer {name} on {stream} hands out {} request(s) at once with an ack wait of {:?}; this node's configuration asks for {} and {:?} (`mco broker setup` decides; using the consumer's)",
            have.max_ack_pending,
            have.ack_wait,
            wanted.max_ack_pending,
            wanted.ack_wait
        );
    }
    Ok(consumer)
}

fn classify_consumer_lookup(
    stream: &str,
    consumer: &str,
    error: &jetstream::stream::ConsumerError,
) -> QueueError {
    use jetstream::stream::ConsumerErrorKind;
    match error.kind() {
        ConsumerErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
        {
            QueueError::Missing {
                what: format!("stream {stream}"),
            }
        }
        ConsumerErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND =>
        {
            QueueError::Missing {
                what: format!("consumer {consumer} on stream {stream}"),
            }
        }
        ConsumerErrorKind::TimedOut => QueueError::TimedOut(format!(
            "looking up consumer {consumer} on {stream} (a broker that does not permit it does not answer either: check that its permissions come from `mco broker config` for this node)"
        )),
        ConsumerErrorKind::Request => {
            let request = std::error::Error::source(error)
                .and_then(|source| source.downcast_ref::<jetstream::context::RequestError>());
            match request.map(|r| r.kind()) {
                Some(jetstream::context::RequestErrorKind::NoResponders) => {
                    QueueError::Unavailable("no JetStream API answers on this broker".into())
                }
                _ => QueueError::Consumer {
                    stream: stream.to_string(),
                    consumer: consumer.to_string(),
                    reason: error.to_string(),
                },
            }
        }
        _ => QueueError::Consumer {
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            reason: error.to_string(),
        },
    }
}

/// What [`setup`] did for one collective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// The stream.
    pub stream: String,
    /// Whether it was created (else it existed and was brought in line).
    pub created: bool,
    /// The consumers made or brought in line, one per node.
    pub consumers: usize,
}

/// Creates `collective`'s stream with `settings`, or brings an existing one in line with
/// them, and creates or updates each of `identities`' consumers ([`consumer_config`]): what
/// an administrator runs (`mco broker setup`) when broker permissions keep nodes and
/// clients from doing it themselves. An existing stream keeps its storage type (it cannot
/// change in place).
pub async fn setup(
    js: &jetstream::Context,
    collective: &str,
    settings: &QueueSettings,
    identities: &[String],
    (max_ack_pending, ack_wait): (usize, Duration),
) -> Result<SetupReport, QueueError> {
    let name = stream_name(collective);
    let created = match js.get_stream(&name).await {
        Ok(_) => false,
        Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::Request) => {
            return Err(classify_request_failure(&name, &e))
        }
        Err(_) => true,
    };
    let stream = ensure_stream(js, collective, settings, Ownership::Configure).await?;
    for identity in identities {
        node_consumer(&stream, collective, identity, max_ack_pending, ack_wait).await?;
    }
    Ok(SetupReport {
        stream: name,
        created,
        consumers: identities.len(),
    })
}

/// Why the broker did not queue one direct request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The node's share of the queue (`max_msgs_per_subject`) is full.
    NodeFull,
    /// The collective's queue (`max_msgs` or `max_bytes`) is full.
    QueueFull(String),
    /// No stream captures the node's subject (the stream is gone).
    NotCaptured,
    /// The broker did not confirm in time.
    TimedOut,
    /// Anything else, in the broker's or the client's words.
    Other(String),
}

/// What a failed JetStream publish means for the request it carried.
///
/// nats-server reports every full limit with the same error code (10077, "store failed"),
/// so the limit is told apart by the server's description.
pub fn refusal(error: &jetstream::context::PublishError) -> Refusal {
    use jetstream::context::PublishErrorKind;
    match error.kind() {
        PublishErrorKind::StreamNotFound => Refusal::NotCaptured,
        PublishErrorKind::TimedOut => Refusal::TimedOut,
        _ => {
            let server = std::error::Error::source(error)
                .and_then(|source| source.downcast_ref::<jetstream::Error>());
            let description = server
                .map(|e| e.to_string())
                .unwrap_or_else(|| error.to_string());
            if description.contains("maximum messages per subject exceeded") {
                Refusal::NodeFull
            } else if description.contains("maximum messages exceeded")
                || description.contains("maximum bytes exceeded")
            {
                Refusal::QueueFull(description)
            } else {
                Refusal::Other(description)
            }
        }
    }
}

/// Who a broker connection belongs to. Each has its own inbox prefix ([`inbox_prefix`]) and
/// its own permissions ([`permissions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BrokerRole {
    /// A node (`mcod`), named by its identity.
    Node,
    /// A caller (`mco`, a web application), named by its caller name (its token's name).
    Client,
    /// A registry service (`mcod registry`).
    Registry,
    /// An administrator who sets up the direct-request streams (`mco broker setup`).
    Admin,
}

impl BrokerRole {
    /// The role's name in users files and flags: `node`, `client`, `registry`, `admin`.
    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::Node => "node",
            BrokerRole::Client => "client",
            BrokerRole::Registry => "registry",
            BrokerRole::Admin => "admin",
        }
    }

    /// The role called `name`.
    pub fn from_name(name: &str) -> Option<BrokerRole> {
        [
            BrokerRole::Node,
            BrokerRole::Client,
            BrokerRole::Registry,
            BrokerRole::Admin,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

impl std::fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The inbox prefix of `role` `name`'s connections: `_INBOX_<32 hex digits>`.
///
/// NATS's default `_INBOX.` is shared, and JetStream sends publish acknowledgements and pull
/// deliveries (whole requests) to inboxes, so a connection allowed `_INBOX.>` would read
/// everyone's. Each connection uses its own prefix (async-nats `custom_inbox_prefix`) and
/// the broker permits each user exactly its own. The role is part of the hash so that a
/// caller named like a node does not get the node's inbox.
pub fn inbox_prefix(role: BrokerRole, name: &str) -> String {
    let digest = Sha256::digest(format!("{}:{name}", role.name()).as_bytes());
    format!("_INBOX_{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_jetstream_names_and_distinct() {
        assert_eq!(stream_name("mco"), "MCO_DIRECT_mco");
        assert_eq!(stream_subject("eu"), "eu.node.>");
        let a = consumer_name("web1.example.net");
        let b = consumer_name("web1_example_net");
        assert!(a.starts_with("node_web1_example_net_"), "{a}");
        assert_ne!(a, b);
        for name in [a, b, consumer_name(&"x".repeat(300))] {
            assert!(!name.contains('.') && !name.contains('*') && !name.contains('>'));
            assert!(name.len() <= 80, "{name}");
        }
    }

    #[test]
    fn replicas_are_auto_by_default_or_a_number() {
        #[derive(Deserialize)]
        struct Table {
            #[serde(default)]
            replicas: Replicas,
        }
        let read = |text: &str| serde_json::from_str::<Table>(text).map(|t| t.replicas);
        assert_eq!(read("{}").unwrap(), Replicas::Auto);
        assert_eq!(read(r#"{"replicas": "auto"}"#).unwrap(), Replicas::Auto);
        assert_eq!(read(r#"{"replicas": 3}"#).unwrap(), Replicas::Fixed(3));
        let wrong = read(r#"{"replicas": "three"}"#).unwrap_err().to_string();
        assert!(wrong.contains("\"auto\" or a number"), "{wrong}");
        assert_eq!(Replicas::Auto.first_choice(), AUTO_REPLICAS);
        assert_eq!(
            QueueSettings::default().stream_config("mco").num_replicas,
            3
        );
        assert_eq!(
            serde_json::to_string(&Replicas::Fixed(5)).unwrap(),
            "5".to_string()
        );
    }

    #[test]
    fn settings_have_sane_defaults_and_are_checked() {
        let s = QueueSettings::default();
        assert_eq!(s.validate(), Ok(()));
        let config = s.stream_config("mco");
        assert_eq!(config.retention, RetentionPolicy::WorkQueue);
        assert_eq!(config.max_age, Duration::from_secs(86_400));
        assert_eq!(config.discard, DiscardPolicy::New);
        assert!(QueueSettings {
            max_age_seconds: 0,
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(QueueSettings {
            replicas: Replicas::Fixed(0),
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(QueueSettings {
            max_bytes: 10,
            ..s.clone()
        }
        .validate()
        .is_err());
        // Each node's share is bounded, refuses rather than drops, and fits in the whole.
        assert!(config.discard_new_per_subject && config.deny_purge && config.deny_delete);
        assert_eq!(config.max_messages_per_subject, 1_000);
        assert_eq!(config.max_messages, 1_000_000);
        for bad in [(0, 1), (10, 0), (10, 11)] {
            let settings = QueueSettings {
                max_msgs: bad.0,
                max_msgs_per_subject: bad.1,
                ..s.clone()
            };
            assert!(settings.validate().is_err(), "{bad:?}");
        }
    }
}
