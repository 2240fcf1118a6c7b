//! The one signed envelope every message travels in: requests, replies, registrations and
//! events.
//!
//! An envelope holds its message as raw JSON bytes, exactly as the sender serialised them, so
//! that a signature covers the very bytes the receiver parses; nothing is re-encoded between
//! signing and verifying. Beside the message it carries the sender's `signature` over those
//! bytes and the sender's `token` (both `null` on an insecure fleet), and, on a direct
//! request, the `target` proof that the receiving node is one of the request's targets
//! ([`crate::targets`]). What differs between the three kinds — the protocol name, the
//! field the message is in, which role of token signs it, how the message is checked — is a
//! [`Kind`]; decoding, signing and verification ([`crate::security::TokenCache::verify`])
//! are written once for all of them.
//!
//! # Wire format
//!
//! ```json
//! {"protocol": "mco.request.v1", "request": { ... }, "signature": "<base64>", "token": "mco1...",
//!  "target": {"index": 0, "path": []}}
//! {"protocol": "mco.reply.v1", "reply": { ... }, "signature": null, "token": null}
//! {"protocol": "mco.registration.v1", "registration": { ... }, "signature": "...", "token": "..."}
//! {"protocol": "mco.event.v1", "event": { ... }, "signature": "...", "token": "..."}
//! ```
//!
//! Keys appear in this order when mco writes them; a reader accepts any order and ignores
//! keys it does not know. Not for: what is inside a message ([`crate::message`],
//! [`crate::registration`]) or whom to trust ([`crate::security`]).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::event::Event;
use crate::message::{DecodeError, Reply, Request, MAX_MESSAGE_BYTES};
use crate::registration::Registration;
use crate::security::{sign, Credentials, TokenRole};
use crate::targets::{TargetProof, TargetSet};

/// What makes one kind of envelope different from another.
pub trait Kind: Sized + 'static {
    /// The `protocol` value.
    const PROTOCOL: &'static str;
    /// The key the message is under.
    const FIELD: &'static str;
    /// The role of the token that signs this kind.
    const SIGNER: TokenRole;
    /// Whether the envelope may carry a target proof.
    const TARGETED: bool;
    /// The message type.
    type Body: Serialize + DeserializeOwned;
    /// Checks a parsed message's fields.
    fn check(body: &Self::Body) -> Result<(), DecodeError>;
}

/// Requests, signed by a caller (client token).
#[derive(Debug, Clone, Copy)]
pub struct RequestKind;
/// Replies, signed by a node (server token).
#[derive(Debug, Clone, Copy)]
pub struct ReplyKind;
/// Registrations, signed by a node (server token).
#[derive(Debug, Clone, Copy)]
pub struct RegistrationKind;
/// Events, signed by a node (server token).
#[derive(Debug, Clone, Copy)]
pub struct EventKind;

impl Kind for RequestKind {
    const PROTOCOL: &'static str = "mco.request.v1";
    const FIELD: &'static str = "request";
    const SIGNER: TokenRole = TokenRole::Client;
    const TARGETED: bool = true;
    type Body = Request;
    fn check(body: &Request) -> Result<(), DecodeError> {
        body.validate()
    }
}

impl Kind for ReplyKind {
    const PROTOCOL: &'static str = "mco.reply.v1";
    const FIELD: &'static str = "reply";
    const SIGNER: TokenRole = TokenRole::Server;
    const TARGETED: bool = false;
    type Body = Reply;
    fn check(body: &Reply) -> Result<(), DecodeError> {
        if !body.data.is_object() {
            return Err(DecodeError::Invalid {
                field: "data",
                reason: "must be a JSON object".into(),
            });
        }
        Ok(())
    }
}

impl Kind for RegistrationKind {
    const PROTOCOL: &'static str = "mco.registration.v1";
    const FIELD: &'static str = "registration";
    const SIGNER: TokenRole = TokenRole::Server;
    const TARGETED: bool = false;
    type Body = Registration;
    fn check(body: &Registration) -> Result<(), DecodeError> {
        body.validate()
    }
}

impl Kind for EventKind {
    const PROTOCOL: &'static str = "mco.event.v1";
    const FIELD: &'static str = "event";
    const SIGNER: TokenRole = TokenRole::Server;
    const TARGETED: bool = false;
    type Body = Event;
    fn check(body: &Event) -> Result<(), DecodeError> {
        body.validate()
    }
}

/// A message in its envelope. See the [module docs](self).
pub struct Envelope<K: Kind> {
    /// Always `K::PROTOCOL` once decoded.
    pub protocol: String,
    /// The message, exactly as the sender serialised it. Signatures cover these bytes.
    pub body: Box<RawValue>,
    /// Standard base64 ed25519 signature over `body` by the sender's key; `None` unsigned.
    pub signature: Option<String>,
    /// The sender's token; `None` unsigned.
    pub token: Option<String>,
    /// On a direct request: the proof that the receiving node is a target (not signed).
    pub target: Option<TargetProof>,
    kind: PhantomData<K>,
}

