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
use serde_json::value::RawValue;
use serde_json::Value;

use crate::message::DecodeError;
use crate::security::{sign, verify_envelope, Credentials, SecurityError, Token, TokenRole, Trust};
use crate::subjects::{is_valid_identity, is_valid_token};

/// The `protocol` value of a registration envelope.
pub const REGISTRATION_PROTOCOL: &str = "mco.registration.v1";

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
    /// Checks the fields a registry relies on; [`RegistrationEnvelope::registration`] calls it.
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

/// The envelope a registration travels in; the same shape as a reply envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationEnvelope {
    /// Always [`REGISTRATION_PROTOCOL`].
    pub protocol: String,
    /// The registration, exactly as the node serialised it. Signatures cover these bytes.
    pub registration: Box<RawValue>,
    /// Base64 signature over `registration` by the node's key; `null` when unsigned.
    #[serde(default)]
    pub signature: Option<String>,
    /// The node's token; `null` when unsigned.
    #[serde(default)]
    pub token: Option<String>,
}

impl RegistrationEnvelope {
    /// Wraps a registration without signature or token (insecure fleets).
    pub fn unsigned(registration: &Registration) -> Result<Self, serde_json::Error> {
        Ok(RegistrationEnvelope {
            protocol: REGISTRATION_PROTOCOL.to_string(),
            registration: serde_json::value::to_raw_value(registration)?,
            signature: None,
            token: None,
        })
    }

    /// Wraps a registration signed with the node's credentials, exactly as replies are.
    pub fn signed(
        registration: &Registration,
        credentials: &Credentials,
    ) -> Result<Self, serde_json::Error> {
        let registration = serde_json::value::to_raw_value(registration)?;
        let signature = sign(&credentials.key, registration.get().as_bytes());
        Ok(RegistrationEnvelope {
            protocol: REGISTRATION_PROTOCOL.to_string(),
            registration,
            signature: Some(signature),
            token: Some(credentials.token.clone()),
        })
    }

    /// Parses an envelope from bytes, refusing oversized input and unknown protocols.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        crate::message::check_size(bytes)?;
        let envelope: RegistrationEnvelope = serde_json::from_slice(bytes)?;
        crate::message::check_protocol(&envelope.protocol, REGISTRATION_PROTOCOL)?;
        Ok(envelope)
    }

    /// The exact bytes of the inner registration: what a signature covers.
    pub fn registration_bytes(&self) -> &[u8] {
        self.registration.get().as_bytes()
    }

    /// Parses and checks the inner registration.
    pub fn registration(&self) -> Result<Registration, DecodeError> {
        let registration: Registration = serde_json::from_str(self.registration.get())?;
        registration.validate()?;
        Ok(registration)
    }

    /// Verifies the node's (server) token and the signature over the registration bytes;
    /// returns the token. Check afterwards that the registration's `identity` is the token's
    /// name, so one node cannot register as another.
    pub fn verify(&self, trust: &Trust, now_secs: u64) -> Result<Token, SecurityError> {
        verify_envelope(
            self.token.as_deref(),
            self.signature.as_deref(),
            self.registration_bytes(),
            trust,
            TokenRole::Server,
            now_secs,
        )
    }

    /// The envelope as bytes to publish.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{Token, TokenClaims};
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
        let decoded = RegistrationEnvelope::decode(&envelope.to_bytes().unwrap()).unwrap();
        assert_eq!(decoded.registration().unwrap(), registration());
        let token = decoded.verify(&trust, 1_763_856_000).unwrap();
        assert_eq!(token.claims().name, "web1");

        // Tampering with the bytes breaks the signature; unsigned and client-signed
        // registrations are refused.
        let text = String::from_utf8(envelope.to_bytes().unwrap()).unwrap();
        let forged =
            RegistrationEnvelope::decode(text.replace("\"uk\"}", "\"de\"}").as_bytes()).unwrap();
        assert!(forged.verify(&trust, 1_763_856_000).is_err());
        let unsigned = RegistrationEnvelope::unsigned(&registration()).unwrap();
        assert!(matches!(
            unsigned.verify(&trust, 1_763_856_000),
            Err(SecurityError::Unsigned)
        ));
        let by_client = RegistrationEnvelope::signed(
            &registration(),
            &credentials(&issuer, TokenRole::Client, "web1"),
        )
        .unwrap();
        assert!(by_client.verify(&trust, 1_763_856_000).is_err());
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
            let message = envelope.registration().unwrap_err().to_string();
            assert!(message.contains(field), "{field}: {message}");
        }
        let huge = vec![b' '; crate::message::MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            RegistrationEnvelope::decode(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
