//! The [`Client`] handle, its builder and its error type.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mco_discovery::Window;
use mco_spec::message::{new_request_id, now_millis};
use mco_spec::{subjects, Filter, FilterError, Request, RequestEnvelope};
use serde_json::Map;

/// What went wrong talking to the fleet. Expected outcomes (a node not answering, an action
/// failing) are not errors; they are in [`crate::Stats`] and reply status codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No broker could be reached within the connect timeout.
    #[error("cannot connect to the broker at {brokers}: {reason}")]
    BrokerUnavailable {
        /// The broker URLs tried.
        brokers: String,
        /// Why.
        reason: String,
    },
    /// The request is not acceptable (bad filter, bad name, inputs the DDL refuses).
    #[error("{0}")]
    InvalidInput(String),
    /// The collective is not one the client knows.
    #[error("unknown collective {name:?} (known: {known})")]
    UnknownCollective {
        /// The collective asked for.
        name: String,
        /// The known collectives.
        known: String,
    },
    /// Publishing or subscribing failed (the connection broke).
    #[error("broker error: {0}")]
    Broker(String),
    /// The broker queued none of a call's direct requests (a full queue, a node the broker
    /// permissions do not list); the first node's reason.
    #[error("no request could be queued: {0}")]
    NotQueued(String),
    /// Discovery could not produce a node list (a method refusing a filter, a bad node list,
    /// a failing external program or registry).
    #[error(transparent)]
    Discovery(#[from] mco_discovery::DiscoveryError),
    /// The registry database could not be read, or cannot answer the filter (data-plugin
    /// calls, which only live nodes can answer).
    #[cfg(feature = "registry")]
    #[error(transparent)]
    Registry(#[from] mco_discovery::registry::RegistryError),
}

impl From<FilterError> for ClientError {
    fn from(e: FilterError) -> Self {
        ClientError::InvalidInput(e.to_string())
    }
}

/// Why a message on a reply subject was not accepted as a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyRejected {
    /// Not a well-formed reply.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The signature or token does not verify, or does not belong to the sender.
    #[error("forged reply: {0}")]
    Forged(String),
}

/// Settings of a [`Client`]; [`ClientBuilder`] fills them.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// NATS server URLs (one pool).
    pub brokers: Vec<String>,
    /// Known collectives; the first is the main one unless `main_collective` says otherwise.
    pub collectives: Vec<String>,
    /// The collective used when a call names none.
    pub main_collective: String,
    /// Who is calling (`user=alice`).
    pub caller: String,
    /// This host's identity, sent as the request's sender.
    pub sender: String,
    /// How long to try to reach a broker.
    pub connect_timeout: Duration,
    /// Longest broadcast discovery.
    pub discovery_timeout: Duration,
    /// Discovery ends this long after the last reply.
    pub discovery_window: Duration,
    /// How long to wait for replies.
    pub timeout: Duration,
    /// How long a request stays valid, seconds.
    pub ttl: u64,
    /// The key and token requests are signed with; `None` sends unsigned requests, which
    /// needs `insecure`.
    pub credentials: Option<mco_spec::security::Credentials>,
    /// Issuers whose server tokens replies must carry; `None` accepts unsigned replies, which
    /// needs `insecure`.
    pub trust: Option<mco_spec::security::Trust>,
    /// Allow unsigned requests and replies.
    pub insecure: bool,
    /// Broker authentication.
    pub broker_auth: mco_keys::BrokerAuth,
    /// Send direct requests through the JetStream work queue (when the broker has it), so a
    /// node that is down gets them when it starts within their TTL.
    pub direct_queue: bool,
    /// The settings a collective's stream is created with when this client is the first to
    /// need it (nodes and `mco broker setup` bring them in line with theirs).
    pub queue_settings: mco_transport::QueueSettings,
    /// A broadcast discovery that finds at most this many nodes is followed by direct
    /// requests to them (MCollective's `direct_addressing_threshold`); more get one broadcast.
    pub direct_threshold: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        ClientOptions {
            brokers: vec!["nats://127.0.0.1:4222".into()],
            collectives: vec!["mco".into()],
            main_collective: "mco".into(),
            caller: format!("user={user}"),
            sender: local_identity(),
            connect_timeout: Duration::from_secs(2),
            discovery_timeout: Duration::from_secs(2),
            discovery_window: Duration::from_millis(300),
            timeout: Duration::from_secs(10),
            ttl: 60,
            credentials: None,
            trust: None,
            insecure: false,
            broker_auth: mco_keys::BrokerAuth::default(),
            direct_queue: true,
            queue_settings: mco_transport::QueueSettings::default(),
            direct_threshold: 10,
        }
    }
}

