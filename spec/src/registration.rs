//! Registration: what a node tells registry services about itself, every few minutes, on
//! `<collective>.broadcast.agent.registration` ([`crate::subjects::registration`]).
//!
//! A registration carries what a filter looks at (identity, facts, classes, agents) plus the
//! node's collectives and the time it was made, so a registry can answer every filter with
//! the same evaluator the nodes use. It travels in an envelope of the same shape as a reply,
//! signed by the node's key and carrying the node's (server) token, so a registry believes
//! only what a node said about itself.
//!
//! # Wire format
//!
//! ```json
//! {
//!   "protocol": "mco.registration.v1",
//!   "registration": {
//!     "identity": "web1.example.net",
//!     "collectives": ["mco", "uk"],
//!     "facts": {"country": "uk", "os": {"family": "debian"}},
//!     "classes": ["role::web"],
//!     "agents": ["rpcutil", "service"],
//!     "time": 1763856000123
//!   },
//!   "signature": null,
//!   "token": null
//! }
//! ```
//!
//! Not for: publishing (mcod does) or storing (the discovery crate's registry does).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::envelope::RegistrationEnvelope;
use crate::envelope::{Kind, RegistrationKind};
use crate::message::DecodeError;
use crate::subjects::{is_valid_identity, is_valid_token};

/// The `protocol` value of a registration envelope.
pub const REGISTRATION_PROTOCOL: &str = <RegistrationKind as Kind>::PROTOCOL;

/// What a node says about itself.
///
/// See the [module docs](self) for the wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The node's identity.
    pub identity: String,
    /// Every collective the node belongs to.
    pub collectives: Vec<String>,
    /// The node's facts (a JSON object, possibly nested).
    pub facts: Value,
    /// The node's classes.
    pub classes: Vec<String>,
    /// The agents the node serves (as `-A` sees them).
    pub agents: Vec<String>,
    /// When the registration was made, Unix milliseconds.
    pub time: u64,
}

impl Registration {
    /// Checks the fields a registry relies on; [`RegistrationEnvelope::body`] calls it.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let invalid = |field: &'static str, reason: String| DecodeError::Invalid { field, reason };
        if !is_valid_identity(&self.identity) {
            return Err(invalid(
                "identity",
                format!("{:?} is not a valid identity", self.identity),
            ));
        }
        if self.collectives.is_empty() {
            return Err(invalid("collectives", "must not be empty".into()));
        }
        if let Some(bad) = self.collectives.iter().find(|c| !is_valid_token(c)) {
            return Err(invalid(
                "collectives",
                format!("{bad:?} is not a valid collective name"),
            ));
        }
        if !self.facts.is_object() {
            return Err(invalid("facts", "must be a JSON object".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{
        Credentials, SecurityError, Token, TokenCache, TokenClaims, TokenRole, Trust,
    };
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    fn registration() -> Registration {
        Registration {
            identity: "web1".into(),
            collectives: vec!["mco".into(), "uk".into()],
            facts: json!({"country": "uk"}),
            classes: vec!["role::web".into()],
            agents: vec!["rpcutil".into()],
            time: 1_763_856_000_123,
        }
    }

    fn credentials(issuer: &SigningKey, role: TokenRole, name: &str) -> Credentials {
        let key = SigningKey::from_bytes(&[7; 32]);
        let claims = TokenClaims {
            role,
            name: name.into(),
            public_key: crate::security::encode_public_key(&key.verifying_key()),
            issuer: crate::security::encode_public_key(&issuer.verifying_key()),
            not_before: 0,
            expires: u64::MAX / 2,
            agents: vec![],
            collectives: vec![],
        };
        Credentials {
            key,
            token: Token::issue(&claims, issuer),
        }
    }

    #[test]
    fn a_signed_registration_round_trips_and_verifies() {
        let issuer = SigningKey::from_bytes(&[1; 32]);
        let trust = Trust {
            issuers: vec![issuer.verifying_key()],
            clock_skew_secs: 30,
        };
        let envelope = RegistrationEnvelope::signed(
            &registration(),
            &credentials(&issuer, TokenRole::Server, "web1"),
        )
        .unwrap();
        let encoded = envelope.to_bytes().unwrap();
        let decoded = RegistrationEnvelope::decode(&encoded).unwrap();
        assert_eq!(decoded.body().unwrap(), registration());
        let cache = TokenCache::default();
        let token = cache.verify(&decoded, &trust, 1_763_856_000).unwrap();
        assert_eq!(token.claims().name, "web1");

        // Tampering with the bytes breaks the signature; unsigned and client-signed
        // registrations are refused.
        let text = String::from_utf8(envelope.to_bytes().unwrap()).unwrap();
        let tampered = text.replace("\"uk\"}", "\"de\"}");
        let forged = RegistrationEnvelope::decode(tampered.as_bytes()).unwrap();
        assert!(cache.verify(&forged, &trust, 1_763_856_000).is_err());
        let unsigned = RegistrationEnvelope::unsigned(&registration()).unwrap();
        assert!(matches!(
            cache.verify(&unsigned, &trust, 1_763_856_000),
            Err(SecurityError::Unsigned)
        ));
        let by_client = RegistrationEnvelope::signed(
            &registration(),
            &credentials(&issuer, TokenRole::Client, "web1"),
        )
        .unwrap();
        assert!(cache.verify(&by_client, &trust, 1_763_856_000).is_err());
    }

    #[test]
    fn malformed_registrations_are_refused() {
        for bad in [
            &b"not json"[..],
            br#"{"protocol": "mco.reply.v1", "registration": {}}"#,
            br#"{"protocol": "mco.registration.v1"}"#,
        ] {
            assert!(RegistrationEnvelope::decode(bad).is_err());
        }
        type Spoil = fn(&mut Registration);
        let table: [(&str, Spoil); 4] = [
            ("identity", |r| r.identity = "a b".into()),
            ("collectives", |r| r.collectives.clear()),
            ("collectives", |r| r.collectives = vec!["a.b".into()]),
            ("facts", |r| r.facts = json!([1])),
        ];
        for (field, spoil) in table {
            let mut r = registration();
            spoil(&mut r);
            let envelope = RegistrationEnvelope::unsigned(&r).unwrap();
            let message = envelope.body().unwrap_err().to_string();
            assert!(message.contains(field), "{field}: {message}");
        }
        let huge = vec![b' '; crate::message::MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            RegistrationEnvelope::decode(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
