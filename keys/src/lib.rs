//! Key and token files on disk, shared by `mco` and `mcod`: private keys are written with
//! mode 0600, and every file that holds a secret (private keys, and the broker's creds file,
//! nkey seed and TLS client key) is refused when other users can read it
//! ([`check_secret_file`]); public keys and tokens are text.
//! The formats are `mco_spec::security`'s; this crate only adds the file handling and
//! randomness that `spec` deliberately does not do.
#![warn(missing_docs)]

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use mco_spec::security::{
    decode_private_key, decode_public_key, encode_private_key, encode_public_key,
};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Group or others may read or write a file that holds a secret.
    #[error("{path}: {what} is accessible by other users (mode {mode:04o}); run chmod 600 {path}")]
    InsecurePermissions {
        /// The file.
        path: String,
        /// What it holds ("private key", "nkey seed", ...).
        what: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a key.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{path}: already exists (refusing to overwrite a key)")]
    Exists {
        /// The file.
        path: String,
    },
    /// The system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A new random signing key.
pub fn generate_key() -> Result<SigningKey, KeyFileError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a private key with mode 0600, never overwriting an existing file.
pub fn write_private_key(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    write_secret(path, &encode_private_key(key))
}

/// Creates a NATS user nkey, writes its seed (`SU...`) to `path` with mode 0600, never
/// overwriting an existing file, and returns its public key (`U...`), which goes into the
/// broker's permissions (`mco broker config`). The seed is the `[broker_auth]
/// nkey_seed_file` of the node or client that connects with it.
pub fn write_nkey_seed(path: &Path) -> Result<String, KeyFileError> {
    let pair = nkeys::KeyPair::new_user();
    let seed = pair
        .seed()
        .map_err(|e| KeyFileError::Random(e.to_string()))?;
    write_secret(path, &format!("{seed}\n"))?;
    Ok(pair.public_key())
}

/// Writes `text` to a new file with mode 0600, never overwriting an existing file.
fn write_secret(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.display().to_string(),
                }
            } else {
                KeyFileError::Io {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
    file.write_all(text.as_bytes()).map_err(io(path))
}

/// Refuses a file holding a secret (`what`: "private key", "nkey seed", ...) that group or
/// others may read or write: the one permission rule for every secret file either binary
/// reads. Checked before the secret is read, so a leaked copy is never used. The owner is
/// not checked: whoever can replace the file owns the account that runs us anyway.
pub fn check_secret_file(path: &Path, what: &'static str) -> Result<(), KeyFileError> {
    let mode = std::fs::metadata(path)
        .map_err(io(path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::InsecurePermissions {
            path: path.display().to_string(),
            what,
            mode,
        });
    }
    Ok(())
}

/// Reads a private key, refusing one that group or others can access.
pub fn read_private_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    check_secret_file(path, "private key")?;
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    decode_private_key(&text).map_err(|e| KeyFileError::Malformed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes a public key (world-readable is fine).
pub fn write_public_key(path: &Path, key: &VerifyingKey) -> Result<(), KeyFileError> {
    std::fs::write(path, format!("{}\n", encode_public_key(key))).map_err(io(path))
}

/// Reads a public key.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    decode_public_key(&text).map_err(|e| KeyFileError::Malformed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_0600_and_refused_when_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer.key");
        let key = generate_key().unwrap();
        write_private_key(&path, &key).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_private_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(matches!(
            write_private_key(&path, &key),
            Err(KeyFileError::Exists { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private_key(&path).unwrap_err().to_string();
        assert!(
            err.contains("accessible by other users") && err.contains("chmod 600"),
            "{err}"
        );
        let public = dir.path().join("issuer.pub");
        write_public_key(&public, &key.verifying_key()).unwrap();
        assert_eq!(read_public_key(&public).unwrap(), key.verifying_key());
        assert_ne!(generate_key().unwrap().to_bytes(), key.to_bytes());
    }

    #[tokio::test]
    async fn broker_secret_files_get_the_private_key_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n",
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let cert = file("client.pem", 0o644);
        type Build = fn(std::path::PathBuf, std::path::PathBuf) -> BrokerAuth;
        let table: &[(&str, &str, Build)] = &[
            ("nkey seed", "user.nk", |secret, _| BrokerAuth {
                nkey_seed_file: Some(secret),
                ..BrokerAuth::default()
            }),
            ("NATS credentials file", "user.creds", |secret, _| {
                BrokerAuth {
                    creds_file: Some(secret),
                    ..BrokerAuth::default()
                }
            }),
            ("TLS private key", "client-key.pem", |secret, cert| {
                BrokerAuth {
                    tls_cert_file: Some(cert),
                    tls_key_file: Some(secret),
                    ..BrokerAuth::default()
                }
            }),
        ];
        for (what, name, build) in table {
            for mode in [0o644, 0o640, 0o604, 0o660] {
                let secret = file(name, mode);
                let auth = build(secret.clone(), cert.clone());
                let err = auth
                    .apply(async_nats::ConnectOptions::new())
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{what} with mode {mode:o} accepted"));
                let message = err.to_string();
                let want = format!(
                    "broker_auth: {path}: {what} is accessible by other users (mode {mode:04o}); run chmod 600 {path}",
                    path = secret.display()
                );
                assert_eq!(message, want);
            }
        }
        // The owner alone may read them: accepted (the creds file is parsed only when valid,
        // so it is left out here).
        for (what, name, build) in [&table[0], &table[2]] {
            let auth = build(file(name, 0o600), cert.clone());
            assert!(
                auth.apply(async_nats::ConnectOptions::new()).await.is_ok(),
                "{what}"
            );
        }
    }

    #[test]
    fn an_nkey_seed_is_0600_and_matches_the_public_key_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web1.nk");
        let public = write_nkey_seed(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let seed = std::fs::read_to_string(&path).unwrap();
        let pair = nkeys::KeyPair::from_seed(seed.trim()).unwrap();
        assert_eq!(pair.public_key(), public);
        assert!(public.starts_with('U'), "{public}");
        assert!(matches!(
            write_nkey_seed(&path),
            Err(KeyFileError::Exists { .. })
        ));
    }
}

/// Reads a token file (trimmed).
pub fn read_token(path: &Path) -> Result<String, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let token = text.trim().to_string();
    mco_spec::security::Token::parse(&token).map_err(|e| KeyFileError::Malformed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(token)
}

/// Reads a private key and its token: the credentials a client or node signs with.
pub fn read_credentials(
    key: &Path,
    token: &Path,
) -> Result<mco_spec::security::Credentials, KeyFileError> {
    Ok(mco_spec::security::Credentials {
        key: read_private_key(key)?,
        token: read_token(token)?,
    })
}

/// How to authenticate to the NATS broker, for both `mco` and `mcod`: TLS (a CA, and a client
/// certificate and key) and NATS credentials (user/password, token, a creds file, or an nkey
/// seed file). Written as a `[broker_auth]` table in either configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerAuth {
    /// Require TLS even without a CA or client certificate.
    #[serde(default)]
    pub tls: bool,
    /// CA certificate (PEM) that signed the broker's certificate.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM), with `tls_key_file`.
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// Client private key (PEM).
    pub tls_key_file: Option<std::path::PathBuf>,
    /// NATS user name, with `password`.
    pub user: Option<String>,
    /// NATS password.
    pub password: Option<String>,
    /// NATS authentication token.
    pub token: Option<String>,
    /// A NATS `.creds` file (JWT and nkey seed).
    pub creds_file: Option<std::path::PathBuf>,
    /// A file holding an nkey seed (`SU...`).
    pub nkey_seed_file: Option<std::path::PathBuf>,
}

/// Why broker authentication settings could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerAuthError {
    /// A file could not be read.
    #[error("broker_auth: {0}")]
    File(String),
    /// Settings that do not go together.
    #[error("broker_auth: {0}")]
    Invalid(String),
    /// A secret file (creds, nkey seed, TLS key) that other users can read, or cannot stat.
    // Not a `source`: the message already carries it, and error chains would print it twice.
    #[error("broker_auth: {0}")]
    Secret(KeyFileError),
}

impl BrokerAuth {
    /// The same settings with relative file paths taken from `base`.
    pub fn resolved(&self, base: &Path) -> BrokerAuth {
        let abs = |p: &Option<std::path::PathBuf>| {
            p.as_ref().map(|p| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    base.join(p)
                }
            })
        };
        BrokerAuth {
            tls_ca_file: abs(&self.tls_ca_file),
            tls_cert_file: abs(&self.tls_cert_file),
            tls_key_file: abs(&self.tls_key_file),
            creds_file: abs(&self.creds_file),
            nkey_seed_file: abs(&self.nkey_seed_file),
            ..self.clone()
        }
    }

    /// Applies the settings to NATS connection options.
    pub async fn apply(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, BrokerAuthError> {
        let methods = [
            self.user.is_some(),
            self.token.is_some(),
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(BrokerAuthError::Invalid(
                "use only one of user/password, token, creds_file, nkey_seed_file".into(),
            ));
        }
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone())
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(BrokerAuthError::Invalid(
                    "user and password go together".into(),
                ))
            }
            (None, None) => {}
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(creds) = &self.creds_file {
            check_secret_file(creds, "NATS credentials file").map_err(BrokerAuthError::Secret)?;
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| BrokerAuthError::File(format!("{}: {e}", creds.display())))?;
        }
        if let Some(seed) = &self.nkey_seed_file {
            check_secret_file(seed, "nkey seed").map_err(BrokerAuthError::Secret)?;
            let text = std::fs::read_to_string(seed)
                .map_err(|e| BrokerAuthError::File(format!("{}: {e}", seed.display())))?;
            options = options.nkey(text.trim().to_string());
        }
        if let Some(ca) = &self.tls_ca_file {
            if !ca.is_file() {
                return Err(BrokerAuthError::File(format!(
                    "{}: no such file",
                    ca.display()
                )));
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => {
                // The NATS client reads the key only when it connects; refuse it first.
                check_secret_file(key, "TLS private key").map_err(BrokerAuthError::Secret)?;
                options = options
                    .add_client_certificate(cert.clone(), key.clone())
                    .require_tls(true)
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(BrokerAuthError::Invalid(
                    "tls_cert_file and tls_key_file go together".into(),
                ))
            }
            (None, None) => {}
        }
        if self.tls {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}