/// This host's name as a valid identity.
fn local_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if subjects::is_valid_identity(host) {
        host.to_string()
    } else {
        "mco-client".into()
    }
}

/// Builds a [`Client`]. Every setting has a default; see [`ClientOptions`].
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    options: ClientOptions,
    brokers_set: bool,
}

impl ClientBuilder {
    /// Adds a broker URL (the first call replaces the default).
    pub fn broker(mut self, url: impl Into<String>) -> Self {
        if !self.brokers_set {
            self.options.brokers.clear();
            self.brokers_set = true;
        }
        self.options.brokers.push(url.into());
        self
    }

    /// Sets all broker URLs.
    pub fn brokers(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.options.brokers = urls.into_iter().map(Into::into).collect();
        self.brokers_set = true;
        self
    }

    /// Sets the known collectives; the first becomes the main collective.
    pub fn collectives(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.options.collectives = names.into_iter().map(Into::into).collect();
        if let Some(first) = self.options.collectives.first() {
            self.options.main_collective = first.clone();
        }
        self
    }

    /// Sets the main collective (added to the known ones if missing).
    pub fn main_collective(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.options.collectives.contains(&name) {
            self.options.collectives.insert(0, name.clone());
        }
        self.options.main_collective = name;
        self
    }

    /// Sets the caller name.
    pub fn caller(mut self, caller: impl Into<String>) -> Self {
        self.options.caller = caller.into();
        self
    }

    /// Sets the sender identity.
    pub fn sender(mut self, sender: impl Into<String>) -> Self {
        self.options.sender = sender.into();
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Sets the default discovery timeout.
    pub fn discovery_timeout(mut self, timeout: Duration) -> Self {
        self.options.discovery_timeout = timeout;
        self
    }

    /// Sets the quiet window that ends discovery early.
    pub fn discovery_window(mut self, window: Duration) -> Self {
        self.options.discovery_window = window;
        self
    }

    /// Sets the default time to wait for replies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Sets the default request TTL, seconds.
    pub fn ttl(mut self, ttl: u64) -> Self {
        self.options.ttl = ttl;
        self
    }

    /// Signs requests with this key and token; the caller name becomes the token's name.
    pub fn credentials(mut self, credentials: mco_spec::security::Credentials) -> Self {
        self.options.credentials = Some(credentials);
        self
    }

    /// Accepts only replies signed by nodes whose tokens these issuers signed.
    pub fn trust(
        mut self,
        issuers: Vec<ed25519_dalek::VerifyingKey>,
        clock_skew_secs: u64,
    ) -> Self {
        self.options.trust = Some(mco_spec::security::Trust {
            issuers,
            clock_skew_secs,
        });
        self
    }

    /// Sends unsigned requests and accepts unsigned replies (explicitly insecure).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.options.insecure = insecure;
        self
    }

    /// Sets broker authentication (TLS, NATS credentials).
    pub fn broker_auth(mut self, auth: mco_keys::BrokerAuth) -> Self {
        self.options.broker_auth = auth;
        self
    }

    /// Whether direct requests go through the JetStream work queue (default: yes).
    pub fn direct_queue(mut self, enabled: bool) -> Self {
        self.options.direct_queue = enabled;
        self
    }

    /// Sets the settings a missing direct-request stream is created with.
    pub fn queue_settings(mut self, settings: mco_transport::QueueSettings) -> Self {
        self.options.queue_settings = settings;
        self
    }

    /// Sets how many nodes a broadcast discovery may find for the request to go to them
    /// directly (default 10).
    pub fn direct_threshold(mut self, nodes: usize) -> Self {
        self.options.direct_threshold = nodes;
        self
    }

