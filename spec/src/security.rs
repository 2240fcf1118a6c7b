//! Keys, tokens and signatures: who may send what, provably.
//!
//! An organisation has an *issuer* key (ed25519). The issuer signs *tokens*: for a client, a
//! caller name, the caller's public key, a validity window and optional limits (agents,
//! collectives); for a server, its identity, public key and validity. A request carries its
//! caller's token and a signature by the caller's key over the exact request bytes; a reply
//! carries its node's token and a signature over the exact reply bytes. A receiver trusts a
//! message when the token was signed by a configured issuer, is valid now, and the message
//! signature verifies with the key inside the token.
//!
//! # Token format
//!
//! `mco1.<payload>.<signature>`, both parts unpadded base64url; the signature is the issuer's
//! ed25519 signature over the bytes `mco1.<payload>`. The payload is JSON:
//!
//! ```json
//! {"role": "client", "name": "alice", "public_key": "<base64url>", "issuer": "<base64url>",
//!  "not_before": 1763856000, "expires": 1795392000, "agents": ["rpcutil"], "collectives": []}
//! ```
//!
//! Empty `agents`/`collectives` lists mean no limit. Times are Unix seconds.
//!
//! This module does no I/O: reading key files and getting randomness for new keys is for the
//! binaries. It also holds no policy: action policies and replay memory live in the server.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, Kind, ReplyEnvelope};
use crate::message::{ReplyFields, Request};

/// The prefix of every token string; the version of the token format.
pub const TOKEN_PREFIX: &str = "mco1";

/// The prefix of a private key file's content.
pub const PRIVATE_KEY_PREFIX: &str = "mco-ed25519-private:";

/// The longest token accepted, in bytes; anything longer is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Why a key, token or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// A key could not be decoded.
    #[error("malformed key: {0}")]
    MalformedKey(String),
    /// A token could not be decoded.
    #[error("malformed token: {0}")]
    MalformedToken(String),
    /// The message carries no signature or no token.
    #[error("message is not signed")]
    Unsigned,
    /// The token was not signed by any trusted issuer.
    #[error("token of {name:?} is not signed by a trusted issuer")]
    UntrustedIssuer {
        /// The token's name.
        name: String,
    },
    /// The token's validity starts in the future.
    #[error("token of {name:?} is not valid before {not_before}")]
    NotYetValid {
        /// The token's name.
        name: String,
        /// When it becomes valid, Unix seconds.
        not_before: u64,
    },
    /// The token has expired.
    #[error("token of {name:?} expired at {expires}")]
    Expired {
        /// The token's name.
        name: String,
        /// When it expired, Unix seconds.
        expires: u64,
    },
    /// A client token was used by a server or the other way round.
    #[error("token of {name:?} is a {found} token, expected a {expected} token")]
    WrongRole {
        /// The token's name.
        name: String,
        /// The role required.
        expected: TokenRole,
        /// The role found.
        found: TokenRole,
    },
    /// The message signature does not verify with the token's key.
    #[error("signature does not verify")]
    BadSignature,
    /// The token does not allow what the message does.
    #[error("token of {name:?} does not allow {what}")]
    NotAllowed {
        /// The token's name.
        name: String,
        /// What it does not allow.
        what: String,
    },
}

/// Whether a token is for a client (a caller) or a server (a node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Signs requests.
    Client,
    /// Signs replies and registration.
    Server,
}

impl std::fmt::Display for TokenRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenRole::Client => "client",
            TokenRole::Server => "server",
        })
    }
}

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Client or server.
    pub role: TokenRole,
    /// The caller name (clients) or node identity (servers).
    pub name: String,
    /// The holder's public key, base64url.
    pub public_key: String,
    /// The issuer's public key, base64url.
    pub issuer: String,
    /// Valid from, Unix seconds.
    pub not_before: u64,
    /// Valid until, Unix seconds.
    pub expires: u64,
    /// Agents the holder may call; empty means all.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Collectives the holder may use; empty means all.
    #[serde(default)]
    pub collectives: Vec<String>,
}

