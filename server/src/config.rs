//! The daemon's configuration: a TOML file whose every key is documented in
//! `server/mcod.example.toml` (a test keeps the two in step). Unknown keys are errors, and
//! every error is one line naming the file, the key and the problem.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The configuration file as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The node's identity; defaults to the host name.
    #[serde(default)]
    pub identity: Option<String>,
    /// Collectives the node belongs to.
    #[serde(default = "default_collectives")]
    pub collectives: Vec<String>,
    /// The main collective; defaults to the first of `collectives`.
    #[serde(default)]
    pub main_collective: Option<String>,
    /// NATS server URLs: one pool, the daemon connects to one and fails over to the others.
    #[serde(default = "default_brokers")]
    pub brokers: Vec<String>,
    /// YAML or JSON fact files, merged in order over the built-in facts.
    #[serde(default)]
    pub facts_files: Vec<PathBuf>,
    /// A Puppet-style classes file: one class per line.
    #[serde(default)]
    pub classes_file: Option<PathBuf>,
    /// How often fact and class files are checked for changes, seconds.
    #[serde(default = "default_facts_refresh")]
    pub facts_refresh_seconds: u64,
    /// `error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// How log lines are written ([`LogFormat`]).
    #[serde(default)]
    pub log_format: LogFormat,
    /// How long running actions may take to finish after SIGTERM, seconds.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
    /// Agents not to serve (they are not subscribed).
    #[serde(default)]
    pub disabled_agents: Vec<String>,
    /// Most actions running at once, all agents together; further requests wait for a slot
    /// in their agent's queue (`[concurrency]`).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_actions: usize,
    /// Each agent's share of the actions and how many requests may wait for it.
    #[serde(default)]
    pub concurrency: ConcurrencyConfig,
    /// Directories holding external agents (DDL with `provider: external` plus executable).
    #[serde(default)]
    pub agent_dirs: Vec<PathBuf>,
    /// Where external agents' plugin config files live (`<dir>/<agent>`).
    #[serde(default)]
    pub plugin_config_dir: Option<PathBuf>,
    /// Validator plugins (`validators.toml`, `validator/<name>`); see `mco_ddl::plugins`.
    #[serde(default)]
    pub plugins_dir: Option<PathBuf>,
    /// Accept unsigned requests and send unsigned replies. Never in production.
    #[serde(default)]
    pub insecure: bool,
    /// Public key files of the issuers whose tokens this node trusts.
    #[serde(default)]
    pub issuer_keys: Vec<PathBuf>,
    /// This node's private key (mode 0600).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// This node's token, issued for its identity.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Tolerated clock difference with callers, seconds.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
    /// Most request ids remembered for replay protection.
    #[serde(default = "default_replay_cache")]
    pub replay_cache_size: usize,
    /// Most of them one caller may hold (default: a quarter of `replay_cache_size`), so one
    /// caller's flood cannot fill the memory and lock everyone else out.
    #[serde(default)]
    pub replay_caller_share: Option<usize>,
    /// The longest TTL this node honours, seconds: a request is treated as expiring at most
    /// this long after it was made, whatever TTL it asks for, and its id is kept no longer.
    #[serde(default = "default_max_ttl")]
    pub max_ttl_seconds: u64,
    /// Directory of action policies (`<agent>.policy`, `default.policy`, `groups`).
    #[serde(default)]
    pub policy_dir: Option<PathBuf>,
    /// With `policy_dir`: allow agents that have no policy file (default: deny them).
    #[serde(default)]
    pub allow_unconfigured: bool,
    /// Where to append the audit log (one JSON line per decision).
    #[serde(default)]
    pub audit_file: Option<PathBuf>,
    /// Most refusals audited (and logged as warnings) per second; beyond it refusals are
    /// counted and summarised in one line, so junk cannot fill the disk.
    #[serde(default = "default_audit_refusals")]
    pub audit_refusals_per_second: u32,
    /// Inputs whose values the audit log never shows: a name matches when it contains one
    /// of these, ignoring case.
    #[serde(default = "default_audit_redact")]
    pub audit_redact: Vec<String>,
    /// How to authenticate to the broker (TLS, user/password, token, creds, nkey).
    #[serde(default)]
    pub broker_auth: mco_keys::BrokerAuth,
    /// The package, service and puppet agents' settings (`[agents.package]`, ...).
    #[serde(default)]
    pub agents: mco_agents::registry::AgentSettings,
    /// What data plugins may look at (`[data] fstat_paths`).
    #[serde(default)]
    pub data: mco_agents::data::DataSettings,
    /// Where mcod keeps what must survive a restart (the replay journal). Default:
    /// `/var/lib/mco` for root, else `$XDG_STATE_HOME/mco` or `~/.local/state/mco`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The JetStream work queue that holds direct requests until this node takes them.
    #[serde(default)]
    pub direct_queue: DirectQueueConfig,
    /// Publishing this node's registration for registry services.
    #[serde(default)]
    pub registration: RegistrationConfig,
    /// Publishing this node's events (`[events]`, [`crate::events`]).
    #[serde(default)]
    pub events: crate::events::EventsConfig,
}