    /// Checks the settings and connects to the broker, failing within the connect timeout.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let mut o = self.options;
        if !o.insecure && (o.credentials.is_none() || o.trust.is_none()) {
            return Err(ClientError::InvalidInput(
                "requests must be signed: configure key_file, token_file and issuer_keys (see `mco keys`), or insecure = true".into(),
            ));
        }
        if let Some(credentials) = &o.credentials {
            let token = mco_spec::security::Token::parse(&credentials.token)
                .map_err(|e| ClientError::InvalidInput(format!("token: {e}")))?;
            if token.claims().role != mco_spec::security::TokenRole::Client {
                return Err(ClientError::InvalidInput(format!(
                    "the token is a {} token; requests need a client token",
                    token.claims().role
                )));
            }
            if token.holder_key() != &credentials.key.verifying_key() {
                return Err(ClientError::InvalidInput(
                    "the token was issued for another key than key_file".into(),
                ));
            }
            // Nodes take the caller from the token: the request must say the same.
            o.caller = token.claims().name.clone();
        }
        for c in &o.collectives {
            if !subjects::is_valid_token(c) {
                return Err(ClientError::InvalidInput(format!(
                    "{c:?} is not a valid collective name"
                )));
            }
        }
        if !subjects::is_valid_identity(&o.sender) {
            return Err(ClientError::InvalidInput(format!(
                "{:?} is not a valid sender identity",
                o.sender
            )));
        }
        if o.caller.is_empty() {
            return Err(ClientError::InvalidInput("the caller name is empty".into()));
        }
        let denied = Denials::default();
        let nats = connect_nats(
            &o.brokers,
            &o.broker_auth,
            mco_transport::BrokerRole::Client,
            &o.caller,
            o.connect_timeout,
            &denied,
        )
        .await?;
        Ok(Client {
            inner: Arc::new(Inner {
                jetstream: async_nats::jetstream::new(nats.clone()),
                nats,
                options: o,
                queues: crate::direct::QueueCache::default(),
                tokens: mco_spec::security::TokenCache::default(),
                denied,
            }),
        })
    }
}

/// A raw NATS connection to one of `brokers` with `auth` as `role` `name` (`mco broker
/// setup` connects as the admin this way), with the same rules as a [`Client`]'s: its own
/// inbox prefix, failing within `timeout`.
pub async fn connect_as(
    brokers: &[String],
    auth: &mco_keys::BrokerAuth,
    role: mco_transport::BrokerRole,
    name: &str,
    timeout: Duration,
) -> Result<async_nats::Client, ClientError> {
    connect_nats(brokers, auth, role, name, timeout, &Denials::default()).await
}

/// Connects to one of `brokers` with `auth` as `role` `name`, failing within `timeout`.
///
/// The connection reads its inbox under its own prefix ([`mco_transport::inbox_prefix`]),
/// the only one the broker permissions of `mco broker config` let it read, and records the
/// subjects the broker refuses it in `denied`.
pub(crate) async fn connect_nats(
    brokers: &[String],
    auth: &mco_keys::BrokerAuth,
    role: mco_transport::BrokerRole,
    name: &str,
    timeout: Duration,
    denied: &Denials,
) -> Result<async_nats::Client, ClientError> {
    let joined = brokers.join(",");
    let unavailable = |reason: String| ClientError::BrokerUnavailable {
        brokers: joined.clone(),
        reason,
    };
    for b in brokers {
        b.parse::<async_nats::ServerAddr>()
            .map_err(|e| ClientError::InvalidInput(format!("{b:?} is not a NATS URL: {e}")))?;
    }
    let recorder = denied.clone();
    let options = async_nats::ConnectOptions::new()
        .name(format!("mco {name}"))
        .custom_inbox_prefix(mco_transport::inbox_prefix(role, name))
        .connection_timeout(timeout)
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
        .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
    match tokio::time::timeout(timeout, options.connect(brokers)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Err(_) => Err(unavailable(format!("no answer within {timeout:?}"))),
    }
}

/// The subjects the broker refused this connection to publish to, most recent last (a few
/// dozen): a publish it refuses is dropped without an answer, so this is how a sender learns
/// why a request it sent got no acknowledgement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Denials(Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

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
        if let Ok(mut list) = self.0.lock() {
            if list.len() == Self::KEPT {
                list.pop_front();
            }
            list.push_back(subject);
        }
    }

    /// Whether the broker refused a publish to `subject`.
    pub(crate) fn refused(&self, subject: &str) -> bool {
        self.0
            .lock()
            .map(|list| list.iter().any(|s| s == subject))
            .unwrap_or(false)
    }
}

struct Inner {
    nats: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    options: ClientOptions,
    /// Per collective: whether direct requests can be queued (found out once).
    queues: crate::direct::QueueCache,
    /// Server tokens already verified: a reply from a node seen before costs one signature
    /// check, not two.
    tokens: mco_spec::security::TokenCache,
    /// Subjects the broker refused us.
    denied: Denials,
}

/// How many discovery replies that have already arrived are verified in one batch.
const DISCOVERY_VERIFY_BATCH: usize = 256;