impl TokenClaims {
    /// Whether the token's limits allow calling `agent` in `collective`.
    ///
    /// Discovery ([`crate::subjects::DISCOVERY_AGENT`]) is allowed to every client token
    /// whose collectives allow: a caller must be able to find the nodes it may act on, and a
    /// discovery ping tells it no more than a filtered broadcast of an agent it may call
    /// (whether a node matches a filter).
    pub fn allows(&self, agent: &str, collective: &str) -> bool {
        (self.agents.is_empty()
            || agent == crate::subjects::DISCOVERY_AGENT
            || self.agents.iter().any(|a| a == agent))
            && (self.collectives.is_empty() || self.collectives.iter().any(|c| c == collective))
    }
}

/// A parsed (not yet verified) token.
#[derive(Debug, Clone)]
pub struct Token {
    claims: TokenClaims,
    signed_part: String,
    signature: Signature,
    holder_key: VerifyingKey,
}

impl Token {
    /// Signs `claims` with the issuer key, returning the token string. `claims.issuer` is set
    /// to the issuer's public key.
    pub fn issue(claims: &TokenClaims, issuer: &SigningKey) -> String {
        let mut claims = claims.clone();
        claims.issuer = encode_public_key(&issuer.verifying_key());
        // Serialising a plain struct of strings and numbers cannot fail.
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let signed_part = format!("{TOKEN_PREFIX}.{}", URL_SAFE_NO_PAD.encode(payload));
        let signature = issuer.sign(signed_part.as_bytes());
        format!(
            "{signed_part}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// Decodes a token string without verifying it.
    pub fn parse(text: &str) -> Result<Token, SecurityError> {
        let malformed = |why: &str| SecurityError::MalformedToken(why.to_string());
        if text.len() > MAX_TOKEN_BYTES {
            return Err(malformed("too long"));
        }
        let (signed_part, signature) = text
            .rsplit_once('.')
            .ok_or_else(|| malformed("expected mco1.<payload>.<signature>"))?;
        let payload = signed_part
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|p| p.strip_prefix('.'))
            .ok_or_else(|| malformed("not an mco1 token"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| malformed("payload is not base64url"))?;
        let claims: TokenClaims = serde_json::from_slice(&payload)
            .map_err(|e| SecurityError::MalformedToken(format!("payload: {e}")))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| malformed("signature is not a base64url ed25519 signature"))?;
        let holder_key = decode_public_key(&claims.public_key)?;
        Ok(Token {
            claims,
            signed_part: signed_part.to_string(),
            signature,
            holder_key,
        })
    }

    /// What the token asserts (not trustworthy until [`Self::verify`] succeeded).
    pub fn claims(&self) -> &TokenClaims {
        &self.claims
    }

    /// The holder's public key.
    pub fn holder_key(&self) -> &VerifyingKey {
        &self.holder_key
    }

    /// Checks the issuer signature against `issuers`, the role, and the validity window at
    /// `now_secs` allowing `skew_secs` of clock difference either way.
    pub fn verify(
        &self,
        issuers: &[VerifyingKey],
        role: TokenRole,
        now_secs: u64,
        skew_secs: u64,
    ) -> Result<(), SecurityError> {
        let trusted = issuers.iter().any(|issuer| {
            issuer
                .verify(self.signed_part.as_bytes(), &self.signature)
                .is_ok()
        });
        if !trusted {
            return Err(SecurityError::UntrustedIssuer {
                name: self.claims.name.clone(),
            });
        }
        self.check_claims(role, now_secs, skew_secs)
    }

    /// The checks of [`Self::verify`] after the issuer signature: role and validity window.
    /// Cheap, so a token whose signature was verified before is checked again every time.
    pub fn check_claims(
        &self,
        role: TokenRole,
        now_secs: u64,
        skew_secs: u64,
    ) -> Result<(), SecurityError> {
        let name = || self.claims.name.clone();
        if self.claims.role != role {
            return Err(SecurityError::WrongRole {
                name: name(),
                expected: role,
                found: self.claims.role,
            });
        }
        if now_secs.saturating_add(skew_secs) < self.claims.not_before {
            return Err(SecurityError::NotYetValid {
                name: name(),
                not_before: self.claims.not_before,
            });
        }
        if now_secs.saturating_sub(skew_secs) > self.claims.expires {
            return Err(SecurityError::Expired {
                name: name(),
                expires: self.claims.expires,
            });
        }
        Ok(())
    }
}

/// What a receiver trusts: the issuer keys and how much clock difference it tolerates.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Public keys of the trusted issuers.
    pub issuers: Vec<VerifyingKey>,
    /// Tolerated clock difference, seconds.
    pub clock_skew_secs: u64,
}

