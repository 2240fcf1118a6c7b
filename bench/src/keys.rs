//! An issuer made in memory, and the client and server credentials it signs: what
//! `mco keys` writes to files, without the files, so a benchmark can give 10,000 simulated
//! identities their own keys and tokens in a fraction of a second. [`Issuer::write_node`]
//! writes the files a real `mcod` reads.

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use mco_spec::message::now_millis;
use mco_spec::security::{encode_public_key, Credentials, Token, TokenClaims, TokenRole};

/// How long the tokens made here are valid: a day is longer than any benchmark.
const VALIDITY_SECS: u64 = 24 * 3600;

/// An organisation's issuer key, in memory.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: SigningKey,
}

impl Issuer {
    /// A new random issuer.
    pub fn generate() -> Result<Issuer, mco_keys::KeyFileError> {
        Ok(Issuer {
            key: mco_keys::generate_key()?,
        })
    }

    /// The issuer in a private key file written by `mco keys issuer`.
    pub fn from_file(path: &Path) -> Result<Issuer, mco_keys::KeyFileError> {
        Ok(Issuer {
            key: mco_keys::read_private_key(path)?,
        })
    }

    /// The public key nodes and clients trust.
    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    fn issue(&self, role: TokenRole, name: &str, holder: &SigningKey) -> Credentials {
        let now = now_millis() / 1000;
        let claims = TokenClaims {
            role,
            name: name.to_string(),
            public_key: encode_public_key(&holder.verifying_key()),
            issuer: String::new(),
            // A little slack for clocks that differ between processes.
            not_before: now.saturating_sub(60),
            expires: now + VALIDITY_SECS,
            agents: vec![],
            collectives: vec![],
        };
        Credentials {
            key: holder.clone(),
            token: Token::issue(&claims, &self.key),
        }
    }

    /// A server token for `identity` held by `key`.
    pub fn server(&self, identity: &str, key: &SigningKey) -> Credentials {
        self.issue(TokenRole::Server, identity, key)
    }

    /// A client token for the caller `name` held by `key`.
    pub fn client(&self, name: &str, key: &SigningKey) -> Credentials {
        self.issue(TokenRole::Client, name, key)
    }

    /// Writes `issuer.pub` and, for `identity`, a new key and server token into `dir`, as
    /// `mco keys` would; returns (issuer.pub, key file, token file) for mcod's configuration.
    pub fn write_node(
        &self,
        dir: &Path,
        identity: &str,
    ) -> Result<(PathBuf, PathBuf, PathBuf), mco_keys::KeyFileError> {
        self.write_holder(dir, identity, TokenRole::Server)
    }

    /// Like [`Issuer::write_node`], for a client (caller `name`), for `mco`'s configuration.
    pub fn write_client(
        &self,
        dir: &Path,
        name: &str,
    ) -> Result<(PathBuf, PathBuf, PathBuf), mco_keys::KeyFileError> {
        self.write_holder(dir, name, TokenRole::Client)
    }

    fn write_holder(
        &self,
        dir: &Path,
        name: &str,
        role: TokenRole,
    ) -> Result<(PathBuf, PathBuf, PathBuf), mco_keys::KeyFileError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| mco_keys::KeyFileError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let public = dir.join("issuer.pub");
        mco_keys::write_public_key(&public, &self.public())?;
        let key = mco_keys::generate_key()?;
        let credentials = self.issue(role, name, &key);
        let key_path = dir.join(format!("{name}.key"));
        let token_path = dir.join(format!("{name}.token"));
        mco_keys::write_private_key(&key_path, &key)?;
        std::fs::write(&token_path, format!("{}\n", credentials.token)).map_err(io(&token_path))?;
        Ok((public, key_path, token_path))
    }
}

/// A key derived from the issuer, a purpose and a name: repeatable, and needing no entropy,
/// so 10,000 simulated identities get their own keys quickly. For simulations only.
pub fn derived_key(issuer: &Issuer, purpose: &str, name: &[u8]) -> SigningKey {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"mco-sim ");
    hasher.update(purpose.as_bytes());
    hasher.update(issuer.public().as_bytes());
    hasher.update(name);
    SigningKey::from_bytes(&hasher.finalize().into())
}
