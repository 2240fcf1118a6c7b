//! Building a [`Client`]: its settings ([`ClientOptions`]), the builder that fills them (one
//! method for every key of `client.toml`), and [`ClientBuilder::connect`], which checks them,
//! reads key files and connects.
//!
//! [`ClientBuilder::from_config`] and [`ClientBuilder::from_default_config`] start from the
//! same `client.toml` the command line reads (`$MCO_CONFIG`, `~/.config/mco/client.toml`,
//! `/etc/mco/client.toml`), so a web application and `mco` share one configuration.
//!
//! Not for: the file format (that is [`crate::config`]) or the connection itself
//! ([`crate::link`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mco_discovery::method::MethodKind;
use mco_spec::security::{Credentials, Token, TokenRole, Trust};
use mco_spec::subjects;

use crate::client::Client;
use crate::config::ClientConfig;
use crate::ddl::Ddls;
use crate::error::{ConnectError, ConnectErrorKind};
use crate::link::{Link, LinkSettings};

/// How broadcast discovery ends (`discovery_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DiscoveryEnd {
    /// When the expected nodes have answered (from the registry, when `registry_url` is
    /// set, or from the discovery cache), else after a multiple of the time the replies took
    /// ([`mco_discovery::Adaptive`]).
    #[default]
    Adaptive,
    /// A fixed quiet window after the last reply (`discovery_window_ms`), as MCollective
    /// and Choria do.
    Window,
}

impl DiscoveryEnd {
    /// `adaptive` or `window`.
    pub fn from_name(name: &str) -> Option<DiscoveryEnd> {
        match name {
            "adaptive" => Some(DiscoveryEnd::Adaptive),
            "window" => Some(DiscoveryEnd::Window),
            _ => None,
        }
    }

    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            DiscoveryEnd::Adaptive => "adaptive",
            DiscoveryEnd::Window => "window",
        }
    }
}

/// Settings of a [`Client`]; [`ClientBuilder`] fills them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// NATS server URLs (one pool).
    pub brokers: Vec<String>,
    /// Known collectives; the first is the main one unless `main_collective` says otherwise.
    pub collectives: Vec<String>,
    /// The collective used when a call names none.
    pub main_collective: String,
    /// Who is calling (`user=alice`); a signing client takes it from its token.
    pub caller: String,
    /// This host's identity, sent as the request's sender.
    pub sender: String,
    /// How long to try to reach a broker.
    pub connect_timeout: Duration,
    /// Longest broadcast discovery.
    pub discovery_timeout: Duration,
    /// With [`DiscoveryEnd::Window`], discovery ends this long after the last reply.
    pub discovery_window: Duration,
    /// How broadcast discovery decides the fleet has answered.
    pub discovery_end: DiscoveryEnd,
    /// The adaptive end's floor, factor and grace ([`DiscoveryEnd::Adaptive`]).
    pub discovery_adaptive: mco_discovery::Adaptive,
    /// Who answered recently, by filter, for the adaptive end's expected set; `None` keeps
    /// no cache.
    pub discovery_cache: Option<mco_discovery::cache::DiscoveryCache>,
    /// How long to wait for replies.
    pub timeout: Duration,
    /// How long a request stays valid, seconds.
    pub ttl: u64,
    /// The key and token requests are signed with; `None` sends unsigned requests, which
    /// needs `insecure`.
    pub credentials: Option<Credentials>,
    /// Issuers whose server tokens replies must carry; `None` accepts unsigned replies, which
    /// needs `insecure`.
    pub trust: Option<Trust>,
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
    /// Directories of agent DDLs (`<dir>/<agent>.json`), searched before the built-in ones.
    pub ddl_dirs: Vec<PathBuf>,
    /// The validator and aggregate plugins' directory (`mco_ddl::plugins`).
    pub plugins_dir: PathBuf,
    /// The discovery method of a call that names none.
    pub default_discovery_method: MethodKind,
    /// The program (and arguments) the external discovery method runs.
    pub external_discovery_command: Option<Vec<String>>,
    /// The registry database the registry method reads: an SQLite file or `postgres://...`.
    pub registry_url: Option<String>,
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
            discovery_end: DiscoveryEnd::Adaptive,
            discovery_adaptive: mco_discovery::Adaptive::default(),
            discovery_cache: mco_discovery::cache::DiscoveryCache::default_dir().map(|dir| {
                mco_discovery::cache::DiscoveryCache::new(
                    dir,
                    mco_discovery::cache::DEFAULT_LIFETIME,
                )
            }),
            timeout: Duration::from_secs(10),
            ttl: 60,
            credentials: None,
            trust: None,
            insecure: false,
            broker_auth: mco_keys::BrokerAuth::default(),
            direct_queue: true,
            queue_settings: mco_transport::QueueSettings::default(),
            direct_threshold: 10,
            ddl_dirs: Vec::new(),
            plugins_dir: mco_ddl::plugins::DEFAULT_PLUGINS_DIR.into(),
            default_discovery_method: MethodKind::Broadcast,
            external_discovery_command: None,
            registry_url: None,
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