/// A signing identity: a private key and the token the issuer made for it.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The private key.
    pub key: SigningKey,
    /// The token string.
    pub token: String,
}

impl ReplyEnvelope<'_> {
    /// The envelope of `fields` signed with the node's credentials, as bytes to publish
    /// (what [`Envelope::signed`] then [`Envelope::to_bytes`] make, in one buffer).
    pub fn encode_signed(
        fields: &ReplyFields<'_>,
        credentials: &Credentials,
    ) -> Result<Vec<u8>, serde_json::Error> {
        fields.encode_envelope(Some(&|bytes: &[u8]| {
            (sign(&credentials.key, bytes), credentials.token.as_str())
        }))
    }
}

/// Tokens whose issuer signature has been verified, by their text, so that a receiver
/// verifies one signature per message (the message's) instead of two: a node sees the same
/// caller token on every request, a client the same server tokens on every call.
///
/// Only the issuer signature is remembered; role and validity window are checked on every
/// use ([`Token::check_claims`]). The cache belongs to one [`Trust`]: give each receiver its
/// own. It is bounded: when full it is emptied (an attacker sending many valid tokens can
/// only cost the receiver the verification it would do without a cache).
#[derive(Debug)]
pub struct TokenCache {
    tokens: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Token>>>,
    capacity: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(16_384)
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            tokens: std::sync::Mutex::new(std::collections::HashMap::new()),
            capacity,
        }
    }

    fn get(&self, text: &str) -> Option<std::sync::Arc<Token>> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(text)
            .cloned()
    }

    fn insert(&self, text: &str, token: std::sync::Arc<Token>) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= self.capacity {
            tokens.clear();
        }
        tokens.insert(text.to_string(), token);
    }

    /// The token `text`, verified against `trust` for `role` at `now_secs`: its issuer
    /// signature is verified only the first time.
    pub fn verify_token(
        &self,
        text: &str,
        trust: &Trust,
        role: TokenRole,
        now_secs: u64,
    ) -> Result<std::sync::Arc<Token>, SecurityError> {
        if let Some(token) = self.get(text) {
            token.check_claims(role, now_secs, trust.clock_skew_secs)?;
            return Ok(token);
        }
        let token = Token::parse(text)?;
        token.verify(&trust.issuers, role, now_secs, trust.clock_skew_secs)?;
        let token = std::sync::Arc::new(token);
        self.insert(text, token.clone());
        Ok(token)
    }

    /// The one verification of an envelope of any kind: its token is trusted for the kind's
    /// signing role (issuer signature through the cache, role and validity window every time)
    /// and its signature over the exact message bytes verifies with the token's key. Returns
    /// the token; what the token may speak for is the caller's to check next
    /// ([`check_request_authority`], or the sender of a reply or registration).
    pub fn verify<K: Kind>(
        &self,
        envelope: &Envelope<K>,
        trust: &Trust,
        now_secs: u64,
    ) -> Result<std::sync::Arc<Token>, SecurityError> {
        let (Some(token), Some(signature)) =
            (envelope.token.as_deref(), envelope.signature.as_deref())
        else {
            return Err(SecurityError::Unsigned);
        };
        let token = self.verify_token(token, trust, K::SIGNER, now_secs)?;
        verify(token.holder_key(), envelope.body_bytes(), signature)?;
        Ok(token)
    }

    /// [`Self::verify`] for many envelopes at once (a client's replies): every signature
    /// still to check (each message's, and the issuer's on tokens not in the cache) goes into
    /// one ed25519 batch verification, which costs about 40% of checking them one by one.
    /// When the batch fails, each envelope is checked on its own, so one forgery cannot make
    /// good replies fail.
    ///
    /// Batch verification accepts exactly the signatures that verify under the cofactored
    /// equation; strict verification, used one by one, additionally refuses weak keys and
    /// non-canonical points. Those only let a key holder make a second valid signature for
    /// a message it signed (malleability), never sign for someone else, and replies are
    /// recognised by request id and sender, not by signature bytes. Weak holder keys are
    /// sent to the strict path all the same.
    pub fn verify_many<K: Kind>(
        &self,
        envelopes: &[&Envelope<K>],
        trust: &Trust,
        now_secs: u64,
    ) -> Vec<Result<std::sync::Arc<Token>, SecurityError>> {
        // A batch of one costs more than a plain verification (the batch equation adds
        // random scalars and a multi-scalar multiplication): a lone reply, the usual case of a
        // direct request, is checked on its own.
        if let [envelope] = envelopes {
            if envelope
                .token
                .as_deref()
                .is_some_and(|text| self.get(text).is_some())
            {
                return vec![self.verify(envelope, trust, now_secs)];
            }
        }
        // First each reply on its own (cheap checks), then every signature in one batch.
        struct Prepared {
            token: std::sync::Arc<Token>,
            signature: Signature,
            /// The issuer key to verify the token with, if it is not in the cache.
            new_token_issuer: Option<VerifyingKey>,
        }
        let prepared: Vec<Result<Prepared, SecurityError>> = envelopes
            .iter()
            .map(|envelope| {
                let (Some(text), Some(signature)) =
                    (envelope.token.as_deref(), envelope.signature.as_deref())
                else {
                    return Err(SecurityError::Unsigned);
                };
                let signature = decode_signature(signature)?;
                let (token, new_token_issuer) = match self.get(text) {
                    Some(token) => (token, None),
                    None => {
                        let token = Token::parse(text)?;
                        let issuer = trust
                            .issuers
                            .iter()
                            .find(|k| encode_public_key(k) == token.claims.issuer)
                            .copied()
                            .ok_or_else(|| SecurityError::UntrustedIssuer {
                                name: token.claims.name.clone(),
                            })?;
                        (std::sync::Arc::new(token), Some(issuer))
                    }
                };
                token.check_claims(K::SIGNER, now_secs, trust.clock_skew_secs)?;
                if token.holder_key.is_weak() {
                    return Err(SecurityError::BadSignature);
                }
                Ok(Prepared {
                    token,
                    signature,
                    new_token_issuer,
                })
            })
            .collect();
        let mut messages: Vec<&[u8]> = Vec::with_capacity(envelopes.len() * 2);
        let mut signatures: Vec<Signature> = Vec::with_capacity(envelopes.len() * 2);
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(envelopes.len() * 2);
        for (envelope, p) in envelopes.iter().zip(&prepared) {
            let Ok(p) = p else { continue };
            if let Some(issuer) = p.new_token_issuer {
                messages.push(p.token.signed_part.as_bytes());
                signatures.push(p.token.signature);
                keys.push(issuer);
            }
            messages.push(envelope.body_bytes());
            signatures.push(p.signature);
            keys.push(p.token.holder_key);
        }
        if !messages.is_empty()
            && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_err()
        {
            return envelopes
                .iter()
                .map(|e| self.verify(e, trust, now_secs))
                .collect();
        }
        envelopes
            .iter()
            .zip(prepared)
            .map(|(envelope, p)| {
                let p = p?;
                if p.new_token_issuer.is_some() {
                    if let Some(text) = envelope.token.as_deref() {
                        self.insert(text, p.token.clone());
                    }
                }
                Ok(p.token)
            })
            .collect()
    }
}

