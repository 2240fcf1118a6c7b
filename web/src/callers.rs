//! Who is calling: bearer tokens mapped to callers, and each caller's own mco client, signed
//! with that caller's key and token so nodes' policies and audit logs see the person. The
//! tokens file holds only SHA-256 hashes of the tokens, so reading it does not let anyone
//! call. Not authorization of actions: that is the nodes' policies, decided on the caller
//! the signature proves.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use mco_client::{Client, ClientBuilder, ConnectError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// Why the callers file cannot be used, or a token not added.
#[derive(Debug, thiserror::Error)]
pub enum CallersError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The tokens file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a tokens file.
    #[error("{path}: {reason}")]
    Invalid {
        /// The tokens file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The tokens file as written: `[[token]]` tables.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// The caller the token speaks for; also the name of its credential files.
    caller: String,
    /// Hex SHA-256 of the token.
    sha256: String,
}

/// The callers file, read: token hash → caller.
#[derive(Debug, Clone, Default)]
pub struct Callers {
    by_hash: HashMap<[u8; 32], String>,
}

/// Whether `name` can be a caller: what a token name may be, and a safe file name.
pub fn is_valid_caller(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        && !name.starts_with('.')
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Callers {
    /// Reads the tokens file at `path`.
    pub fn load(path: &Path) -> Result<Callers, CallersError> {
        let file = read_file(path)?;
        let display = path.display().to_string();
        let mut by_hash = HashMap::new();
        for entry in file.token {
            let invalid = |reason: String| CallersError::Invalid {
                path: display.clone(),
                reason,
            };
            if !is_valid_caller(&entry.caller) {
                return Err(invalid(format!(
                    "{:?} is not a valid caller name",
                    entry.caller
                )));
            }
            let digest: [u8; 32] = hex::decode(&entry.sha256)
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "the token of {} is not a hex SHA-256 (64 hex digits)",
                        entry.caller
                    ))
                })?;
            by_hash.insert(digest, entry.caller);
        }
        Ok(Callers { by_hash })
    }

    /// The caller a bearer token speaks for, if any.
    pub fn caller(&self, token: &str) -> Option<&str> {
        // A lookup by the token's hash: comparing hashes leaks nothing useful about a token.
        self.by_hash.get(&hash(token)).map(String::as_str)
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

fn read_file(path: &Path) -> Result<TokensFile, CallersError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CallersError::Io {
        path: display.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| CallersError::Invalid {
        path: display,
        reason: e.message().to_string(),
    })
}

/// Makes a new random token for `caller`, adds its hash to the tokens file at `path`
/// (created 0600 if missing) and returns the token, which is shown once and stored nowhere.
pub fn add_token(path: &Path, caller: &str) -> Result<String, CallersError> {
    let display = path.display().to_string();
    if !is_valid_caller(caller) {
        return Err(CallersError::Invalid {
            path: display,
            reason: format!("{caller:?} is not a valid caller name (letters, digits, - _ . @)"),
        });
    }
    let mut file = if path.exists() {
        read_file(path)?
    } else {
        TokensFile::default()
    };
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| CallersError::Io {
        path: display.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let token = format!(
        "mcow_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    file.token.push(TokenEntry {
        caller: caller.to_string(),
        sha256: hex::encode(hash(&token)),
    });
    let text = toml::to_string(&file).map_err(|e| CallersError::Invalid {
        path: display.clone(),
        reason: e.to_string(),
    })?;
    let io = |source| CallersError::Io {
        path: display.clone(),
        source,
    };
    let header = "# mco-web bearer tokens: the SHA-256 of each token and the caller it speaks for.\n# Add one with `mco-web token add NAME`; delete a [[token]] table to revoke it.\n\n";
    let tmp = path.with_extension("tmp");
    {
        let mut out = open_private(&tmp).map_err(io)?;
        out.write_all(header.as_bytes()).map_err(io)?;
        out.write_all(text.as_bytes()).map_err(io)?;
        out.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(token)
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// A caller's mco client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CallerClientError {
    /// No key and token for this caller in the credentials directory.
    #[error("no mco credentials for caller {caller}: expected {key} and {token}")]
    NoCredentials {
        /// The caller.
        caller: String,
        /// The key file looked for.
        key: String,
        /// The token file looked for.
        token: String,
    },
    /// Connecting failed (broker down, bad key, wrong token).
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// Each caller's client, connected on first use and kept; and each caller's share of calls.
pub struct CallerClients {
    base: ClientBuilder,
    credentials_dir: Option<PathBuf>,
    clients: Mutex<HashMap<String, Client>>,
    shares: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    max_calls_per_caller: usize,
}

impl CallerClients {
    /// Clients built from `base` (the configuration's settings) with each caller's
    /// credentials from `credentials_dir`; without a directory, every caller uses `base`'s
    /// own credentials (one identity for all: for a single-user gateway on loopback).
    pub fn new(
        base: ClientBuilder,
        credentials_dir: Option<PathBuf>,
        max_calls_per_caller: usize,
    ) -> CallerClients {
        CallerClients {
            base,
            credentials_dir,
            clients: Mutex::new(HashMap::new()),
            shares: std::sync::Mutex::new(HashMap::new()),
            max_calls_per_caller,
        }
    }

    /// The client that signs `caller`'s requests.
    pub async fn client(&self, caller: &str) -> Result<Client, CallerClientError> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(caller) {
            return Ok(client.clone());
        }
        let mut builder = self.base.clone();
        if let Some(dir) = &self.credentials_dir {
            let key = dir.join(format!("{caller}.key"));
            let token = dir.join(format!("{caller}.token"));
            if !key.is_file() || !token.is_file() {
                return Err(CallerClientError::NoCredentials {
                    caller: caller.to_string(),
                    key: key.display().to_string(),
                    token: token.display().to_string(),
                });
            }
            builder = builder.key_file(key).token_file(token);
        }
        let client = builder.connect().await?;
        clients.insert(caller.to_string(), client.clone());
        Ok(client)
    }

    /// A place in `caller`'s share of concurrent calls, or `None` when it is used up.
    pub fn admit(&self, caller: &str) -> Option<OwnedSemaphorePermit> {
        let share = {
            let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
            shares
                .entry(caller.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.max_calls_per_caller)))
                .clone()
        };
        share.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_token_speaks_for_its_caller_and_the_file_holds_only_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callers.toml");
        let alice = add_token(&path, "alice").unwrap();
        let bob = add_token(&path, "bob").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&alice) && !text.contains(&bob), "{text}");
        let callers = Callers::load(&path).unwrap();
        assert_eq!(callers.caller(&alice), Some("alice"));
        assert_eq!(callers.caller(&bob), Some("bob"));
        assert_eq!(callers.caller("mcow_guess"), None);
        assert_eq!(callers.caller(""), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        assert!(add_token(&path, "../etc/passwd").is_err());
    }

    #[test]
    fn a_bad_tokens_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callers.toml");
        for (text, want) in [
            (
                "[[token]]\ncaller = \"a\"\nsha256 = \"zz\"\n",
                "not a hex SHA-256",
            ),
            (
                "[[token]]\ncaller = \"a/b\"\nsha256 = \"00\"\n",
                "not a valid caller",
            ),
            ("[[tokens]]\n", "unknown field"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = Callers::load(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