/// Key, token and issuer files named by the configuration, read at [`ClientBuilder::connect`].
#[derive(Debug, Clone, Default)]
struct KeyFiles {
    key: Option<PathBuf>,
    token: Option<PathBuf>,
    issuers: Option<Vec<PathBuf>>,
    clock_skew_seconds: Option<u64>,
}

/// Builds a [`Client`]. Every setting has a default; see [`ClientOptions`].
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    options: ClientOptions,
    brokers_set: bool,
    files: KeyFiles,
}

impl ClientBuilder {
    /// A builder with the settings of the configuration file at `path` (relative paths in it
    /// are taken from its directory); key and token files are read at [`Self::connect`].
    pub fn from_config(path: impl AsRef<Path>) -> Result<ClientBuilder, ConnectError> {
        let path = path.as_ref();
        let config = ClientConfig::load(path)
            .map_err(|e| ConnectError::from_source(ConnectErrorKind::Config, e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config.apply(ClientBuilder::default(), &base))
    }

    /// A builder with the settings of the configuration file the command line would read
    /// (`$MCO_CONFIG`, `~/.config/mco/client.toml`, `/etc/mco/client.toml`), or the
    /// defaults when there is none.
    pub fn from_default_config() -> Result<ClientBuilder, ConnectError> {
        match crate::config::locate(None) {
            Some(path) => ClientBuilder::from_config(path),
            None => Ok(ClientBuilder::default()),
        }
    }

    /// The settings so far.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Adds a broker URL (the first call replaces the default).
    pub fn broker(mut self, url: impl Into<String>) -> Self {
        if !self.brokers_set {
            self.options.brokers.clear();
            self.brokers_set = true;
        }
        self.options.brokers.push(url.into());
        self
    }

    /// Sets all broker URLs (`brokers`).
    pub fn brokers(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.options.brokers = urls.into_iter().map(Into::into).collect();
        self.brokers_set = true;
        self
    }

    /// Sets the known collectives; the first becomes the main collective (`collectives`).
    pub fn collectives(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.options.collectives = names.into_iter().map(Into::into).collect();
        if let Some(first) = self.options.collectives.first() {
            self.options.main_collective = first.clone();
        }
        self
    }

    /// Sets the main collective, added to the known ones if missing (`main_collective`).
    pub fn main_collective(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.options.collectives.contains(&name) {
            self.options.collectives.insert(0, name.clone());
        }
        self.options.main_collective = name;
        self
    }

    /// Sets the caller name (`caller`); a signing client takes it from its token.
    pub fn caller(mut self, caller: impl Into<String>) -> Self {
        self.options.caller = caller.into();
        self
    }

    /// Sets the sender identity.
    pub fn sender(mut self, sender: impl Into<String>) -> Self {
        self.options.sender = sender.into();
        self
    }

    /// Sets the connect timeout (`connect_timeout`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Sets the default discovery timeout (`discovery_timeout`).
    pub fn discovery_timeout(mut self, timeout: Duration) -> Self {
        self.options.discovery_timeout = timeout;
        self
    }

    /// Sets how broadcast discovery ends (`discovery_end`).
    pub fn discovery_end(mut self, end: DiscoveryEnd) -> Self {
        self.options.discovery_end = end;
        self
    }

    /// Sets the adaptive end's floor (`discovery_floor_ms`).
    pub fn discovery_floor(mut self, floor: Duration) -> Self {
        self.options.discovery_adaptive.floor = floor;
        self
    }

    /// Sets the adaptive end's grace for new nodes (`discovery_grace_ms`).
    pub fn discovery_grace(mut self, grace: Duration) -> Self {
        self.options.discovery_adaptive.grace = grace;
        self
    }

    /// Keeps the discovery cache in `dir` (`discovery_cache_dir`).
    pub fn discovery_cache_dir(mut self, dir: PathBuf) -> Self {
        let lifetime = self
            .options
            .discovery_cache
            .as_ref()
            .map_or(mco_discovery::cache::DEFAULT_LIFETIME, |c| c.lifetime());
        self.options.discovery_cache =
            Some(mco_discovery::cache::DiscoveryCache::new(dir, lifetime));
        self
    }

    /// Uses discovery cache entries for `lifetime` (`discovery_cache_seconds`); zero keeps no
    /// cache.
    pub fn discovery_cache_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.discovery_cache = if lifetime.is_zero() {
            None
        } else {
            let dir = self
                .options
                .discovery_cache
                .as_ref()
                .map(|c| c.dir().to_path_buf())
                .or_else(mco_discovery::cache::DiscoveryCache::default_dir);
            dir.map(|dir| mco_discovery::cache::DiscoveryCache::new(dir, lifetime))
        };
        self
    }

