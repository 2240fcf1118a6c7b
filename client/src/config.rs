//! The `mco` configuration file (TOML). Looked up in this order: `--config FILE`,
//! `$MCO_CONFIG`, `~/.config/mco/client.toml`, `/etc/mco/client.toml`; with none, defaults
//! apply. Every key is documented in `client/mco.example.toml` (a test keeps them in step).
//! Unknown keys are errors, reported as one line naming the file and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::builder::{ClientBuilder, DiscoveryEnd};

/// The client configuration file as written; every key optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// NATS server URLs (one pool).
    pub brokers: Option<Vec<String>>,
    /// Known collectives.
    pub collectives: Option<Vec<String>>,
    /// The default collective.
    pub main_collective: Option<String>,
    /// The caller name.
    pub caller: Option<String>,
    /// Broadcast discovery timeout, seconds.
    pub discovery_timeout: Option<f64>,
    /// Discovery ends this many milliseconds after the last reply (`discovery_end = "window"`).
    pub discovery_window_ms: Option<u64>,
    /// How broadcast discovery ends: `adaptive` (default) or `window` (fixed quiet window).
    pub discovery_end: Option<String>,
    /// Adaptive discovery without a complete expected set lasts at least this long, ms.
    pub discovery_floor_ms: Option<u64>,
    /// Adaptive discovery waits at least this long for new nodes once every expected node
    /// answered, ms.
    pub discovery_grace_ms: Option<u64>,
    /// Where the discovery cache is (default `$XDG_CACHE_HOME/mco/discovery`).
    pub discovery_cache_dir: Option<PathBuf>,
    /// How long a discovery cache entry is used, seconds; 0 turns the cache off.
    pub discovery_cache_seconds: Option<u64>,
    /// How long to wait for replies, seconds.
    pub timeout: Option<f64>,
    /// How long a request stays valid, seconds.
    pub ttl: Option<u64>,
    /// How long to try to reach a broker, seconds.
    pub connect_timeout: Option<f64>,
    /// Directories of agent DDLs (`<dir>/<agent>.json`), searched before the built-in ones.
    pub ddl_dirs: Option<Vec<PathBuf>>,
    /// Validator and aggregate plugins (`mco_ddl::plugins`); `/etc/mco/plugins` by default.
    pub plugins_dir: Option<PathBuf>,
    /// The caller's private key (mode 0600).
    pub key_file: Option<PathBuf>,
    /// The caller's token.
    pub token_file: Option<PathBuf>,
    /// Public keys of the issuers whose server tokens replies must carry.
    pub issuer_keys: Option<Vec<PathBuf>>,
    /// Tolerated clock difference with nodes, seconds.
    pub clock_skew_seconds: Option<u64>,
    /// Send unsigned requests and accept unsigned replies.
    pub insecure: Option<bool>,
    /// Broker authentication (TLS, NATS credentials).
    pub broker_auth: Option<mco_keys::BrokerAuth>,
    /// The discovery method when `--dm` is not given and stdin is not piped.
    pub default_discovery_method: Option<String>,
    /// The program the external discovery method runs (split like a shell would).
    pub external_discovery_command: Option<String>,
    /// The registry database the registry method reads: an SQLite file or `postgres://...`.
    pub registry_url: Option<String>,
    /// Queue direct requests in JetStream (default true), as `true`/`false` or a
    /// `[direct_queue]` table that also gives the stream's settings.
    pub direct_queue: Option<DirectQueueConfig>,
    /// A broadcast discovery that finds at most this many nodes is followed by direct requests.
    pub direct_addressing_threshold: Option<usize>,
    /// The web gateway's settings (`mco-web`, which checks them); the command line ignores
    /// them, so the gateway and `mco` share one file.
    pub web: Option<toml::Table>,
}

/// The `direct_queue` setting: `direct_queue = true|false`, or a `[direct_queue]` table with
/// `enabled` and the settings of the collective's stream, which this client uses when it
/// creates the stream (none exists yet) and `mco broker setup` applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectQueueConfig {
    /// Queue direct requests in JetStream.
    pub enabled: bool,
    /// The stream's settings.
    #[serde(flatten)]
    pub settings: mco_transport::QueueSettings,
}

impl Default for DirectQueueConfig {
    fn default() -> Self {
        DirectQueueConfig {
            enabled: true,
            settings: mco_transport::QueueSettings::default(),
        }
    }
}

/// The table form, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectQueueTable {
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(flatten)]
    settings: mco_transport::QueueSettings,
}

fn enabled_by_default() -> bool {
    true
}