/// The `[concurrency]` table: how many actions one agent may run at once and how many
/// requests may wait for it, so a slow agent holds only its own share of the node and a
/// flood of it is refused as busy instead of piling up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Most actions one agent runs at once (default: a quarter of `max_concurrent_actions`,
    /// at least 1).
    #[serde(default)]
    pub max_per_agent: Option<usize>,
    /// Most requests that wait for one agent's slots (default: `max_per_agent`); beyond it
    /// a request is refused as busy.
    #[serde(default)]
    pub max_waiting_per_agent: Option<usize>,
    /// Per agent (`[concurrency.agents.<name>]`): its own bounds instead of the two above.
    #[serde(default)]
    pub agents: std::collections::BTreeMap<String, AgentConcurrencyConfig>,
}

/// One agent's `[concurrency.agents.<name>]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConcurrencyConfig {
    /// Most of its actions running at once.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// Most of its requests waiting for a slot.
    #[serde(default)]
    pub max_waiting: Option<usize>,
}

/// One agent's concurrency bounds, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLimits {
    /// Most of its actions running at once (at most `max_concurrent_actions`).
    pub max_concurrent: usize,
    /// Most of its requests waiting for a slot.
    pub max_waiting: usize,
}

/// The `[concurrency]` table resolved: defaults applied, values checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    /// The bounds of an agent without its own table.
    pub default: AgentLimits,
    /// Agents with their own table.
    pub agents: std::collections::BTreeMap<String, AgentLimits>,
}

impl Concurrency {
    /// The bounds of `agent`.
    pub fn limits(&self, agent: &str) -> AgentLimits {
        self.agents.get(agent).copied().unwrap_or(self.default)
    }
}

impl ConcurrencyConfig {
    /// Applies the defaults under `max_concurrent_actions`; `Err` is (key, reason).
    fn resolve(
        &self,
        max_concurrent_actions: usize,
    ) -> Result<Concurrency, (&'static str, String)> {
        let within = |key: &'static str, what: String, n: usize| {
            if n == 0 || n > max_concurrent_actions {
                Err((
                    key,
                    format!("{what}must be between 1 and max_concurrent_actions ({max_concurrent_actions})"),
                ))
            } else {
                Ok(n)
            }
        };
        let max_concurrent = within(
            "concurrency.max_per_agent",
            String::new(),
            self.max_per_agent
                .unwrap_or((max_concurrent_actions / 4).max(1)),
        )?;
        let default = AgentLimits {
            max_concurrent,
            max_waiting: self.max_waiting_per_agent.unwrap_or(max_concurrent),
        };
        let mut agents = std::collections::BTreeMap::new();
        for (name, table) in &self.agents {
            let max_concurrent = within(
                "concurrency.agents",
                format!("{name}.max_concurrent "),
                table.max_concurrent.unwrap_or(default.max_concurrent),
            )?;
            let limits = AgentLimits {
                max_concurrent,
                max_waiting: table.max_waiting.unwrap_or(default.max_waiting),
            };
            agents.insert(name.clone(), limits);
        }
        Ok(Concurrency { default, agents })
    }
}

/// The `[registration]` table: how often this node tells registry services (`mcod registry`)
/// what it is, so that `--dm registry` can discover it without a broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Publish registrations at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between registrations; 0 turns them off. A registry forgets a node after its
    /// own expiry time, so this must be well below that.
    #[serde(default = "default_registration_interval")]
    pub interval_seconds: u64,
    /// The first registration goes out after a random delay of up to this many seconds, so a
    /// fleet restarted at once does not register at once.
    #[serde(default = "default_registration_splay")]
    pub splay_seconds: u64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            enabled: true,
            interval_seconds: default_registration_interval(),
            splay_seconds: default_registration_splay(),
        }
    }
}

impl RegistrationConfig {
    /// The time between registrations, or `None` when registration is off.
    pub fn interval(&self) -> Option<std::time::Duration> {
        (self.enabled && self.interval_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.interval_seconds))
    }
}

fn default_registration_interval() -> u64 {
    300
}