/// A connection to the fleet; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Client {
    /// A builder with default settings.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The client's settings.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The underlying NATS connection (for replies read elsewhere and tests).
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// `collective`, checked against the known ones, or the main collective.
    pub fn collective(&self, collective: Option<&str>) -> Result<String, ClientError> {
        let o = &self.inner.options;
        match collective {
            None => Ok(o.main_collective.clone()),
            Some(c) if o.collectives.iter().any(|k| k == c) => Ok(c.to_string()),
            Some(c) => Err(ClientError::UnknownCollective {
                name: c.to_string(),
                known: o.collectives.join(", "),
            }),
        }
    }

    /// Builds a request; the caller publishes it.
    pub(crate) fn request(
        &self,
        collective: &str,
        agent: &str,
        action: &str,
        data: Map<String, serde_json::Value>,
        filter: Filter,
        ttl: u64,
    ) -> Request {
        let o = &self.inner.options;
        let id = new_request_id();
        Request {
            reply_to: subjects::reply(collective, &o.caller, &id),
            id,
            collective: collective.to_string(),
            agent: agent.to_string(),
            action: action.to_string(),
            data,
            filter,
            caller: o.caller.clone(),
            sender: o.sender.clone(),
            time: now_millis(),
            ttl,
            targets: None,
        }
    }

    /// The reply subject `name` stands for in `collective` (the main one if `None`): a full
    /// subject under this caller's reply prefix as it is, anything else as a name under that
    /// prefix (`--reply-to web-42` is `<collective>.reply.<caller-hash>.web-42`). Nodes send
    /// replies only under the caller's own prefix, so that is the only place a caller can ask
    /// for them.
    pub fn reply_subject(
        &self,
        collective: Option<&str>,
        name: &str,
    ) -> Result<String, ClientError> {
        let collective = self.collective(collective)?;
        let caller = &self.inner.options.caller;
        let subject = if name.starts_with(&format!("{collective}.reply.")) {
            name.to_string()
        } else {
            format!("{}.{name}", subjects::reply_prefix(&collective, caller))
        };
        subjects::check_reply_to(&collective, caller, &subject)
            .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        Ok(subject)
    }

    pub(crate) async fn subscribe(
        &self,
        subject: &str,
    ) -> Result<async_nats::Subscriber, ClientError> {
        self.inner
            .nats
            .subscribe(subject.to_string())
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))
    }

    /// Signs (unless insecure) and encodes a request, checking its size.
    pub(crate) fn encode(&self, request: &Request) -> Result<bytes::Bytes, ClientError> {
        let envelope = match &self.inner.options.credentials {
            Some(credentials) => RequestEnvelope::signed(request, credentials),
            None => RequestEnvelope::unsigned(request),
        };
        let payload = envelope
            .and_then(|e| e.to_bytes())
            .map_err(|e| ClientError::InvalidInput(format!("cannot encode the request: {e}")))?;
        if payload.len() > mco_spec::MAX_MESSAGE_BYTES {
            return Err(ClientError::InvalidInput(format!(
                "the request is {} bytes, more than the {} allowed",
                payload.len(),
                mco_spec::MAX_MESSAGE_BYTES
            )));
        }
        Ok(payload.into())
    }

    pub(crate) async fn publish(
        &self,
        subject: String,
        request: &Request,
    ) -> Result<(), ClientError> {
        let payload = self.encode(request)?;
        self.publish_bytes(subject, payload).await
    }

    pub(crate) async fn publish_bytes(
        &self,
        subject: String,
        payload: bytes::Bytes,
    ) -> Result<(), ClientError> {
        self.inner
            .nats
            .publish(subject, payload)
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))
    }

    pub(crate) fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.inner.jetstream
    }

    pub(crate) fn queues(&self) -> &crate::direct::QueueCache {
        &self.inner.queues
    }

    pub(crate) fn denied(&self) -> &Denials {
        &self.inner.denied
    }

    pub(crate) async fn flush(&self) -> Result<(), ClientError> {
        self.inner
            .nats
            .flush()
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))
    }

    /// Finds the nodes matching `filter` in `collective` (main if `None`), each with the time
    /// its answer took, in arrival order. Ends at `timeout` (default: the client's discovery
    /// timeout) or a quiet window after the last reply.
    pub async fn discover_timed(
        &self,
        filter: &Filter,
        collective: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Vec<(String, Duration)>, ClientError> {
        filter.compile()?;
        let collective = self.collective(collective)?;
        let o = &self.inner.options;
        let request = self.request(
            &collective,
            subjects::DISCOVERY_AGENT,
            "ping",
            Map::new(),
            filter.clone(),
            o.ttl,
        );
        let subscriber = self.subscribe(&request.reply_to).await?;
        self.publish(
            subjects::broadcast(&collective, subjects::DISCOVERY_AGENT),
            &request,
        )
        .await?;
        self.flush().await?;
        let id = request.id.clone();
        // Discovery replies are checked like call replies (in batches of what has already
        // arrived): an impostor must not be able to add names to the node list that the
        // following direct requests go to.
        let client = self.clone();
        let senders = subscriber
            .ready_chunks(DISCOVERY_VERIFY_BATCH)
            .flat_map(move |messages| {
                let payloads: Vec<&[u8]> = messages.iter().map(|m| m.payload.as_ref()).collect();
                let accepted: Vec<String> = client
                    .accept_replies(&payloads)
                    .into_iter()
                    .filter_map(|reply| reply.ok())
                    .filter(|reply| reply.request_id == id)
                    .map(|reply| reply.sender)
                    .collect();
                futures::stream::iter(accepted)
            });
        let window = Window::new(timeout.unwrap_or(o.discovery_timeout), o.discovery_window);
        Ok(mco_discovery::collect(senders, window).await)
    }

    /// Decodes a reply and, unless insecure, verifies its signature and that the signing
    /// token is the sender's own server token.
    pub fn accept_reply(&self, payload: &[u8]) -> Result<mco_spec::Reply, ReplyRejected> {
        let envelope = mco_spec::ReplyEnvelope::decode(payload)
            .map_err(|e| ReplyRejected::Malformed(e.to_string()))?;
        let token = match &self.inner.options.trust {
            Some(trust) => Some(
                self.inner
                    .tokens
                    .verify(&envelope, trust, mco_spec::message::now_millis() / 1000)
                    .map_err(|e| ReplyRejected::Forged(e.to_string()))?,
            ),
            None => None,
        };
        check_sender(&envelope, token.as_deref())
    }

    /// [`Self::accept_reply`] for many replies at once: their signatures are verified in one
    /// batch, which is what lets a client take in tens of thousands of signed replies a
    /// second. One result per payload, in order.
    pub fn accept_replies(
        &self,
        payloads: &[&[u8]],
    ) -> Vec<Result<mco_spec::Reply, ReplyRejected>> {
        let decoded: Vec<Result<mco_spec::ReplyEnvelope, ReplyRejected>> = payloads
            .iter()
            .map(|p| {
                mco_spec::ReplyEnvelope::decode(p)
                    .map_err(|e| ReplyRejected::Malformed(e.to_string()))
            })
            .collect();
        let Some(trust) = &self.inner.options.trust else {
            return decoded
                .into_iter()
                .map(|e| check_sender(&e?, None))
                .collect();
        };
        let envelopes: Vec<&mco_spec::ReplyEnvelope> =
            decoded.iter().filter_map(|e| e.as_ref().ok()).collect();
        let mut verified = self
            .inner
            .tokens
            .verify_many(&envelopes, trust, mco_spec::message::now_millis() / 1000)
            .into_iter();
        decoded
            .iter()
            .map(|e| {
                let envelope = e.as_ref().map_err(Clone::clone)?;
                let token = verified
                    .next()
                    .unwrap_or(Err(mco_spec::security::SecurityError::Unsigned))
                    .map_err(|e| ReplyRejected::Forged(e.to_string()))?;
                check_sender(envelope, Some(&token))
            })
            .collect()
    }

    /// Finds the identities of the nodes matching `filter`, sorted.
    pub async fn discover(
        &self,
        filter: &Filter,
        collective: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Vec<String>, ClientError> {
        let mut nodes: Vec<String> = self
            .discover_timed(filter, collective, timeout)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        nodes.sort();
        Ok(nodes)
    }
}

/// Parses a verified (or, insecure, unverified) reply and checks that the token that signed
/// it is the sender's own.
fn check_sender(
    envelope: &mco_spec::ReplyEnvelope,
    token: Option<&mco_spec::security::Token>,
) -> Result<mco_spec::Reply, ReplyRejected> {
    let reply = envelope
        .body()
        .map_err(|e| ReplyRejected::Malformed(e.to_string()))?;
    if let Some(token) = token {
        if token.claims().name != reply.sender {
            return Err(ReplyRejected::Forged(format!(
                "reply claims to be from {} but is signed by {}",
                reply.sender,
                token.claims().name
            )));
        }
    }
    Ok(reply)
}
