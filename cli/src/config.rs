//! `mco config [--check]`: the effective client configuration, each value with where it came
//! from (a flag, an environment variable, the configuration file, or the default), and a
//! check that the configuration can be used, as `mcod --check` does for the daemon: one OK
//! line, or one line naming the file and key that is wrong, without connecting to a broker.
//!
//! Secrets are never printed: key and token files by path only, passwords and tokens in
//! broker URLs, `registry_url` and `[broker_auth]` as `[redacted]`. Not a second loader: the
//! values are the ones `ClientBuilder` ends up with; this file only explains them.

use std::path::PathBuf;

use clap::Args;
use mco_client::config::ClientConfig;
use mco_client::ClientBuilder;
use mco_spec::security::{Token, TokenRole};

use crate::{Failure, Printed};

const REDACTED: &str = "[redacted]";

/// `mco config` flags.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Client configuration file (default: $MCO_CONFIG, ~/.config/mco/client.toml,
    /// /etc/mco/client.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// NATS server URL; repeat for a pool. Overrides the configuration file.
    #[arg(long, value_name = "URL")]
    pub broker: Vec<String>,
    /// Check the configuration instead: print "FILE: OK (...)" and exit 0, or one line naming
    /// the file and the key that is wrong and exit 1. Reads the key, token and credentials
    /// files and the DDL directories; does not connect.
    #[arg(long)]
    pub check: bool,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    Flag(&'static str),
    Env(&'static str),
    File(String),
    /// Found in the usual places (`~/.config/mco/client.toml`, `/etc/mco/client.toml`).
    Searched,
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(var) => write!(f, "env ${var}"),
            Origin::File(path) => write!(f, "file {path}"),
            Origin::Searched => f.write_str("found in the default places"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// The configuration as found: the file (if any) and why it was chosen, its settings, and
/// the builder they and the flags give.
struct Found {
    path: Option<PathBuf>,
    path_origin: Origin,
    config: ClientConfig,
    base: PathBuf,
    builder: ClientBuilder,
}

impl Found {
    fn locate(args: &ConfigArgs) -> Result<Found, Failure> {
        let path = mco_client::config::locate(args.config.as_deref());
        let path_origin = if args.config.is_some() {
            Origin::Flag("--config")
        } else if std::env::var_os("MCO_CONFIG").is_some_and(|v| !v.is_empty()) {
            Origin::Env("MCO_CONFIG")
        } else if path.is_some() {
            Origin::Searched
        } else {
            Origin::Default
        };
        let (config, _, base) = super::load_config(args.config.as_deref())?;
        let mut builder = config.apply(ClientBuilder::default(), &base);
        if !args.broker.is_empty() {
            builder = builder.brokers(args.broker.clone());
        }
        Ok(Found {
            path,
            path_origin,
            config,
            base,
            builder,
        })
    }

    /// The file as errors name it.
    fn file(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "defaults".to_string(), |p| p.display().to_string())
    }

    /// Where `key` came from when no flag set it.
    fn origin(&self, key: &str) -> Origin {
        let set = serde_json::to_value(&self.config)
            .ok()
            .and_then(|v| v.get(key).map(|v| !v.is_null()))
            .unwrap_or(false);
        if set {
            Origin::File(self.file())
        } else {
            Origin::Default
        }
    }
}

pub(crate) async fn run(args: &ConfigArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let found = Found::locate(args)?;
    if args.check {
        match check(&found, !args.broker.is_empty()).await {
            Ok(summary) => {
                printed
                    .out
                    .push_str(&format!("{}: OK ({summary})\n", found.file()));
                Ok(0)
            }
            Err(line) => Err(anyhow::anyhow!(line).into()),
        }
    } else {
        printed.out.push_str(&show(&found, !args.broker.is_empty()));
        Ok(0)
    }
}

/// Every setting, one a line: `key = value  (origin)`.
fn show(found: &Found, brokers_flag: bool) -> String {
    let o = found.builder.options();
    let c = &found.config;
    let path = |p: &PathBuf| found.base.join(p).display().to_string();
    let seconds = |d: std::time::Duration| format!("{}s", d.as_secs_f64());
    let mut rows: Vec<(&str, String, Origin)> = Vec::new();
    let mut row = |key: &'static str, value: String| {
        let origin = found.origin(key);
        rows.push((key, value, origin));
    };
    row("brokers", brokers_shown(&o.brokers, ", "));
    row("collectives", o.collectives.join(", "));
    row("main_collective", o.main_collective.clone());
    row("caller", o.caller.clone());
    row("discovery_timeout", seconds(o.discovery_timeout));
    row(
        "discovery_window_ms",
        o.discovery_window.as_millis().to_string(),
    );
    row("discovery_end", o.discovery_end.name().to_string());
    row(
        "discovery_floor_ms",
        o.discovery_adaptive.floor.as_millis().to_string(),
    );
    row(
        "discovery_grace_ms",
        o.discovery_adaptive.grace.as_millis().to_string(),
    );
    row(
        "discovery_cache_dir",
        o.discovery_cache.as_ref().map_or_else(
            || "none (no cache)".to_string(),
            |c| c.dir().display().to_string(),
        ),
    );
    row(
        "discovery_cache_seconds",
        o.discovery_cache
            .as_ref()
            .map_or(0, |c| c.lifetime().as_secs())
            .to_string(),
    );
    row("timeout", seconds(o.timeout));
    row("ttl", format!("{}s", o.ttl));
    row("connect_timeout", seconds(o.connect_timeout));
    row(
        "ddl_dirs",
        if o.ddl_dirs.is_empty() {
            "none (built-in DDLs only)".to_string()
        } else {
            o.ddl_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    row("plugins_dir", o.plugins_dir.display().to_string());
    row(
        "key_file",
        c.key_file.as_ref().map(path).unwrap_or_default(),
    );
    row(
        "token_file",
        c.token_file.as_ref().map(path).unwrap_or_default(),
    );
    row(
        "issuer_keys",
        c.issuer_keys
            .iter()
            .flatten()
            .map(path)
            .collect::<Vec<_>>()
            .join(", "),
    );
    row(
        "clock_skew_seconds",
        c.clock_skew_seconds
            .map_or_else(|| "30 (the library's)".to_string(), |s| s.to_string()),
    );
    row("insecure", o.insecure.to_string());
    row("broker_auth", broker_auth(&o.broker_auth));
    row(
        "default_discovery_method",
        o.default_discovery_method.name().to_string(),
    );
    row(
        "external_discovery_command",
        o.external_discovery_command
            .as_ref()
            .map(|argv| shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_default())
            .unwrap_or_default(),
    );
    row(
        "registry_url",
        o.registry_url
            .as_deref()
            .map(redact_url)
            .unwrap_or_default(),
    );
    row("direct_queue", o.direct_queue.to_string());
    row(
        "direct_addressing_threshold",
        o.direct_threshold.to_string(),
    );
    if brokers_flag {
        rows[0].2 = Origin::Flag("--broker");
    }
    // The caller of a signing client is its token's name; without a file setting it, it
    // is user=$USER.
    if let Some(caller) = rows.iter_mut().find(|r| r.0 == "caller") {
        if c.token_file.is_some() {
            caller.1 = "the token's name (token_file)".to_string();
            caller.2 = Origin::File(found.file());
        } else if caller.2 == Origin::Default && std::env::var_os("USER").is_some() {
            caller.2 = Origin::Env("USER");
        }
    }
    let mut out = format!(
        "configuration file: {}  ({})\n",
        found
            .path
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.display().to_string()),
        found.path_origin
    );
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (key, value, origin) in rows {
        let value = if value.is_empty() { "-" } else { &value };
        out.push_str(&format!("{key:width$} = {value}  ({origin})\n"));
    }
    out
}

/// `[broker_auth]` as the settings it has, secrets redacted.
fn broker_auth(auth: &mco_keys::BrokerAuth) -> String {
    let file =
        |name: &str, p: &Option<PathBuf>| p.as_ref().map(|p| format!("{name}={}", p.display()));
    let secret = |name: &str, s: &Option<String>| s.as_ref().map(|_| format!("{name}={REDACTED}"));
    let parts: Vec<String> = [
        auth.tls.then(|| "tls".to_string()),
        file("tls_ca_file", &auth.tls_ca_file),
        file("tls_cert_file", &auth.tls_cert_file),
        file("tls_key_file", &auth.tls_key_file),
        auth.user.as_ref().map(|u| format!("user={u}")),
        secret("password", &auth.password),
        secret("token", &auth.token),
        file("creds_file", &auth.creds_file),
        file("nkey_seed_file", &auth.nkey_seed_file),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

/// The broker URLs as shown, redacted, joined with `separator`.
fn brokers_shown(brokers: &[String], separator: &str) -> String {
    brokers
        .iter()
        .map(|b| redact_url(b))
        .collect::<Vec<_>>()
        .join(separator)
}

/// A URL with the secret part of its user information replaced: `nats://u:p@h` →
/// `nats://u:[redacted]@h`; a user part alone is a NATS token (`nats://t0ken@h`), so it goes
/// too. Everything up to the last `@` is user information, whatever characters a password
/// holds.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((info, host)) => {
            let info = match info.split_once(':') {
                Some((user, _)) => format!("{user}:{REDACTED}"),
                None => REDACTED.to_string(),
            };
            format!("{scheme}{info}@{host}")
        }
        None => url.to_string(),
    }
}

/// Checks what connecting would use, short of connecting; `Err` is the one line to print.
async fn check(found: &Found, brokers_flag: bool) -> Result<String, String> {
    let file = found.file();
    let o = found.builder.options();
    let c = &found.config;
    let at = |key: &str, reason: String| format!("{file}: {key}: {reason}");
    let brokers_at = if brokers_flag {
        "--broker".to_string()
    } else {
        format!("{file}: brokers")
    };
    for (n, b) in o.brokers.iter().enumerate() {
        if let Err(e) = b.parse::<async_nats::ServerAddr>() {
            // The URL may hold a password: named by position, not shown.
            return Err(format!(
                "{brokers_at}: entry {} is not a NATS URL (nats://host:port): {e}",
                n + 1
            ));
        }
    }
    let collectives_key = if c.collectives.is_some() {
        "collectives"
    } else {
        "main_collective"
    };
    if let Some(bad) = o
        .collectives
        .iter()
        .find(|name| !mco_spec::subjects::is_valid_token(name))
    {
        return Err(at(
            collectives_key,
            format!("{bad:?} is not a valid collective name (letters, digits, - and _)"),
        ));
    }
    for dir in &o.ddl_dirs {
        if !dir.is_dir() {
            return Err(at(
                "ddl_dirs",
                format!("{}: no such directory", dir.display()),
            ));
        }
        let dirs = std::slice::from_ref(dir);
        for agent in mco_ddl::builtin::all_names(dirs) {
            if let Err(e) = mco_ddl::builtin::find(&agent, dirs) {
                return Err(at("ddl_dirs", format!("{}: {agent}: {e}", dir.display())));
            }
        }
    }
    mco_ddl::Plugins::load(&o.plugins_dir).map_err(|e| at("plugins_dir", e.to_string()))?;
    let abs = |p: &PathBuf| found.base.join(p);
    let signing = match (&c.key_file, &c.token_file) {
        (Some(key), Some(token)) => {
            let key =
                mco_keys::read_private_key(&abs(key)).map_err(|e| at("key_file", e.to_string()))?;
            let text =
                mco_keys::read_token(&abs(token)).map_err(|e| at("token_file", e.to_string()))?;
            let token = Token::parse(&text).map_err(|e| at("token_file", e.to_string()))?;
            if token.claims().role != TokenRole::Client {
                return Err(at(
                    "token_file",
                    format!(
                        "a {} token; requests need a client token",
                        token.claims().role
                    ),
                ));
            }
            if token.holder_key() != &key.verifying_key() {
                return Err(at(
                    "token_file",
                    "issued for another key than key_file".to_string(),
                ));
            }
            Some(token.claims().name.clone())
        }
        (Some(_), None) => return Err(at("token_file", "missing: key_file needs it".into())),
        (None, Some(_)) => return Err(at("key_file", "missing: token_file needs it".into())),
        (None, None) => None,
    };
    for issuer in c.issuer_keys.iter().flatten() {
        mco_keys::read_public_key(&abs(issuer)).map_err(|e| at("issuer_keys", e.to_string()))?;
    }
    if !o.insecure && (signing.is_none() || c.issuer_keys.is_none()) {
        return Err(at(
            if signing.is_none() { "key_file" } else { "issuer_keys" },
            "requests must be signed: set key_file, token_file and issuer_keys (see `mco keys`), or insecure = true".into(),
        ));
    }
    // The checks the connection itself makes of [broker_auth], without connecting.
    o.broker_auth
        .apply(async_nats::ConnectOptions::new())
        .await
        .map_err(|e| format!("{file}: {e}"))?;
    let security = match signing {
        Some(name) => format!("signing as {name}"),
        None => "insecure".to_string(),
    };
    Ok(format!(
        "brokers {}, collectives {}, {security}, {} agent DDLs",
        brokers_shown(&o.brokers, ","),
        o.collectives.join(","),
        mco_ddl::builtin::all_names(&o.ddl_dirs).len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets() {
        for (url, want) in [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            (
                "nats://mco:s3cret@127.0.0.1:4222",
                "nats://mco:[redacted]@127.0.0.1:4222",
            ),
            ("nats://t0ken@h:4222", "nats://[redacted]@h:4222"),
            (
                "tls://u:p@ss@w/rd@[::1]:4222",
                "tls://u:[redacted]@[::1]:4222",
            ),
            (
                "postgres://mco:pw@db/mco",
                "postgres://mco:[redacted]@db/mco",
            ),
            (
                "/var/lib/mco/registry.sqlite",
                "/var/lib/mco/registry.sqlite",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