fn default_registration_splay() -> u64 {
    30
}

/// The `[direct_queue]` table: whether direct requests come through JetStream, and the
/// settings of the collective's stream (this node creates it, or updates it to these).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectQueueConfig {
    /// Take direct requests from JetStream (when the broker has it); `false` subscribes to
    /// the plain direct subject, so requests for a node that is down are not kept.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long a request this node took stays with it unacknowledged before JetStream hands
    /// it out again (the node reports progress while an action runs), seconds.
    #[serde(default = "default_ack_wait")]
    pub ack_wait_seconds: u64,
    /// The stream and this node's consumer were made by `mco broker setup`: use them as they
    /// are and never create or change them. Needed under the broker permissions that `mco
    /// broker config` writes, which do not let a node create or change either.
    #[serde(default)]
    pub provisioned: bool,
    /// The stream's settings.
    #[serde(flatten)]
    pub settings: mco_transport::QueueSettings,
}

impl Default for DirectQueueConfig {
    fn default() -> Self {
        DirectQueueConfig {
            enabled: true,
            ack_wait_seconds: default_ack_wait(),
            provisioned: false,
            settings: mco_transport::QueueSettings::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_ack_wait() -> u64 {
    mco_transport::DEFAULT_ACK_WAIT.as_secs()
}

fn default_collectives() -> Vec<String> {
    vec!["mco".into()]
}
fn default_brokers() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".into()]
}
fn default_facts_refresh() -> u64 {
    5
}
/// How mcod writes its log lines (on stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise (a file, a pipe, the journal).
    #[default]
    Auto,
    /// Text: time, level, message and fields.
    Text,
    /// One JSON object a line: `timestamp`, `level`, `fields` (`message` and the event's
    /// fields) and `span`s, for log shippers and `jq`.
    Json,
}

impl LogFormat {
    /// Whether lines are JSON, given whether stderr is a terminal.
    pub fn is_json(self, on_terminal: bool) -> bool {
        match self {
            LogFormat::Auto => !on_terminal,
            LogFormat::Text => false,
            LogFormat::Json => true,
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}
fn default_shutdown_grace() -> u64 {
    10
}
fn default_max_concurrent() -> usize {
    64
}
fn default_clock_skew() -> u64 {
    30
}
fn default_replay_cache() -> usize {
    100_000
}
fn default_max_ttl() -> u64 {
    86_400
}
fn default_audit_refusals() -> u32 {
    20
}
fn default_audit_redact() -> Vec<String> {
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "private_key",
        "api_key",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are exactly what an empty file means.
        toml::from_str("").unwrap_or_else(|_| unreachable!("an empty config is valid"))
    }
}

/// Why the configuration could not be used. Each displays as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The line of the problem.
        line: usize,
        /// The parser's message (names the key).
        message: String,
    },
    /// A key has a value that is not allowed.
    #[error("{path}: {key}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// The configuration resolved for use: defaults applied, paths absolute, values checked.
///
/// `repr(C)`: the identity, which every reply carries, stays first, beside the other
/// fields of [`crate::Node`] every request reads.
#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct Settings {
    /// The node's identity.
    pub identity: String,
    /// Every collective, main first.
    pub collectives: Vec<String>,
    /// The main collective.
    pub main_collective: String,
    /// Broker URLs.
    pub brokers: Vec<String>,
    /// Fact files (absolute).
    pub facts_files: Vec<PathBuf>,
    /// The classes file (absolute).
    pub classes_file: Option<PathBuf>,
    /// Fact and class file check interval, seconds.
    pub facts_refresh_seconds: u64,
    /// Log level.
    pub log_level: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Shutdown grace, seconds.
    pub shutdown_grace_seconds: u64,
    /// Agents not served.
    pub disabled_agents: Vec<String>,
    /// Concurrency bound, all agents together.
    pub max_concurrent_actions: usize,
    /// Each agent's concurrency and waiting bounds.
    pub concurrency: Concurrency,
    /// External agent directories (absolute).
    pub agent_dirs: Vec<PathBuf>,
    /// External agents' plugin config directory (absolute).
    pub plugin_config_dir: PathBuf,
    /// The validator plugins' directory (absolute).
    pub plugins_dir: PathBuf,
    /// Unsigned operation.
    pub insecure: bool,
    /// Trusted issuer key files (absolute).
    pub issuer_keys: Vec<PathBuf>,
    /// The node's private key file (absolute).
    pub key_file: Option<PathBuf>,
    /// The node's token file (absolute).
    pub token_file: Option<PathBuf>,
    /// Tolerated clock skew, seconds.
    pub clock_skew_seconds: u64,
    /// Replay memory bound.
    pub replay_cache_size: usize,
    /// Most replay memory one caller may hold.
    pub replay_caller_share: usize,
    /// The longest TTL honoured, seconds.
    pub max_ttl_seconds: u64,
    /// Action policy directory (absolute).
    pub policy_dir: Option<PathBuf>,
    /// Allow agents without a policy file.
    pub allow_unconfigured: bool,
    /// Audit log file (absolute).
    pub audit_file: Option<PathBuf>,
    /// Refusals audited per second.
    pub audit_refusals_per_second: u32,
    /// Input names redacted in the audit log (lower case).
    pub audit_redact: Vec<String>,
    /// Broker authentication, paths absolute.
    pub broker_auth: mco_keys::BrokerAuth,
    /// The state directory (absolute).
    pub state_dir: PathBuf,
    /// The direct-request queue.
    pub direct_queue: DirectQueueConfig,
    /// Registration publishing.
    pub registration: RegistrationConfig,
    /// Event publishing.
    pub events: crate::events::EventsConfig,
    /// The package, service and puppet agents' settings, paths absolute.
    pub agents: mco_agents::registry::AgentSettings,
    /// What data plugins may look at.
    pub data: mco_agents::data::DataSettings,
    /// The file the settings came from, if any.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// Reads and resolves the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        let config = parse(&text, &display)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Settings::resolve(config, &base, Some(absolute), &display)
    }

    /// Resolves a parsed configuration; relative paths are taken from `base`.
    pub fn resolve(
        config: Config,
        base: &Path,
        config_file: Option<PathBuf>,
        path: &str,
    ) -> Result<Settings, ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            path: path.to_string(),
            key,
            reason,
        };
        let identity = match &config.identity {
            Some(id) => id.clone(),
            None => crate::facts::hostname(),
        };
        if !mco_spec::subjects::is_valid_identity(&identity) {
            return Err(invalid(
                "identity",
                format!("{identity:?} is not a valid identity (letters, digits, '.', '-', '_')"),
            ));
        }
        if config.collectives.is_empty() {
            return Err(invalid(
                "collectives",
                "must name at least one collective".into(),
            ));
        }
        if let Some(bad) = config
            .collectives
            .iter()
            .find(|c| !mco_spec::subjects::is_valid_token(c))
        {
            return Err(invalid(
                "collectives",
                format!("{bad:?} is not a valid collective name (letters, digits, '-', '_')"),
            ));
        }
        let main = config
            .main_collective
            .clone()
            .unwrap_or_else(|| config.collectives[0].clone());
        if !config.collectives.contains(&main) {
            return Err(invalid(
                "main_collective",
                format!("{main:?} is not one of collectives"),
            ));
        }
        if config.brokers.is_empty() {
            return Err(invalid(
                "brokers",
                "must name at least one broker URL".into(),
            ));
        }
        if let Some(bad) = config
            .brokers
            .iter()
            .find(|b| b.parse::<async_nats::ServerAddr>().is_err())
        {
            return Err(invalid(
                "brokers",
                format!("{bad:?} is not a NATS URL (nats://host:port)"),
            ));
        }
        if config.max_concurrent_actions == 0 {
            return Err(invalid(
                "max_concurrent_actions",
                "must be at least 1".into(),
            ));
        }
        let concurrency = config
            .concurrency
            .resolve(config.max_concurrent_actions)
            .map_err(|(key, reason)| invalid(key, reason))?;
        if config.facts_refresh_seconds == 0 {
            return Err(invalid(
                "facts_refresh_seconds",
                "must be at least 1".into(),
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&config.log_level.as_str()) {
            return Err(invalid(
                "log_level",
                format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    config.log_level
                ),
            ));
        }
        if !config.insecure
            && (config.issuer_keys.is_empty()
                || config.key_file.is_none()
                || config.token_file.is_none())
        {
            return Err(invalid(
                "insecure",
                "requests must be signed: set issuer_keys, key_file and token_file (see `mco keys`), or insecure = true to run without signatures".into(),
            ));
        }
        if config.replay_cache_size == 0 {
            return Err(invalid("replay_cache_size", "must be at least 1".into()));
        }
        let replay_caller_share = config
            .replay_caller_share
            .unwrap_or((config.replay_cache_size / 4).max(1));
        if replay_caller_share == 0 || replay_caller_share > config.replay_cache_size {
            return Err(invalid(
                "replay_caller_share",
                format!(
                    "must be between 1 and replay_cache_size ({})",
                    config.replay_cache_size
                ),
            ));
        }
        if config.max_ttl_seconds == 0
            || config.max_ttl_seconds > mco_spec::message::MAX_TTL_SECONDS
        {
            return Err(invalid(
                "max_ttl_seconds",
                format!(
                    "must be between 1 and {} (7 days)",
                    mco_spec::message::MAX_TTL_SECONDS
                ),
            ));
        }
        if config.audit_refusals_per_second == 0 {
            return Err(invalid(
                "audit_refusals_per_second",
                "must be at least 1".into(),
            ));
        }
        config
            .direct_queue
            .settings
            .validate()
            .map_err(|reason| invalid("direct_queue", reason))?;
        config
            .events
            .validate()
            .map_err(|reason| invalid("events", reason))?;
        if config.direct_queue.ack_wait_seconds < 3 {
            return Err(invalid(
                "direct_queue",
                "ack_wait_seconds must be at least 3".into(),
            ));
        }
        if let Err(e) = config.agents.check().and_then(|()| config.data.check()) {
            return Err(invalid(e.key, e.reason));
        }
        let mut collectives = vec![main.clone()];
        collectives.extend(config.collectives.iter().filter(|c| **c != main).cloned());
        collectives.dedup();
        let absolute = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        Ok(Settings {
            identity,
            collectives,
            main_collective: main,
            brokers: config.brokers.clone(),
            facts_files: config.facts_files.iter().map(absolute).collect(),
            classes_file: config.classes_file.as_ref().map(absolute),
            facts_refresh_seconds: config.facts_refresh_seconds,
            log_level: config.log_level.clone(),
            log_format: config.log_format,
            shutdown_grace_seconds: config.shutdown_grace_seconds,
            disabled_agents: config.disabled_agents.clone(),
            max_concurrent_actions: config.max_concurrent_actions,
            concurrency,
            agent_dirs: config.agent_dirs.iter().map(absolute).collect(),
            plugin_config_dir: config
                .plugin_config_dir
                .as_ref()
                .map(absolute)
                .unwrap_or_else(|| base.join("plugin.d")),
            plugins_dir: config
                .plugins_dir
                .as_ref()
                .map_or_else(|| mco_ddl::plugins::DEFAULT_PLUGINS_DIR.into(), absolute),
            insecure: config.insecure,
            issuer_keys: config.issuer_keys.iter().map(absolute).collect(),
            key_file: config.key_file.as_ref().map(absolute),
            token_file: config.token_file.as_ref().map(absolute),
            clock_skew_seconds: config.clock_skew_seconds,
            replay_cache_size: config.replay_cache_size,
            replay_caller_share,
            max_ttl_seconds: config.max_ttl_seconds,
            policy_dir: config.policy_dir.as_ref().map(absolute),
            allow_unconfigured: config.allow_unconfigured,
            audit_file: config.audit_file.as_ref().map(absolute),
            audit_refusals_per_second: config.audit_refusals_per_second,
            audit_redact: config
                .audit_redact
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            broker_auth: config.broker_auth.resolved(base),
            state_dir: config
                .state_dir
                .as_ref()
                .map(absolute)
                .unwrap_or_else(default_state_dir),
            direct_queue: config.direct_queue.clone(),
            registration: config.registration.clone(),
            events: config.events.clone(),
            agents: config.agents.resolved(base),
            data: config.data.clone(),
            config_file,
        })
    }

    /// A configuration value by key, for `rpcutil get_config_item`: only the items in
    /// [`SHARED_ITEMS`], which say how the node runs and hold no secret (broker URLs are
    /// shown without their user and password). Anything else, the broker credentials, key
    /// and token files and agent settings among them, is `None`.
    pub fn item(&self, key: &str) -> Option<serde_json::Value> {
        use serde_json::json;
        let path = |p: &Path| p.display().to_string();
        let value = match key {
            "identity" => json!(self.identity),
            "collectives" => json!(self.collectives),
            "main_collective" => json!(self.main_collective),
            "config_file" | "configfile" => {
                json!(self.config_file.as_deref().map(path).unwrap_or_default())
            }
            "brokers" => json!(self
                .brokers
                .iter()
                .map(|b| without_userinfo(b))
                .collect::<Vec<_>>()),
            "facts_files" => json!(self.facts_files.iter().map(|p| path(p)).collect::<Vec<_>>()),
            "classes_file" => json!(self.classes_file.as_deref().map(path)),
            "facts_refresh_seconds" => json!(self.facts_refresh_seconds),
            "log_level" => json!(self.log_level),
            "shutdown_grace_seconds" => json!(self.shutdown_grace_seconds),
            "disabled_agents" => json!(self.disabled_agents),
            "max_concurrent_actions" => json!(self.max_concurrent_actions),
            "agent_dirs" => json!(self.agent_dirs.iter().map(|p| path(p)).collect::<Vec<_>>()),
            "clock_skew_seconds" => json!(self.clock_skew_seconds),
            "replay_cache_size" => json!(self.replay_cache_size),
            "registration" => json!(self.registration),
            _ => return None,
        };
        debug_assert!(
            SHARED_ITEMS.contains(&key),
            "{key} is shared but not listed"
        );
        Some(value)
    }
}