impl<'de> Deserialize<'de> for DirectQueueConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = DirectQueueConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a [direct_queue] table")
            }
            fn visit_bool<E: serde::de::Error>(self, enabled: bool) -> Result<Self::Value, E> {
                Ok(DirectQueueConfig {
                    enabled,
                    ..DirectQueueConfig::default()
                })
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<Self::Value, M::Error> {
                let table = DirectQueueTable::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(DirectQueueConfig {
                    enabled: table.enabled,
                    settings: table.settings,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid (unknown key, wrong type).
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
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

/// Where the configuration comes from, if anywhere.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("MCO_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/mco/client.toml"));
    home.into_iter()
        .chain([PathBuf::from("/etc/mco/client.toml")])
        .find(|p| p.is_file())
}

impl ClientConfig {
    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<ClientConfig, ClientConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ClientConfigError::Read {
            path: display.clone(),
            source,
        })?;
        ClientConfig::parse(&text, &display)
    }

    /// Parses configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<ClientConfig, ClientConfigError> {
        let config: ClientConfig = toml::from_str(text).map_err(|e| ClientConfigError::Parse {
            path: path.to_string(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1),
            message: e.message().replace('\n', " "),
        })?;
        let invalid = |key, reason: &str| ClientConfigError::Invalid {
            path: path.to_string(),
            key,
            reason: reason.to_string(),
        };
        for (key, value) in [
            ("discovery_timeout", config.discovery_timeout),
            ("timeout", config.timeout),
            ("connect_timeout", config.connect_timeout),
        ] {
            if value.is_some_and(|v| !(v > 0.0 && v <= 86_400.0)) {
                return Err(invalid(
                    key,
                    "must be a number of seconds between 0 and 86400",
                ));
            }
        }
        if config.ttl == Some(0) {
            return Err(invalid("ttl", "must be at least 1 second"));
        }
        if config.brokers.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid("brokers", "must name at least one broker"));
        }
        if config.collectives.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid("collectives", "must name at least one collective"));
        }
        if let Some(queue) = &config.direct_queue {
            queue
                .settings
                .validate()
                .map_err(|reason| invalid("direct_queue", &reason))?;
        }
        if let Some(end) = &config.discovery_end {
            if DiscoveryEnd::from_name(end).is_none() {
                return Err(invalid(
                    "discovery_end",
                    &format!("{end:?} is not adaptive or window"),
                ));
            }
        }
        for (key, value) in [
            ("discovery_floor_ms", config.discovery_floor_ms),
            ("discovery_grace_ms", config.discovery_grace_ms),
            ("discovery_window_ms", config.discovery_window_ms),
        ] {
            if value.is_some_and(|v| v > 86_400_000) {
                return Err(invalid(key, "must be at most 86400000 (a day)"));
            }
        }
        if let Some(method) = &config.default_discovery_method {
            if let Err(e) = mco_discovery::method::MethodKind::from_name(method) {
                return Err(invalid("default_discovery_method", &e.to_string()));
            }
        }
        if let Some(line) = &config.external_discovery_command {
            if config.external_discovery_argv().is_none() {
                return Err(invalid(
                    "external_discovery_command",
                    &format!("cannot split {line:?} into a program and its arguments"),
                ));
            }
        }
        Ok(config)
    }

    /// The plugin directory, a relative path taken from `base` (the file's directory);
    /// [`mco_ddl::plugins::DEFAULT_PLUGINS_DIR`] when not set.
    pub fn plugins_dir(&self, base: &Path) -> PathBuf {
        match &self.plugins_dir {
            Some(dir) => base.join(dir),
            None => mco_ddl::plugins::DEFAULT_PLUGINS_DIR.into(),
        }
    }

    /// The DDL directories, relative paths taken from `base` (the file's directory).
    pub fn ddl_dirs(&self, base: &Path) -> Vec<PathBuf> {
        self.ddl_dirs
            .iter()
            .flatten()
            .map(|d| {
                if d.is_absolute() {
                    d.clone()
                } else {
                    base.join(d)
                }
            })
            .collect()
    }

    /// Applies every setting to a builder; relative paths are taken from `base` (the file's
    /// directory). Key, token and issuer files are read when the builder connects.
    pub fn apply(&self, mut builder: ClientBuilder, base: &Path) -> ClientBuilder {
        let abs = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        if let Some(b) = &self.brokers {
            builder = builder.brokers(b.clone());
        }
        if let Some(c) = &self.collectives {
            builder = builder.collectives(c.clone());
        }
        if let Some(m) = &self.main_collective {
            builder = builder.main_collective(m.clone());
        }
        if let Some(c) = &self.caller {
            builder = builder.caller(c.clone());
        }
        if let Some(t) = self.discovery_timeout {
            builder = builder.discovery_timeout(Duration::from_secs_f64(t));
        }
        if let Some(w) = self.discovery_window_ms {
            builder = builder.discovery_window(Duration::from_millis(w));
        }
        // Checked when the file was parsed.
        if let Some(end) = self
            .discovery_end
            .as_deref()
            .and_then(DiscoveryEnd::from_name)
        {
            builder = builder.discovery_end(end);
        }
        if let Some(ms) = self.discovery_floor_ms {
            builder = builder.discovery_floor(Duration::from_millis(ms));
        }
        if let Some(ms) = self.discovery_grace_ms {
            builder = builder.discovery_grace(Duration::from_millis(ms));
        }
        if let Some(dir) = &self.discovery_cache_dir {
            builder = builder.discovery_cache_dir(abs(dir));
        }
        if let Some(seconds) = self.discovery_cache_seconds {
            builder = builder.discovery_cache_lifetime(Duration::from_secs(seconds));
        }
        if let Some(t) = self.timeout {
            builder = builder.timeout(Duration::from_secs_f64(t));
        }
        if let Some(t) = self.ttl {
            builder = builder.ttl(t);
        }
        if let Some(t) = self.connect_timeout {
            builder = builder.connect_timeout(Duration::from_secs_f64(t));
        }
        if self.ddl_dirs.is_some() {
            builder = builder.ddl_dirs(self.ddl_dirs(base));
        }
        builder = builder.plugins_dir(self.plugins_dir(base));
        if let Some(key) = &self.key_file {
            builder = builder.key_file(abs(key));
        }
        if let Some(token) = &self.token_file {
            builder = builder.token_file(abs(token));
        }
        if let Some(issuers) = &self.issuer_keys {
            builder = builder.issuer_keys(issuers.iter().map(abs));
        }
        if let Some(skew) = self.clock_skew_seconds {
            builder = builder.clock_skew_seconds(skew);
        }
        if let Some(insecure) = self.insecure {
            builder = builder.insecure(insecure);
        }
        if let Some(auth) = &self.broker_auth {
            builder = builder.broker_auth(auth.resolved(base));
        }
        if let Some(method) = &self.default_discovery_method {
            // Checked when the file was parsed.
            if let Ok(method) = mco_discovery::method::MethodKind::from_name(method) {
                builder = builder.default_discovery_method(method);
            }
        }
        if let Some(argv) = self.external_discovery_argv() {
            builder = builder.external_discovery_command(argv);
        }
        if let Some(url) = &self.registry_url {
            builder = builder.registry_url(url.clone());
        }
        if let Some(q) = &self.direct_queue {
            builder = builder
                .direct_queue(q.enabled)
                .queue_settings(q.settings.clone());
        }
        if let Some(n) = self.direct_addressing_threshold {
            builder = builder.direct_threshold(n);
        }
        builder
    }

    /// `external_discovery_command` split like a shell would (checked when parsed).
    fn external_discovery_argv(&self) -> Option<Vec<String>> {
        self.external_discovery_command
            .as_deref()
            .and_then(shlex::split)
            .filter(|argv| !argv.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mco.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = ClientConfig::load(&path).unwrap();
        assert_eq!(
            config.brokers.as_deref(),
            Some(&["nats://127.0.0.1:4222".to_string()][..])
        );
        let all = ClientConfig {
            brokers: Some(vec![]),
            collectives: Some(vec![]),
            main_collective: Some(String::new()),
            caller: Some(String::new()),
            discovery_timeout: Some(1.0),
            discovery_window_ms: Some(1),
            discovery_end: Some(String::new()),
            discovery_floor_ms: Some(1),
            discovery_grace_ms: Some(1),
            discovery_cache_dir: Some(PathBuf::new()),
            discovery_cache_seconds: Some(1),
            timeout: Some(1.0),
            ttl: Some(1),
            connect_timeout: Some(1.0),
            ddl_dirs: Some(vec![]),
            plugins_dir: Some(PathBuf::new()),
            key_file: Some(PathBuf::new()),
            token_file: Some(PathBuf::new()),
            issuer_keys: Some(vec![]),
            clock_skew_seconds: Some(1),
            insecure: Some(false),
            broker_auth: Some(Default::default()),
            default_discovery_method: Some(String::new()),
            external_discovery_command: Some(String::new()),
            registry_url: Some(String::new()),
            direct_queue: Some(DirectQueueConfig::default()),
            direct_addressing_threshold: Some(1),
            web: Some(toml::Table::new()),
        };
        for key in serde_json::to_value(all)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(
                text.lines().any(|l| {
                    let l = l.trim_start_matches(['#', ' ']);
                    l.starts_with(&format!("{key} =")) || l == format!("[{key}]")
                }),
                "mco.example.toml does not document {key}"
            );
        }
    }

    #[test]
    fn direct_queue_is_a_switch_or_a_table() {
        let off = ClientConfig::parse("direct_queue = false\n", "c").unwrap();
        assert_eq!(off.direct_queue.map(|q| q.enabled), Some(false));
        let table = ClientConfig::parse(
            "[direct_queue]\nmax_msgs_per_subject = 5\nstorage = \"memory\"\n",
            "c",
        )
        .unwrap()
        .direct_queue
        .unwrap();
        assert!(table.enabled);
        assert_eq!(table.settings.max_msgs_per_subject, 5);
        assert_eq!(table.settings.storage, mco_transport::QueueStorage::Memory);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, want) in [
            ("bogus = 1\n", "c.toml:1: unknown field `bogus`"),
            ("timeout = -1\n", "c.toml: timeout: must be"),
            ("ttl = 0\n", "c.toml: ttl:"),
            ("brokers = []\n", "brokers: must name"),
            ("timeout = \"x\"\n", "c.toml:1:"),
            ("[direct_queue]\nmax_msg = 1\n", "unknown field `max_msg`"),
            ("[direct_queue]\nmax_msgs = 0\n", "direct_queue: max_msgs"),
            (
                "direct_queue = 3\n",
                "true, false or a [direct_queue] table",
            ),
        ] {
            let e = ClientConfig::parse(text, "c.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}