    /// Sets the quiet window that ends discovery with [`DiscoveryEnd::Window`]
    /// (`discovery_window_ms`).
    pub fn discovery_window(mut self, window: Duration) -> Self {
        self.options.discovery_window = window;
        self
    }

    /// Sets the default time to wait for replies (`timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Sets the default request TTL, seconds (`ttl`).
    pub fn ttl(mut self, ttl: u64) -> Self {
        self.options.ttl = ttl;
        self
    }

    /// Signs requests with this key and token; the caller name becomes the token's name.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.options.credentials = Some(credentials);
        self
    }

    /// Signs requests with the key in this file (`key_file`, mode 0600), read at connect.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.key = Some(path.into());
        self
    }

    /// Sends this token file's token with requests (`token_file`), read at connect.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.token = Some(path.into());
        self
    }

    /// Accepts only replies signed by nodes whose tokens these issuers signed.
    pub fn trust(
        mut self,
        issuers: Vec<ed25519_dalek::VerifyingKey>,
        clock_skew_secs: u64,
    ) -> Self {
        self.options.trust = Some(Trust {
            issuers,
            clock_skew_secs,
        });
        self
    }

    /// Trusts the issuers whose public keys are in these files (`issuer_keys`), read at
    /// connect.
    pub fn issuer_keys(mut self, paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.files.issuers = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the tolerated clock difference with nodes, seconds (`clock_skew_seconds`).
    pub fn clock_skew_seconds(mut self, seconds: u64) -> Self {
        self.files.clock_skew_seconds = Some(seconds);
        if let Some(trust) = &mut self.options.trust {
            trust.clock_skew_secs = seconds;
        }
        self
    }

    /// Sends unsigned requests and accepts unsigned replies (`insecure`, explicitly insecure).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.options.insecure = insecure;
        self
    }

    /// Sets broker authentication, TLS and NATS credentials (`[broker_auth]`).
    pub fn broker_auth(mut self, auth: mco_keys::BrokerAuth) -> Self {
        self.options.broker_auth = auth;
        self
    }

    /// Whether direct requests go through the JetStream work queue (`direct_queue`, default
    /// yes).
    pub fn direct_queue(mut self, enabled: bool) -> Self {
        self.options.direct_queue = enabled;
        self
    }

    /// Sets the settings a missing direct-request stream is created with (the
    /// `[direct_queue]` table).
    pub fn queue_settings(mut self, settings: mco_transport::QueueSettings) -> Self {
        self.options.queue_settings = settings;
        self
    }

    /// Sets how many nodes a broadcast discovery may find for the request to go to them
    /// directly (`direct_addressing_threshold`, default 10).
    pub fn direct_threshold(mut self, nodes: usize) -> Self {
        self.options.direct_threshold = nodes;
        self
    }

    /// Reads agent DDLs from these directories before the built-in ones (`ddl_dirs`).
    pub fn ddl_dirs(mut self, dirs: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.options.ddl_dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Reads validator and aggregate plugins from this directory (`plugins_dir`): the same
    /// validators the nodes enforce are checked before sending.
    pub fn plugins_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.plugins_dir = dir.into();
        self
    }

    /// The discovery method of a call that names none (`default_discovery_method`).
    pub fn default_discovery_method(mut self, method: MethodKind) -> Self {
        self.options.default_discovery_method = method;
        self
    }

    /// The program the external discovery method runs, with its arguments
    /// (`external_discovery_command`, split like a shell would).
    pub fn external_discovery_command(
        mut self,
        argv: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.options.external_discovery_command = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// The registry database the registry method reads (`registry_url`).
    pub fn registry_url(mut self, url: impl Into<String>) -> Self {
        self.options.registry_url = Some(url.into());
        self
    }

    /// Reads the key files, checks the settings and connects to the broker, failing within
    /// the connect timeout.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let ClientBuilder {
            options: mut o,
            files,
            ..
        } = self;
        let credentials_error =
            |e: mco_keys::KeyFileError| ConnectError::from_source(ConnectErrorKind::Credentials, e);
        if let (Some(key), Some(token)) = (&files.key, &files.token) {
            o.credentials =
                Some(mco_keys::read_credentials(key, token).map_err(credentials_error)?);
        }
        if let Some(paths) = &files.issuers {
            let issuers = paths
                .iter()
                .map(|p| mco_keys::read_public_key(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(credentials_error)?;
            o.trust = Some(Trust {
                issuers,
                clock_skew_secs: files.clock_skew_seconds.unwrap_or(30),
            });
        }
        if !o.insecure && (o.credentials.is_none() || o.trust.is_none()) {
            return Err(ConnectError::new(
                ConnectErrorKind::Credentials,
                "requests must be signed: configure key_file, token_file and issuer_keys (see `mco keys`), or insecure = true",
            ));
        }
        if let Some(credentials) = &o.credentials {
            let token = Token::parse(&credentials.token).map_err(|e| {
                ConnectError::with_source(ConnectErrorKind::Credentials, format!("token: {e}"), e)
            })?;
            if token.claims().role != TokenRole::Client {
                return Err(ConnectError::new(
                    ConnectErrorKind::Credentials,
                    format!(
                        "the token is a {} token; requests need a client token",
                        token.claims().role
                    ),
                ));
            }
            if token.holder_key() != &credentials.key.verifying_key() {
                return Err(ConnectError::new(
                    ConnectErrorKind::Credentials,
                    "the token was issued for another key than key_file",
                ));
            }
            // Nodes take the caller from the token: the request must say the same.
            o.caller = token.claims().name.clone();
        }
        let invalid = |m: String| ConnectError::new(ConnectErrorKind::InvalidOptions, m);
        if let Some(c) = o.collectives.iter().find(|c| !subjects::is_valid_token(c)) {
            return Err(invalid(format!("{c:?} is not a valid collective name")));
        }
        if !subjects::is_valid_identity(&o.sender) {
            return Err(invalid(format!(
                "{:?} is not a valid sender identity",
                o.sender
            )));
        }
        if o.caller.is_empty() {
            return Err(invalid("the caller name is empty".into()));
        }
        let link = Link::connect(LinkSettings {
            brokers: o.brokers.clone(),
            auth: o.broker_auth.clone(),
            caller: o.caller.clone(),
            connect_timeout: o.connect_timeout,
            direct_queue: o.direct_queue,
            queue_settings: o.queue_settings.clone(),
        })
        .await?;
        let plugins = mco_ddl::Plugins::load(&o.plugins_dir)
            .map_err(|e| ConnectError::from_source(ConnectErrorKind::Config, e))?;
        let ddls = Ddls::new(o.ddl_dirs.clone()).with_plugins(plugins);
        Ok(Client::new(link, o, Arc::new(ddls)))
    }
}