fn decode_signature(signature: &str) -> Result<Signature, SecurityError> {
    STANDARD
        .decode(signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or(SecurityError::BadSignature)
}

/// Checks that a verified client token speaks for `request`: the request's caller is the
/// token's name, and the token's limits allow the agent and collective.
pub fn check_request_authority(token: &Token, request: &Request) -> Result<(), SecurityError> {
    let claims = token.claims();
    if request.caller != claims.name {
        return Err(SecurityError::NotAllowed {
            name: claims.name.clone(),
            what: format!("calling as {:?}", request.caller),
        });
    }
    if !claims.allows(&request.agent, &request.collective) {
        return Err(SecurityError::NotAllowed {
            name: claims.name.clone(),
            what: format!(
                "agent {} in collective {}",
                request.agent, request.collective
            ),
        });
    }
    Ok(())
}

/// Signs `bytes`; the signature as standard base64.
pub fn sign(key: &SigningKey, bytes: &[u8]) -> String {
    STANDARD.encode(key.sign(bytes).to_bytes())
}

/// Verifies a standard-base64 signature over `bytes`.
pub fn verify(key: &VerifyingKey, bytes: &[u8], signature: &str) -> Result<(), SecurityError> {
    let signature = decode_signature(signature)?;
    key.verify_strict(bytes, &signature)
        .map_err(|_| SecurityError::BadSignature)
}

/// A public key as unpadded base64url.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Decodes a public key written by [`encode_public_key`].
pub fn decode_public_key(text: &str) -> Result<VerifyingKey, SecurityError> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SecurityError::MalformedKey("expected 32 bytes of base64url".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| SecurityError::MalformedKey(e.to_string()))
}