/// The configuration items `rpcutil get_config_item` answers (see [`Settings::item`]).
pub const SHARED_ITEMS: [&str; 17] = [
    "identity",
    "collectives",
    "main_collective",
    "config_file",
    "configfile",
    "brokers",
    "facts_files",
    "classes_file",
    "facts_refresh_seconds",
    "log_level",
    "shutdown_grace_seconds",
    "disabled_agents",
    "max_concurrent_actions",
    "agent_dirs",
    "clock_skew_seconds",
    "replay_cache_size",
    "registration",
];

/// A broker URL without its user information (`nats://user:pass@host:4222` →
/// `nats://host:4222`): everything up to the last `@` after the scheme goes, so no part of
/// a password survives, whatever characters it holds.
pub fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match scheme {
        Some(scheme) => format!("{scheme}://{host}"),
        None => host.to_string(),
    }
}

/// Where state lives when `state_dir` is not set: the system place for root, the user's
/// state directory otherwise (so a developer's mcod runs without root).
fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/mco");
    }
    let xdg = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty());
    match (xdg, std::env::var_os("HOME")) {
        (Some(state), _) => PathBuf::from(state).join("mco"),
        (None, Some(home)) => PathBuf::from(home).join(".local/state/mco"),
        (None, None) => PathBuf::from("/var/lib/mco"),
    }
}

