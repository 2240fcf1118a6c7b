//! The gateway's settings: the `[web]` table of the same `client.toml` the command line reads
//! (the command line ignores it), and `--listen` over it. Relative paths are taken from the
//! configuration file's directory, as the client's own keys are. Not the client's settings:
//! those are `mco_client::ClientBuilder::from_config`'s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the gateway listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A `[web]` table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read or parsed as a client configuration.
    #[error(transparent)]
    Client(#[from] mco_client::config::ClientConfigError),
    /// The `[web]` table has an unknown key or a wrong value.
    #[error("{path}: [web]: {reason}")]
    Invalid {
        /// The configuration file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The `[web]` table as written; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebTable {
    listen: Option<String>,
    callers_file: Option<PathBuf>,
    credentials_dir: Option<PathBuf>,
    allowed_origins: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_calls_per_caller: Option<usize>,
    max_timeout_seconds: Option<f64>,
    max_body_bytes: Option<usize>,
}

/// The gateway's settings with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSettings {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The bearer tokens file (token hashes → callers), if any; without it no one can call.
    pub callers_file: Option<PathBuf>,
    /// The directory of each caller's mco key and token (`<caller>.key`, `<caller>.token`).
    pub credentials_dir: Option<PathBuf>,
    /// Origins (`https://portal.example.com`) whose pages may call the API cross-origin.
    pub allowed_origins: Vec<String>,
    /// The TLS certificate chain and private key (PEM), when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Calls one caller may have in flight at once; more are answered 429.
    pub max_calls_per_caller: usize,
    /// The longest reply wait (and discovery) a caller may ask for.
    pub max_timeout: Duration,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            callers_file: None,
            credentials_dir: None,
            allowed_origins: Vec::new(),
            tls: None,
            max_calls_per_caller: 16,
            max_timeout: Duration::from_secs(600),
            max_body_bytes: 64 * 1024,
        }
    }
}

impl WebSettings {
    /// The `[web]` table of the configuration file at `path` (defaults when it has none).
    pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
        let config = mco_client::config::ClientConfig::load(path)?;
        let display = path.display().to_string();
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        WebSettings::from_table(config.web.unwrap_or_default(), &base, &display)
    }

    fn from_table(
        table: toml::Table,
        base: &Path,
        display: &str,
    ) -> Result<WebSettings, WebConfigError> {
        let invalid = |reason: String| WebConfigError::Invalid {
            path: display.to_string(),
            reason,
        };
        let table: WebTable = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
        let defaults = WebSettings::default();
        let within = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let listen = match table.listen {
            Some(text) => parse_listen(&text).map_err(invalid)?,
            None => defaults.listen,
        };
        let tls = match (table.tls_cert, table.tls_key) {
            (Some(cert), Some(key)) => Some((within(cert), within(key))),
            (None, None) => None,
            _ => return Err(invalid("tls_cert and tls_key go together".into())),
        };
        let max_timeout = match table.max_timeout_seconds {
            Some(s) if s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(invalid(format!(
                    "max_timeout_seconds {s} is not between 0 and 86400"
                )))
            }
            None => defaults.max_timeout,
        };
        let allowed_origins = table.allowed_origins.unwrap_or_default();
        if let Some(bad) = allowed_origins.iter().find(|o| !is_origin(o)) {
            return Err(invalid(format!(
                "allowed_origins: {bad:?} is not an origin (scheme://host[:port], no path)"
            )));
        }
        Ok(WebSettings {
            listen,
            callers_file: table.callers_file.map(within),
            credentials_dir: table.credentials_dir.map(within),
            allowed_origins,
            tls,
            max_calls_per_caller: table
                .max_calls_per_caller
                .unwrap_or(defaults.max_calls_per_caller)
                .max(1),
            max_timeout,
            max_body_bytes: table.max_body_bytes.unwrap_or(defaults.max_body_bytes),
        })
    }
}

/// `host:port` as a socket address, with a message that says what was expected.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("listen {text:?} is not an address:port such as {DEFAULT_LISTEN}"))
}

/// Whether `text` is an origin as browsers send it: `scheme://host[:port]`, nothing after.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' ', '@'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn defaults_listen_on_loopback_and_paths_are_taken_from_the_file() {
        let s = WebSettings::from_table(table(""), Path::new("/etc/mco"), "c").unwrap();
        assert_eq!(s, WebSettings::default());
        assert!(s.listen.ip().is_loopback());
        let s = WebSettings::from_table(
            table("callers_file = \"web-callers.toml\"\ncredentials_dir = \"/srv/keys\"\n"),
            Path::new("/etc/mco"),
            "c",
        )
        .unwrap();
        assert_eq!(
            s.callers_file,
            Some(PathBuf::from("/etc/mco/web-callers.toml"))
        );
        assert_eq!(s.credentials_dir, Some(PathBuf::from("/srv/keys")));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, want) in [
            ("lisen = \"x\"", "unknown field"),
            ("listen = \"8080\"", "is not an address:port"),
            ("tls_cert = \"c.pem\"", "go together"),
            ("max_timeout_seconds = -1.0", "not between 0 and 86400"),
            ("max_timeout_seconds = 1e300", "not between 0 and 86400"),
            (
                "allowed_origins = [\"https://x.example/app\"]",
                "is not an origin",
            ),
        ] {
            let e = WebSettings::from_table(table(text), Path::new("/"), "c.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with("c.toml: [web]: "), "{e}");
        }
    }
}