/// A request envelope.
pub type RequestEnvelope = Envelope<RequestKind>;
/// A reply envelope.
pub type ReplyEnvelope = Envelope<ReplyKind>;
/// A registration envelope.
pub type RegistrationEnvelope = Envelope<RegistrationKind>;
/// An event envelope.
pub type EventEnvelope = Envelope<EventKind>;

impl<K: Kind> Clone for Envelope<K> {
    fn clone(&self) -> Self {
        Envelope {
            protocol: self.protocol.clone(),
            body: self.body.clone(),
            signature: self.signature.clone(),
            token: self.token.clone(),
            target: self.target.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> fmt::Debug for Envelope<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("protocol", &self.protocol)
            .field(K::FIELD, &self.body.get())
            .field("signature", &self.signature)
            .field("token", &self.token)
            .field("target", &self.target)
            .finish()
    }
}

impl<K: Kind> Envelope<K> {
    fn wrap(body: Box<RawValue>, signature: Option<String>, token: Option<String>) -> Self {
        Envelope {
            protocol: K::PROTOCOL.to_string(),
            body,
            signature,
            token,
            target: None,
            kind: PhantomData,
        }
    }

    /// Wraps a message without signature or token (insecure fleets).
    pub fn unsigned(body: &K::Body) -> Result<Self, serde_json::Error> {
        Ok(Self::wrap(
            serde_json::value::to_raw_value(body)?,
            None,
            None,
        ))
    }

    /// Wraps a message signed with the sender's key, carrying the sender's token.
    pub fn signed(body: &K::Body, credentials: &Credentials) -> Result<Self, serde_json::Error> {
        let body = serde_json::value::to_raw_value(body)?;
        let signature = sign(&credentials.key, body.get().as_bytes());
        Ok(Self::wrap(
            body,
            Some(signature),
            Some(credentials.token.clone()),
        ))
    }

    /// Parses an envelope, refusing oversized input, the wrong protocol and a target proof
    /// on a kind that has none. The message itself is not parsed yet: verify
    /// [`Self::body_bytes`] first, then call [`Self::body`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let envelope: Envelope<K> = serde_json::from_slice(bytes)?;
        if envelope.protocol != K::PROTOCOL {
            return Err(DecodeError::Protocol {
                found: envelope.protocol,
                expected: K::PROTOCOL,
            });
        }
        if !K::TARGETED && envelope.target.is_some() {
            return Err(DecodeError::Invalid {
                field: "target",
                reason: format!("a {} carries no target proof", K::FIELD),
            });
        }
        Ok(envelope)
    }

    /// The exact bytes of the message: what the signature covers.
    pub fn body_bytes(&self) -> &[u8] {
        self.body.get().as_bytes()
    }

    /// Parses and checks the message from [`Self::body_bytes`].
    pub fn body(&self) -> Result<K::Body, DecodeError> {
        let body: K::Body = serde_json::from_str(self.body.get())?;
        K::check(&body)?;
        Ok(body)
    }

    /// The envelope as bytes to publish.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// This envelope with `target` as its target proof (the copy for one node).
    pub fn with_target(mut self, target: Option<TargetProof>) -> Self {
        self.target = target;
        self
    }
}

impl RequestEnvelope {
    /// The bytes of one target's copy of an encoded request envelope: `encoded`, as
    /// [`Envelope::to_bytes`] wrote it without a target, with `target` added as its last key.
    /// The signed request inside is not touched, so one signature serves every copy, and a
    /// call to thousands of nodes does not re-encode the request for each.
    pub fn append_target(
        encoded: &[u8],
        target: &TargetProof,
    ) -> Result<Vec<u8>, serde_json::Error> {
        Self::append_target_with(encoded, 67 * target.path.len(), |out| {
            serde_json::to_writer(out, target)
        })
    }

    /// [`Self::append_target`] for the copy of `identity` in `targets`, writing its proof
    /// straight from the tree; `Ok(None)` when `identity` is not a target.
    pub fn copy_for(
        encoded: &[u8],
        targets: &TargetSet,
        identity: &str,
    ) -> Result<Option<Vec<u8>>, serde_json::Error> {
        let Some(index) = targets.index_of(identity) else {
            return Ok(None);
        };
        Self::append_target_with(encoded, 67 * 33, |out| {
            targets.write_proof(index, out);
            Ok(())
        })
        .map(Some)
    }

    fn append_target_with(
        encoded: &[u8],
        room: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let Some(open) = encoded.strip_suffix(b"}") else {
            return Err(serde::ser::Error::custom(
                "not an encoded envelope: it does not end with '}'",
            ));
        };
        let mut out = Vec::with_capacity(encoded.len() + 32 + room);
        out.extend_from_slice(open);
        out.extend_from_slice(b",\"target\":");
        write(&mut out)?;
        out.push(b'}');
        Ok(out)
    }
}