/// Parses configuration text; `path` is used in errors.
pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1);
        ConfigError::Parse {
            path: path.to_string(),
            line,
            message: e.message().replace('\n', " "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Settings, ConfigError> {
        let text = format!("insecure = true\n{text}");
        Settings::resolve(
            parse(&text, "t.toml")?,
            Path::new("/etc/mco"),
            None,
            "t.toml",
        )
    }

    #[test]
    fn defaults_apply_and_paths_resolve() {
        let s = resolve("identity = \"web1\"\nfacts_files = [\"facts.yaml\", \"/abs.json\"]\nclasses_file = \"classes.txt\"\n").unwrap();
        assert_eq!(s.identity, "web1");
        assert_eq!(s.collectives, ["mco"]);
        assert_eq!(s.main_collective, "mco");
        assert_eq!(s.brokers, ["nats://127.0.0.1:4222"]);
        assert_eq!(
            s.facts_files,
            [
                PathBuf::from("/etc/mco/facts.yaml"),
                PathBuf::from("/abs.json")
            ]
        );
        assert_eq!(s.classes_file, Some(PathBuf::from("/etc/mco/classes.txt")));
        assert_eq!(s.item("identity"), Some("web1".into()));
        assert_eq!(s.item("shutdown_grace_seconds"), Some(10.into()));
        assert_eq!(s.item("nope"), None);
        for item in SHARED_ITEMS {
            assert!(s.item(item).is_some(), "{item}");
        }
        let sub =
            resolve("identity = \"a\"\ncollectives = [\"eu\", \"mco\"]\nmain_collective = \"mco\"")
                .unwrap();
        assert_eq!(sub.collectives, ["mco", "eu"]);
    }

    #[test]
    fn errors_are_one_line_naming_the_key() {
        let table = [
            (
                "identity = \"a\"\nbogus = 1\n",
                "t.toml:3: unknown field `bogus`",
            ),
            ("identity = \"a\"\ncollectives = \"mco\"\n", "t.toml:3:"),
            (
                "identity = \"a b\"\n",
                "identity: \"a b\" is not a valid identity",
            ),
            (
                "identity = \"a\"\ncollectives = []\n",
                "collectives: must name at least one",
            ),
            (
                "identity = \"a\"\ncollectives = [\"a.b\"]\n",
                "collectives: \"a.b\" is not a valid collective",
            ),
            (
                "identity = \"a\"\nmain_collective = \"x\"\n",
                "main_collective: \"x\" is not one of collectives",
            ),
            (
                "identity = \"a\"\nbrokers = []\n",
                "brokers: must name at least one",
            ),
            ("identity = \"a\"\nlog_level = \"loud\"\n", "log_level:"),
            (
                "identity = \"a\"\nmax_concurrent_actions = 0\n",
                "max_concurrent_actions: must be at least 1",
            ),
            (
                "identity = \"a\"\n[concurrency]\nmax_per_agent = 65\n",
                "concurrency.max_per_agent: must be between 1 and max_concurrent_actions (64)",
            ),
            (
                "identity = \"a\"\n[concurrency.agents.puppet]\nmax_concurrent = 0\n",
                "concurrency.agents: puppet.max_concurrent must be between 1 and max_concurrent_actions (64)",
            ),
            (
                "identity = \"a\"\n[concurrency.agents.puppet]\nmax_running = 1\n",
                "unknown field `max_running`",
            ),
            ("identity = [\n", "unclosed array"),
        ];
        for (text, want) in table {
            let message = resolve(text).unwrap_err().to_string();
            assert!(message.contains(want), "{want:?} not in {message:?}");
            assert!(!message.contains('\n'), "{message:?}");
        }
    }

    #[test]
    fn signatures_are_required_unless_insecure_is_explicit() {
        let bare = parse("identity = \"a\"\n", "t.toml").unwrap();
        let message = Settings::resolve(bare, Path::new("/"), None, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("t.toml: insecure: requests must be signed"),
            "{message}"
        );
        let keyed = parse("identity = \"a\"\nissuer_keys = [\"i.pub\"]\nkey_file = \"a.key\"\ntoken_file = \"a.token\"\n", "t.toml").unwrap();
        let settings = Settings::resolve(keyed, Path::new("/etc/mco"), None, "t.toml").unwrap();
        assert_eq!(settings.key_file, Some(PathBuf::from("/etc/mco/a.key")));
        assert!(!settings.insecure);
    }

    #[test]
    fn the_example_config_is_valid_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcod.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let example = Settings::load(&path).unwrap();
        assert_eq!(example.identity, "web1.example.net");
        // Every key of the configuration appears in the example (set or commented out),
        // tables with their `[header]` and each of their keys.
        let documented = |line: &str| {
            text.lines()
                .any(|l| l.trim_start_matches(['#', ' ']) == line)
        };
        let key_documented = |key: &str| {
            text.lines().any(|l| {
                l.trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} ="))
            })
        };
        fn walk(
            prefix: &str,
            table: &serde_json::Map<String, serde_json::Value>,
            documented: &dyn Fn(&str) -> bool,
            key_documented: &dyn Fn(&str) -> bool,
        ) {
            let has_keys = table.values().any(|v| !v.is_object());
            if !prefix.is_empty() && has_keys {
                assert!(
                    documented(&format!("[{prefix}]")),
                    "mcod.example.toml does not document [{prefix}]"
                );
            }
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match value {
                    serde_json::Value::Object(inner) => {
                        walk(&path, inner, documented, key_documented)
                    }
                    _ => assert!(
                        key_documented(key),
                        "mcod.example.toml does not document {path}"
                    ),
                }
            }
        }
        let all = serde_json::to_value(Config::default()).unwrap();
        walk("", all.as_object().unwrap(), &documented, &key_documented);
    }

    #[test]
    fn config_items_never_include_secrets() {
        let s = resolve(
            "identity = \"a\"\nbrokers = [\"nats://mco:s3cret@127.0.0.1:4222\", \"tls://x:p4ss@h:1\"]\nkey_file = \"a.key\"\ntoken_file = \"a.token\"\nissuer_keys = [\"i.pub\"]\n[broker_auth]\nuser = \"mco\"\npassword = \"s3cret\"\ntoken = \"t0ken\"\n[agents.package]\nextra_args = [\"-o\", \"Acquire::http::Proxy=http://u:s3cret@proxy\"]\n",
        )
        .unwrap();
        assert_eq!(
            s.item("brokers"),
            Some(serde_json::json!(["nats://127.0.0.1:4222", "tls://h:1"]))
        );
        for secret in [
            "broker_auth",
            "password",
            "token",
            "key_file",
            "token_file",
            "issuer_keys",
            "agents",
            "broker_auth.password",
            "insecure",
            "audit_file",
            "raw",
        ] {
            assert_eq!(s.item(secret), None, "{secret}");
        }
        let shown: Vec<String> = SHARED_ITEMS
            .iter()
            .filter_map(|i| s.item(i))
            .map(|v| v.to_string())
            .collect();
        assert!(
            !shown
                .iter()
                .any(|v| v.contains("s3cret") || v.contains("t0ken")),
            "{shown:?}"
        );
    }

    #[test]
    fn broker_urls_lose_their_user_information() {
        let table = [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("nats://mco:s3cret@127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("nats://tok@h:4222", "nats://h:4222"),
            ("u:p@h:4222", "h:4222"),
            ("h:4222", "h:4222"),
            ("tls://u:p@ss@w/rd@[::1]:4222", "tls://[::1]:4222"),
        ];
        for (url, want) in table {
            assert_eq!(without_userinfo(url), want, "{url}");
        }
    }

    #[test]
    fn fstat_paths_default_and_are_checked() {
        let s = resolve("identity = \"a\"\n").unwrap();
        assert_eq!(s.data, mco_agents::data::DataSettings::default());
        let custom = resolve("[data]\nfstat_paths = [\"/opt/app\"]\n").unwrap();
        assert_eq!(custom.data.fstat_paths, [PathBuf::from("/opt/app")]);
        let bad = resolve("[data]\nfstat_paths = [\"/proc\"]\n").unwrap_err();
        assert_eq!(
            bad.to_string(),
            "t.toml: data.fstat_paths: \"/proc\" is under /proc, /sys, /dev, where fstat never looks"
        );
    }

    #[test]
    fn agent_concurrency_defaults_to_a_share_of_the_node() {
        let s = resolve("identity = \"a\"\n").unwrap();
        let share = AgentLimits {
            max_concurrent: 16,
            max_waiting: 16,
        };
        assert_eq!(s.concurrency.limits("rpcutil"), share);
        let one = resolve("max_concurrent_actions = 2\n").unwrap();
        assert_eq!(one.concurrency.limits("x").max_concurrent, 1);
        let custom = resolve(
            "[concurrency]\nmax_per_agent = 8\nmax_waiting_per_agent = 0\n[concurrency.agents.puppet]\nmax_concurrent = 1\n[concurrency.agents.slow]\nmax_waiting = 100\n",
        )
        .unwrap();
        let c = &custom.concurrency;
        assert_eq!(
            (
                c.limits("rpcutil").max_concurrent,
                c.limits("rpcutil").max_waiting
            ),
            (8, 0)
        );
        assert_eq!(
            (
                c.limits("puppet").max_concurrent,
                c.limits("puppet").max_waiting
            ),
            (1, 0)
        );
        assert_eq!(
            (
                c.limits("slow").max_concurrent,
                c.limits("slow").max_waiting
            ),
            (8, 100)
        );
    }

    #[test]
    fn registration_is_on_by_default_and_can_be_turned_off() {
        let s = resolve("identity = \"a\"\n").unwrap();
        assert_eq!(
            s.registration.interval(),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(s.registration.splay_seconds, 30);
        let fast = resolve("[registration]\ninterval_seconds = 1\nsplay_seconds = 0\n").unwrap();
        assert_eq!(
            fast.registration.interval(),
            Some(std::time::Duration::from_secs(1))
        );
        for off in [
            "[registration]\nenabled = false\n",
            "[registration]\ninterval_seconds = 0\n",
        ] {
            assert_eq!(resolve(off).unwrap().registration.interval(), None, "{off}");
        }
        let typo = resolve("[registration]\ninterval = 5\n").unwrap_err();
        assert!(
            typo.to_string().contains("unknown field `interval`"),
            "{typo}"
        );
    }

    #[test]
    fn agent_tables_are_read_checked_and_resolved() {
        let settings = resolve(
            "[agents.service]\ninit_dir = \"init.d\"\n[agents.puppet]\nrun_mode = \"apply\"\nmanifest = \"site.pp\"\nargs = [\"--vardir\", \"/tmp/v\"]\n[agents.package]\nprovider = \"apt\"\nextra_args = [\"-o\", \"Debug::NoLocking=1\"]\n",
        )
        .unwrap();
        assert_eq!(
            settings.agents.service.init_dir,
            Some(PathBuf::from("/etc/mco/init.d"))
        );
        assert_eq!(
            settings.agents.puppet.manifest,
            Some(PathBuf::from("/etc/mco/site.pp"))
        );
        assert_eq!(settings.agents.package.extra_args.len(), 2);
        let no_manifest = resolve("[agents.puppet]\nrun_mode = \"apply\"\n").unwrap_err();
        assert_eq!(
            no_manifest.to_string(),
            "t.toml: agents.puppet.manifest: run_mode = \"apply\" needs the manifest to apply"
        );
        let typo = resolve("[agents.package]\nprovidr = \"apt\"\n").unwrap_err();
        assert!(typo.to_string().contains("providr"), "{typo}");
        let bad = resolve("[agents.service]\nprovider = \"upstart\"\n").unwrap_err();
        assert!(bad.to_string().contains("upstart"), "{bad}");
    }
}