/// A private key as the text of a key file: [`PRIVATE_KEY_PREFIX`] and base64url of the seed.
pub fn encode_private_key(key: &SigningKey) -> String {
    format!(
        "{PRIVATE_KEY_PREFIX}{}\n",
        URL_SAFE_NO_PAD.encode(key.to_bytes())
    )
}

/// Decodes the text of a key file written by [`encode_private_key`].
pub fn decode_private_key(text: &str) -> Result<SigningKey, SecurityError> {
    let seed: [u8; 32] = text
        .trim()
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            SecurityError::MalformedKey(format!("expected {PRIVATE_KEY_PREFIX}<base64url seed>"))
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::RequestEnvelope;
    use crate::message::{new_request_id, now_millis, Reply};
    use crate::{subjects, Filter, StatusCode};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn claims(role: TokenRole, name: &str, holder: &SigningKey) -> TokenClaims {
        TokenClaims {
            role,
            name: name.into(),
            public_key: encode_public_key(&holder.verifying_key()),
            issuer: String::new(),
            not_before: 1000,
            expires: 2000,
            agents: vec![],
            collectives: vec![],
        }
    }

    fn request() -> Request<'static> {
        let id = new_request_id();
        Request {
            reply_to: subjects::reply("mco", "alice", &id).into(),
            id: id.into(),
            collective: "mco".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            data: Default::default(),
            filter: Filter::default(),
            caller: "alice".into(),
            sender: "admin1".into(),
            time: now_millis(),
            ttl: 60,
            targets: None,
        }
    }

    #[test]
    fn tokens_verify_only_with_their_issuer_role_and_window() {
        let issuer = key(1);
        let other_issuer = key(2);
        let alice = key(3);
        let token = Token::parse(&Token::issue(
            &claims(TokenRole::Client, "alice", &alice),
            &issuer,
        ))
        .unwrap();
        let trusted = [issuer.verifying_key()];
        assert_eq!(token.verify(&trusted, TokenRole::Client, 1500, 0), Ok(()));
        assert!(matches!(
            token.verify(&[other_issuer.verifying_key()], TokenRole::Client, 1500, 0),
            Err(SecurityError::UntrustedIssuer { .. })
        ));
        assert!(matches!(
            token.verify(&trusted, TokenRole::Server, 1500, 0),
            Err(SecurityError::WrongRole { .. })
        ));
        assert!(matches!(
            token.verify(&trusted, TokenRole::Client, 999, 0),
            Err(SecurityError::NotYetValid { .. })
        ));
        assert_eq!(token.verify(&trusted, TokenRole::Client, 999, 5), Ok(()));
        assert!(matches!(
            token.verify(&trusted, TokenRole::Client, 2001, 0),
            Err(SecurityError::Expired { .. })
        ));
        assert_eq!(
            token.claims().issuer,
            encode_public_key(&issuer.verifying_key())
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let issuer = key(1);
        let text = Token::issue(&claims(TokenRole::Client, "alice", &key(3)), &issuer);
        let (signed, signature) = text.rsplit_once('.').unwrap();
        let payload = signed.strip_prefix("mco1.").unwrap();
        let mut claims: TokenClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims.name = "root".into();
        let forged = format!(
            "mco1.{}.{signature}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let token = Token::parse(&forged).unwrap();
        assert!(matches!(
            token.verify(&[issuer.verifying_key()], TokenRole::Client, 1500, 0),
            Err(SecurityError::UntrustedIssuer { .. })
        ));
        for bad in [
            "",
            "mco1",
            "mco1.x.y",
            "jwt.a.b",
            &"a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_reply_encoded_in_one_buffer_is_the_signed_envelope_byte_for_byte() {
        let node = key(4);
        let credentials = Credentials {
            key: node.clone(),
            token: Token::issue(&claims(TokenRole::Server, "web1", &node), &key(1)),
        };
        let reply = Reply {
            request_id: "abc".into(),
            sender: "web1".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 5,
            statuscode: StatusCode::Ok,
            statusmsg: "OK".into(),
            data: serde_json::json!({"pong": 5}),
        };
        let expected = ReplyEnvelope::signed(&reply, &credentials)
            .unwrap()
            .to_bytes()
            .unwrap();
        let encoded = ReplyEnvelope::encode_signed(&reply.fields(), &credentials).unwrap();
        assert_eq!(
            String::from_utf8(encoded).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn signed_requests_verify_and_tampering_is_detected() {
        let issuer = key(1);
        let alice = key(3);
        let mut c = claims(TokenRole::Client, "alice", &alice);
        c.not_before = 0;
        c.expires = u64::MAX;
        let credentials = Credentials {
            key: alice.clone(),
            token: Token::issue(&c, &issuer),
        };
        let trust = Trust {
            issuers: vec![issuer.verifying_key()],
            clock_skew_secs: 0,
        };
        let now = now_millis() / 1000;
        let envelope = RequestEnvelope::signed(&request(), &credentials).unwrap();
        let bytes = envelope.to_bytes().unwrap();
        let decoded = RequestEnvelope::decode(&bytes).unwrap();
        let cache = TokenCache::default();
        let token = cache.verify(&decoded, &trust, now).unwrap();
        assert_eq!(
            check_request_authority(&token, &decoded.body().unwrap()),
            Ok(())
        );

        // Any change to the signed bytes breaks the signature.
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("\"ping\"", "\"pong\"");
        assert_ne!(tampered, text);
        let decoded = RequestEnvelope::decode(tampered.as_bytes()).unwrap();
        assert_eq!(
            cache.verify(&decoded, &trust, now).unwrap_err(),
            SecurityError::BadSignature
        );

        // A signature by another key fails; so does an unsigned envelope.
        let mallory = Credentials {
            key: key(9),
            token: credentials.token.clone(),
        };
        let forged = RequestEnvelope::signed(&request(), &mallory).unwrap();
        assert_eq!(
            cache.verify(&forged, &trust, now).unwrap_err(),
            SecurityError::BadSignature
        );
        let unsigned = RequestEnvelope::unsigned(&request()).unwrap();
        assert_eq!(
            cache.verify(&unsigned, &trust, now).unwrap_err(),
            SecurityError::Unsigned
        );

        // The caller must be the token's name, and the token's limits apply.
        let mut impostor = request();
        impostor.caller = "root".into();
        assert!(check_request_authority(&token, &impostor).is_err());
        let mut limited = c.clone();
        limited.agents = vec!["service".into()];
        let limited = Token::parse(&Token::issue(&limited, &issuer)).unwrap();
        assert!(matches!(
            check_request_authority(&limited, &request()),
            Err(SecurityError::NotAllowed { .. })
        ));
        // Discovery is open to every client token: it is how a limited caller finds nodes.
        let mut discovery = request();
        discovery.agent = subjects::DISCOVERY_AGENT.into();
        assert_eq!(check_request_authority(&limited, &discovery), Ok(()));
        discovery.collective = "other".into();
        let mut one_collective = c.clone();
        one_collective.agents = vec!["service".into()];
        one_collective.collectives = vec!["mco".into()];
        let one_collective = Token::parse(&Token::issue(&one_collective, &issuer)).unwrap();
        assert!(check_request_authority(&one_collective, &discovery).is_err());
    }

    #[test]
    fn signed_replies_verify() {
        let issuer = key(1);
        let node = key(4);
        let mut c = claims(TokenRole::Server, "web1", &node);
        c.expires = u64::MAX;
        let credentials = Credentials {
            key: node,
            token: Token::issue(&c, &issuer),
        };
        let reply = Reply {
            request_id: "x".into(),
            sender: "web1".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 1,
            statuscode: StatusCode::Ok,
            statusmsg: "OK".into(),
            data: serde_json::json!({}),
        };
        let envelope = ReplyEnvelope::signed(&reply, &credentials).unwrap();
        let trust = Trust {
            issuers: vec![issuer.verifying_key()],
            clock_skew_secs: 0,
        };
        let cache = TokenCache::default();
        assert_eq!(
            cache.verify(&envelope, &trust, 1500).unwrap().claims().name,
            "web1"
        );
        // A client token cannot sign replies.
        let client = Credentials {
            key: key(3),
            token: Token::issue(&claims(TokenRole::Client, "web1", &key(3)), &issuer),
        };
        let envelope = ReplyEnvelope::signed(&reply, &client).unwrap();
        assert!(matches!(
            cache.verify(&envelope, &trust, 1500),
            Err(SecurityError::WrongRole { .. })
        ));
    }

    fn signed_reply(
        sender: &str,
        node: &SigningKey,
        issuer: &SigningKey,
    ) -> ReplyEnvelope<'static> {
        let mut c = claims(TokenRole::Server, sender, node);
        c.expires = u64::MAX;
        let credentials = Credentials {
            key: node.clone(),
            token: Token::issue(&c, issuer),
        };
        let reply = Reply {
            request_id: "x".into(),
            sender: sender.into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 1,
            statuscode: StatusCode::Ok,
            statusmsg: "OK".into(),
            data: serde_json::json!({}),
        };
        ReplyEnvelope::signed(&reply, &credentials).unwrap()
    }

    #[test]
    fn cached_tokens_are_still_checked_for_role_and_time() {
        let issuer = key(1);
        let trust = Trust {
            issuers: vec![issuer.verifying_key()],
            clock_skew_secs: 0,
        };
        let text = Token::issue(&claims(TokenRole::Client, "alice", &key(3)), &issuer);
        let cache = TokenCache::new(4);
        assert!(cache
            .verify_token(&text, &trust, TokenRole::Client, 1500)
            .is_ok());
        assert!(cache.get(&text).is_some());
        assert!(matches!(
            cache.verify_token(&text, &trust, TokenRole::Client, 2001),
            Err(SecurityError::Expired { .. })
        ));
        assert!(matches!(
            cache.verify_token(&text, &trust, TokenRole::Server, 1500),
            Err(SecurityError::WrongRole { .. })
        ));
        let other = Trust {
            issuers: vec![key(2).verifying_key()],
            clock_skew_secs: 0,
        };
        let fresh = TokenCache::new(4);
        assert!(matches!(
            fresh.verify_token(&text, &other, TokenRole::Client, 1500),
            Err(SecurityError::UntrustedIssuer { .. })
        ));
        assert!(fresh.get(&text).is_none(), "refused tokens are not cached");
    }

    #[test]
    fn batches_of_replies_verify_and_single_out_forgeries() {
        let issuer = key(1);
        let trust = Trust {
            issuers: vec![issuer.verifying_key()],
            clock_skew_secs: 0,
        };
        let good: Vec<ReplyEnvelope> = (0..5u8)
            .map(|i| signed_reply(&format!("n{i}"), &key(20 + i), &issuer))
            .collect();
        let mut forged = signed_reply("n9", &key(29), &issuer);
        forged.signature = good[0].signature.clone();
        let mut unsigned = signed_reply("n8", &key(28), &issuer);
        unsigned.signature = None;
        let by_client = {
            let client = key(3);
            let credentials = Credentials {
                key: client.clone(),
                token: Token::issue(&claims(TokenRole::Client, "n7", &client), &issuer),
            };
            let reply: Reply = serde_json::from_str(good[0].body.get()).unwrap();
            ReplyEnvelope::signed(&reply, &credentials).unwrap()
        };
        let untrusted = signed_reply("n6", &key(26), &key(2));
        let cache = TokenCache::default();
        for round in 0..2 {
            let mut all: Vec<&ReplyEnvelope> = good.iter().collect();
            all.extend([&forged, &unsigned, &by_client, &untrusted]);
            let results = cache.verify_many(&all, &trust, 1500);
            for (i, r) in results[..5].iter().enumerate() {
                assert_eq!(
                    r.as_ref().unwrap().claims().name,
                    format!("n{i}"),
                    "round {round}"
                );
            }
            assert_eq!(
                results[5].as_ref().unwrap_err(),
                &SecurityError::BadSignature
            );
            assert_eq!(results[6].as_ref().unwrap_err(), &SecurityError::Unsigned);
            assert!(matches!(results[7], Err(SecurityError::WrongRole { .. })));
            assert!(matches!(
                results[8],
                Err(SecurityError::UntrustedIssuer { .. })
            ));
            // Without the bad ones the batch passes as a whole.
            let results = cache.verify_many(&good.iter().collect::<Vec<_>>(), &trust, 1500);
            assert!(results.iter().all(Result::is_ok));
        }
        assert!(matches!(
            cache.verify_many(&[&good[0]], &trust, 500)[0],
            Err(SecurityError::NotYetValid { .. })
        ));
        // A lone reply whose token is cached takes the one-by-one path: still checked.
        assert!(cache.verify_many(&[&good[1]], &trust, 1500)[0].is_ok());
        let mut lone_forgery = signed_reply("n1", &key(21), &issuer);
        lone_forgery.signature = good[2].signature.clone();
        assert_eq!(
            cache.verify_many(&[&lone_forgery], &trust, 1500)[0]
                .as_ref()
                .unwrap_err(),
            &SecurityError::BadSignature
        );
    }

    #[test]
    fn keys_round_trip_through_text() {
        let k = key(7);
        let decoded = decode_private_key(&encode_private_key(&k)).unwrap();
        assert_eq!(decoded.to_bytes(), k.to_bytes());
        let public = decode_public_key(&encode_public_key(&k.verifying_key())).unwrap();
        assert_eq!(public, k.verifying_key());
        assert!(decode_private_key("nope").is_err());
        assert!(decode_public_key("AAAA").is_err());
    }
}
