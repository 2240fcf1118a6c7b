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

use crate::message::{
    Reply, ReplyEnvelope, Request, RequestEnvelope, REPLY_PROTOCOL, REQUEST_PROTOCOL,
};

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
    pub fn allows(&self, agent: &str, collective: &str) -> bool {
        (self.agents.is_empty() || self.agents.iter().any(|a| a == agent))
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
        let name = || self.claims.name.clone();
        let trusted = issuers.iter().any(|issuer| {
            issuer
                .verify(self.signed_part.as_bytes(), &self.signature)
                .is_ok()
        });
        if !trusted {
            return Err(SecurityError::UntrustedIssuer { name: name() });
        }
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

impl RequestEnvelope {
    /// Wraps a request signed with the caller's credentials.
    pub fn signed(request: &Request, credentials: &Credentials) -> Result<Self, serde_json::Error> {
        let request = serde_json::value::to_raw_value(request)?;
        let signature = sign(&credentials.key, request.get().as_bytes());
        Ok(RequestEnvelope {
            protocol: REQUEST_PROTOCOL.to_string(),
            request,
            signature: Some(signature),
            token: Some(credentials.token.clone()),
        })
    }

    /// Verifies the caller's token and the signature over the request bytes; returns the
    /// verified token. The request itself is parsed afterwards and checked with
    /// [`check_request_authority`].
    pub fn verify(&self, trust: &Trust, now_secs: u64) -> Result<Token, SecurityError> {
        verify_envelope(
            self.token.as_deref(),
            self.signature.as_deref(),
            self.request_bytes(),
            trust,
            TokenRole::Client,
            now_secs,
        )
    }
}

impl ReplyEnvelope {
    /// Wraps a reply signed with the node's credentials.
    pub fn signed(reply: &Reply, credentials: &Credentials) -> Result<Self, serde_json::Error> {
        let reply = serde_json::value::to_raw_value(reply)?;
        let signature = sign(&credentials.key, reply.get().as_bytes());
        Ok(ReplyEnvelope {
            protocol: REPLY_PROTOCOL.to_string(),
            reply,
            signature: Some(signature),
            token: Some(credentials.token.clone()),
        })
    }

    /// Verifies the node's token and the signature over the reply bytes; returns the token.
    /// Check afterwards that the reply's `sender` is the token's name.
    pub fn verify(&self, trust: &Trust, now_secs: u64) -> Result<Token, SecurityError> {
        verify_envelope(
            self.token.as_deref(),
            self.signature.as_deref(),
            self.reply_bytes(),
            trust,
            TokenRole::Server,
            now_secs,
        )
    }
}

pub(crate) fn verify_envelope(
    token: Option<&str>,
    signature: Option<&str>,
    bytes: &[u8],
    trust: &Trust,
    role: TokenRole,
    now_secs: u64,
) -> Result<Token, SecurityError> {
    let (Some(token), Some(signature)) = (token, signature) else {
        return Err(SecurityError::Unsigned);
    };
    let token = Token::parse(token)?;
    token.verify(&trust.issuers, role, now_secs, trust.clock_skew_secs)?;
    verify(token.holder_key(), bytes, signature)?;
    Ok(token)
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
    let signature = STANDARD
        .decode(signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or(SecurityError::BadSignature)?;
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
    use crate::message::{new_request_id, now_millis};
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

    fn request() -> Request {
        let id = new_request_id();
        Request {
            reply_to: subjects::reply("mco", "alice", &id),
            id,
            collective: "mco".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            data: Default::default(),
            filter: Filter::default(),
            caller: "alice".into(),
            sender: "admin1".into(),
            time: now_millis(),
            ttl: 60,
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
        let token = decoded.verify(&trust, now).unwrap();
        assert_eq!(
            check_request_authority(&token, &decoded.request().unwrap()),
            Ok(())
        );

        // Any change to the signed bytes breaks the signature.
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("\"ping\"", "\"pong\"");
        assert_ne!(tampered, text);
        let decoded = RequestEnvelope::decode(tampered.as_bytes()).unwrap();
        assert_eq!(
            decoded.verify(&trust, now).unwrap_err(),
            SecurityError::BadSignature
        );

        // A signature by another key fails; so does an unsigned envelope.
        let mallory = Credentials {
            key: key(9),
            token: credentials.token.clone(),
        };
        let forged = RequestEnvelope::signed(&request(), &mallory).unwrap();
        assert_eq!(
            forged.verify(&trust, now).unwrap_err(),
            SecurityError::BadSignature
        );
        let unsigned = RequestEnvelope::unsigned(&request()).unwrap();
        assert_eq!(
            unsigned.verify(&trust, now).unwrap_err(),
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
        assert_eq!(envelope.verify(&trust, 1500).unwrap().claims().name, "web1");
        // A client token cannot sign replies.
        let client = Credentials {
            key: key(3),
            token: Token::issue(&claims(TokenRole::Client, "web1", &key(3)), &issuer),
        };
        let envelope = ReplyEnvelope::signed(&reply, &client).unwrap();
        assert!(matches!(
            envelope.verify(&trust, 1500),
            Err(SecurityError::WrongRole { .. })
        ));
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