impl<K: Kind> Serialize for Envelope<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = 4 + usize::from(self.target.is_some());
        let mut map = serializer.serialize_map(Some(entries))?;
        map.serialize_entry("protocol", &self.protocol)?;
        map.serialize_entry(K::FIELD, &self.body)?;
        map.serialize_entry("signature", &self.signature)?;
        map.serialize_entry("token", &self.token)?;
        if let Some(target) = &self.target {
            map.serialize_entry("target", target)?;
        }
        map.end()
    }
}

impl<'de, K: Kind> Deserialize<'de> for Envelope<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor<K>(PhantomData<K>);

        impl<'de, K: Kind> Visitor<'de> for EnvelopeVisitor<K> {
            type Value = Envelope<K>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an {} envelope object", K::FIELD)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<K>, A::Error> {
                let mut protocol: Option<String> = None;
                let mut body: Option<Box<RawValue>> = None;
                let mut signature: Option<Option<String>> = None;
                let mut token: Option<Option<String>> = None;
                let mut target: Option<Option<TargetProof>> = None;
                fn once<T, E: de::Error>(slot: &Option<T>, key: &'static str) -> Result<(), E> {
                    if slot.is_some() {
                        return Err(E::duplicate_field(key));
                    }
                    Ok(())
                }
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "protocol" => {
                            once(&protocol, "protocol")?;
                            protocol = Some(map.next_value()?);
                        }
                        "signature" => {
                            once(&signature, "signature")?;
                            signature = Some(map.next_value()?);
                        }
                        "token" => {
                            once(&token, "token")?;
                            token = Some(map.next_value()?);
                        }
                        "target" => {
                            once(&target, "target")?;
                            target = Some(map.next_value()?);
                        }
                        field if field == K::FIELD => {
                            once(&body, K::FIELD)?;
                            body = Some(map.next_value()?);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Envelope {
                    protocol: protocol.ok_or_else(|| de::Error::missing_field("protocol"))?,
                    body: body.ok_or_else(|| de::Error::missing_field(K::FIELD))?,
                    signature: signature.flatten(),
                    token: token.flatten(),
                    target: target.flatten(),
                    kind: PhantomData,
                })
            }
        }

        deserializer.deserialize_map(EnvelopeVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_come_in_a_fixed_order_and_unknown_keys_are_ignored() {
        let reply = Reply {
            request_id: "r".into(),
            sender: "web1".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 1,
            statuscode: crate::StatusCode::Ok,
            statusmsg: "OK".into(),
            data: json!({}),
        };
        let bytes = ReplyEnvelope::unsigned(&reply).unwrap().to_bytes().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with(r#"{"protocol":"mco.reply.v1","reply":{"#),
            "{text}"
        );
        assert!(
            text.ends_with(r#","signature":null,"token":null}"#),
            "{text}"
        );
        let extended = text.replacen('{', r#"{"future":[1,2],"#, 1);
        let decoded = ReplyEnvelope::decode(extended.as_bytes()).unwrap();
        assert_eq!(decoded.body().unwrap(), reply);
    }

    #[test]
    fn a_targets_copy_is_the_envelope_with_its_proof_and_the_same_signed_bytes() {
        let set = crate::TargetSet::new(["web1", "web2", "db1"]).unwrap();
        let id = crate::message::new_request_id();
        let request = Request {
            reply_to: crate::subjects::reply("mco", "alice", &id),
            id,
            collective: "mco".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            data: Default::default(),
            filter: Default::default(),
            caller: "alice".into(),
            sender: "admin1".into(),
            time: 1,
            ttl: 60,
            targets: Some(set.targets()),
        };
        let envelope = RequestEnvelope::unsigned(&request).unwrap();
        let base = envelope.to_bytes().unwrap();
        let proof = set.proof("web2").unwrap();
        let copy = RequestEnvelope::append_target(&base, &proof).unwrap();
        let expected = envelope
            .clone()
            .with_target(Some(proof.clone()))
            .to_bytes()
            .unwrap();
        assert_eq!(copy, expected);
        let decoded = RequestEnvelope::decode(&copy).unwrap();
        assert_eq!(decoded.body_bytes(), envelope.body_bytes());
        assert_eq!(decoded.target, Some(proof));
        assert!(RequestEnvelope::append_target(b"[1]", &set.proof_at(0)).is_err());
    }

    #[test]
    fn a_target_proof_belongs_on_requests_only() {
        let text = r#"{"protocol":"mco.reply.v1","reply":{},"signature":null,"token":null,"target":{"index":0,"path":[]}}"#;
        assert!(matches!(
            ReplyEnvelope::decode(text.as_bytes()),
            Err(DecodeError::Invalid {
                field: "target",
                ..
            })
        ));
        let twice = r#"{"protocol":"mco.reply.v1","reply":{},"reply":{}}"#;
        assert!(ReplyEnvelope::decode(twice.as_bytes()).is_err());
        let missing = r#"{"protocol":"mco.reply.v1"}"#;
        assert!(ReplyEnvelope::decode(missing.as_bytes()).is_err());
    }
}
