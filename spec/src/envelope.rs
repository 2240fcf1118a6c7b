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

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
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
    /// The message type, borrowing from the bytes it is parsed from where it can.
    type Body<'a>: Serialize + Deserialize<'a>;
    /// Checks a parsed message's fields.
    fn check(body: &Self::Body<'_>) -> Result<(), DecodeError>;
    /// The message `text` holds (and nothing else but whitespace), read without serde when
    /// it has a common shape; `None` when serde must read it. Only ever the value serde
    /// would read ([`crate::request_reader`]).
    fn read_fast(_text: &str) -> Option<Self::Body<'_>> {
        None
    }
    /// The message and target proof of the envelope `text` holds, read without serde when
    /// it has a common shape; `None` when serde must read it. Only ever what serde would
    /// read.
    fn open_fast(_text: &str) -> Option<(Self::Body<'_>, Option<TargetProof>)> {
        None
    }
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
    type Body<'a> = Request<'a>;
    fn check(body: &Request<'_>) -> Result<(), DecodeError> {
        body.validate()
    }
    fn read_fast(text: &str) -> Option<Request<'_>> {
        crate::request_reader::read_request(text)
    }
    fn open_fast(text: &str) -> Option<(Request<'_>, Option<TargetProof>)> {
        crate::request_reader::open_request_envelope(text, Self::PROTOCOL)
    }
}

impl Kind for ReplyKind {
    const PROTOCOL: &'static str = "mco.reply.v1";
    const FIELD: &'static str = "reply";
    const SIGNER: TokenRole = TokenRole::Server;
    const TARGETED: bool = false;
    type Body<'a> = Reply;
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
    type Body<'a> = Registration;
    fn check(body: &Registration) -> Result<(), DecodeError> {
        body.validate()
    }
}

impl Kind for EventKind {
    const PROTOCOL: &'static str = "mco.event.v1";
    const FIELD: &'static str = "event";
    const SIGNER: TokenRole = TokenRole::Server;
    const TARGETED: bool = false;
    type Body<'a> = Event;
    fn check(body: &Event) -> Result<(), DecodeError> {
        body.validate()
    }
}

/// A message in its envelope. See the [module docs](self).
///
/// A decoded envelope borrows from the bytes it was decoded from (`'a`): a node reads every
/// broadcast of its fleet, and copying each message out of the bytes it arrived in was a
/// measurable part of the work. One that mco builds to send owns its parts (`'static`);
/// [`Envelope::into_owned`] turns the one into the other. The `protocol` is not kept: once
/// decoded it is always `K::PROTOCOL`.
pub struct Envelope<'a, K: Kind> {
    /// The message, exactly as the sender serialised it. Signatures cover these bytes.
    pub body: Cow<'a, RawValue>,
    /// Standard base64 ed25519 signature over `body` by the sender's key; `None` unsigned.
    pub signature: Option<Cow<'a, str>>,
    /// The sender's token; `None` unsigned.
    pub token: Option<Cow<'a, str>>,
    /// On a direct request: the proof that the receiving node is a target (not signed).
    pub target: Option<TargetProof>,
    kind: PhantomData<K>,
}

/// A request envelope.
pub type RequestEnvelope<'a> = Envelope<'a, RequestKind>;
/// A reply envelope.
pub type ReplyEnvelope<'a> = Envelope<'a, ReplyKind>;
/// A registration envelope.
pub type RegistrationEnvelope<'a> = Envelope<'a, RegistrationKind>;
/// An event envelope.
pub type EventEnvelope<'a> = Envelope<'a, EventKind>;

impl<K: Kind> Clone for Envelope<'_, K> {
    fn clone(&self) -> Self {
        Envelope {
            body: self.body.clone(),
            signature: self.signature.clone(),
            token: self.token.clone(),
            target: self.target.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> fmt::Debug for Envelope<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("protocol", &K::PROTOCOL)
            .field(K::FIELD, &self.body.get())
            .field("signature", &self.signature)
            .field("token", &self.token)
            .field("target", &self.target)
            .finish()
    }
}

impl<K: Kind> Envelope<'static, K> {
    fn wrap(body: Box<RawValue>, signature: Option<String>, token: Option<String>) -> Self {
        Envelope {
            body: Cow::Owned(body),
            signature: signature.map(Cow::Owned),
            token: token.map(Cow::Owned),
            target: None,
            kind: PhantomData,
        }
    }

    /// Wraps a message without signature or token (insecure fleets).
    pub fn unsigned(body: &K::Body<'_>) -> Result<Self, serde_json::Error> {
        Ok(Self::wrap(
            serde_json::value::to_raw_value(body)?,
            None,
            None,
        ))
    }

    /// Wraps a message signed with the sender's key, carrying the sender's token.
    pub fn signed(
        body: &K::Body<'_>,
        credentials: &Credentials,
    ) -> Result<Self, serde_json::Error> {
        let body = serde_json::value::to_raw_value(body)?;
        let signature = sign(&credentials.key, body.get().as_bytes());
        Ok(Self::wrap(
            body,
            Some(signature),
            Some(credentials.token.clone()),
        ))
    }
}

impl<'a, K: Kind> Envelope<'a, K> {
    /// Parses an envelope, refusing oversized input, the wrong protocol and a target proof
    /// on a kind that has none. The message itself is not parsed yet: verify
    /// [`Self::body_bytes`] first, then call [`Self::body`]. The envelope borrows from
    /// `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let parts = Parts::<'a, K, &'a RawValue>::decode(checked_text(bytes)?)?;
        Ok(Envelope {
            body: Cow::Borrowed(parts.body),
            signature: parts.signature,
            token: parts.token,
            target: parts.target,
            kind: PhantomData,
        })
    }

    /// Parses an envelope and its message in one pass, for a receiver that verifies no
    /// signature (an insecure node): it never needs the message's exact bytes, so they are
    /// not first set apart and then parsed again. Accepts and refuses exactly what
    /// [`Self::decode`] followed by [`Self::body`] does; a signature and token, if any, are
    /// ignored.
    pub fn open_unverified(bytes: &'a [u8]) -> Result<Opened<'a, K>, DecodeError> {
        let text = checked_text(bytes)?;
        if let Some((body, target)) = K::open_fast(text) {
            K::check(&body)?;
            return Ok(Opened { body, target });
        }
        let parts = Parts::<'a, K, K::Body<'a>>::decode(text)?;
        K::check(&parts.body)?;
        Ok(Opened {
            body: parts.body,
            target: parts.target,
        })
    }

    /// The exact bytes of the message: what the signature covers.
    pub fn body_bytes(&self) -> &[u8] {
        self.body.get().as_bytes()
    }

    /// Parses and checks the message from [`Self::body_bytes`]; the message borrows from
    /// them where it can.
    pub fn body(&self) -> Result<K::Body<'_>, DecodeError> {
        let text = self.body.get();
        let body: K::Body<'_> = match K::read_fast(text) {
            Some(body) => body,
            None => serde_json::from_str(text)?,
        };
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

    /// This envelope, owning all its parts (for keeping it beyond the bytes it was decoded
    /// from).
    pub fn into_owned(self) -> Envelope<'static, K> {
        Envelope {
            body: Cow::Owned(self.body.into_owned()),
            signature: self.signature.map(|s| Cow::Owned(s.into_owned())),
            token: self.token.map(|t| Cow::Owned(t.into_owned())),
            target: self.target,
            kind: PhantomData,
        }
    }
}

impl RequestEnvelope<'_> {
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

impl<K: Kind> Serialize for Envelope<'_, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = 4 + usize::from(self.target.is_some());
        let mut map = serializer.serialize_map(Some(entries))?;
        map.serialize_entry("protocol", K::PROTOCOL)?;
        map.serialize_entry(K::FIELD, &self.body)?;
        map.serialize_entry("signature", &self.signature)?;
        map.serialize_entry("token", &self.token)?;
        if let Some(target) = &self.target {
            map.serialize_entry("target", target)?;
        }
        map.end()
    }
}

/// A string that borrows from the input unless it holds escapes (serde's own `Cow<str>`
/// always copies).
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CowStrVisitor;
        impl<'de> Visitor<'de> for CowStrVisitor {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(CowStrVisitor)
    }
}

/// The parts of an envelope as the bytes hold them, before [`Parts::check`]; `B` is what the
/// message is read as: its raw bytes ([`Envelope::decode`]) or, in one pass, the message
/// itself ([`Envelope::open_unverified`]). One visitor reads both, so both accept exactly
/// the same envelopes.
struct Parts<'a, K: Kind, B> {
    protocol: Cow<'a, str>,
    body: B,
    signature: Option<Cow<'a, str>>,
    token: Option<Cow<'a, str>>,
    target: Option<TargetProof>,
    kind: PhantomData<K>,
}

/// The message as text, refusing oversized input before anything is parsed (so a sender
/// cannot make a receiver allocate without bound) and bytes that are not UTF-8.
fn checked_text(bytes: &[u8]) -> Result<&str, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    // JSON is UTF-8: checking the whole message at once is cheaper than checking each
    // string the parser borrows from it, one by one.
    std::str::from_utf8(bytes).map_err(|e| {
        <serde_json::Error as de::Error>::custom(format!("the message is not UTF-8: {e}")).into()
    })
}

impl<'a, K: Kind, B> Parts<'a, K, B> {
    /// Decodes `text` (from [`checked_text`]), refusing the wrong protocol and a target
    /// proof on a kind that has none.
    fn decode(text: &'a str) -> Result<Self, DecodeError>
    where
        B: Deserialize<'a>,
    {
        let parts = serde_json::from_str::<Parts<'a, K, B>>(text)?;
        if parts.protocol != K::PROTOCOL {
            return Err(DecodeError::Protocol {
                found: parts.protocol.into_owned(),
                expected: K::PROTOCOL,
            });
        }
        if !K::TARGETED && parts.target.is_some() {
            return Err(DecodeError::Invalid {
                field: "target",
                reason: format!("a {} carries no target proof", K::FIELD),
            });
        }
        Ok(parts)
    }
}

impl<'de, K: Kind, B: Deserialize<'de>> Deserialize<'de> for Parts<'de, K, B> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartsVisitor<K, B>(PhantomData<(K, B)>);

        impl<'de, K: Kind, B: Deserialize<'de>> Visitor<'de> for PartsVisitor<K, B> {
            type Value = Parts<'de, K, B>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an {} envelope object", K::FIELD)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut protocol: Option<CowStr<'de>> = None;
                let mut body: Option<B> = None;
                let mut signature: Option<Option<CowStr<'de>>> = None;
                let mut token: Option<Option<CowStr<'de>>> = None;
                let mut target: Option<Option<TargetProof>> = None;
                fn once<T, E: de::Error>(slot: &Option<T>, key: &'static str) -> Result<(), E> {
                    if slot.is_some() {
                        return Err(E::duplicate_field(key));
                    }
                    Ok(())
                }
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    match key.0.as_ref() {
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
                Ok(Parts {
                    protocol: protocol
                        .ok_or_else(|| de::Error::missing_field("protocol"))?
                        .0,
                    body: body.ok_or_else(|| de::Error::missing_field(K::FIELD))?,
                    signature: signature.flatten().map(|s| s.0),
                    token: token.flatten().map(|t| t.0),
                    target: target.flatten(),
                    kind: PhantomData,
                })
            }
        }

        deserializer.deserialize_map(PartsVisitor(PhantomData))
    }
}

/// A message read by a receiver that verifies nothing ([`Envelope::open_unverified`]).
#[derive(Debug)]
pub struct Opened<'a, K: Kind> {
    /// The message, parsed and checked.
    pub body: K::Body<'a>,
    /// On a direct request: the proof that the receiving node is a target.
    pub target: Option<TargetProof>,
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
            reply_to: crate::subjects::reply("mco", "alice", &id).into(),
            id: id.into(),
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

    #[test]
    fn opening_in_one_pass_accepts_exactly_what_decoding_then_parsing_accepts() {
        let request = crate::message::tests::sample_request();
        let good = String::from_utf8(
            RequestEnvelope::unsigned(&request)
                .unwrap()
                .to_bytes()
                .unwrap(),
        )
        .unwrap();
        let body = serde_json::to_string(&request).unwrap();
        let escaped_caller = body.replace("user=alice", "user=\\u0061lice");
        let cases: Vec<String> = vec![
            good.clone(),
            // Keys in another order, unknown keys, a signature an insecure node ignores.
            format!(
                r#"{{"token":null,"x":[1,{{"y":2}}],"request":{body},"protocol":"mco.request.v1"}}"#
            ),
            format!(
                r#"{{"protocol":"mco.request.v1","request":{body},"signature":"c2ln","token":"t"}}"#
            ),
            format!(r#"{{"protocol":"mco.request.v1","request":{escaped_caller}}}"#),
            // A target proof, well-formed or not.
            format!(
                r#"{},"target":{{"index":0,"path":[]}}}}"#,
                &good[..good.len() - 1]
            ),
            format!(r#"{{"protocol":"mco.request.v1","request":{body},"target":{{"index":"x"}}}}"#),
            // Refused: the protocol, duplicates, missing parts, bad fields, not JSON.
            format!(r#"{{"protocol":"mco.reply.v1","request":{body}}}"#),
            format!(r#"{{"protocol":"mco.request.v1","request":{body},"request":{body}}}"#),
            format!(
                r#"{{"protocol":"mco.request.v1","protocol":"mco.request.v1","request":{body}}}"#
            ),
            format!(r#"{{"request":{body}}}"#),
            r#"{"protocol":"mco.request.v1"}"#.to_string(),
            format!(
                r#"{{"protocol":"mco.request.v1","request":{}}}"#,
                body.replace("\"ttl\":60", "\"ttl\":0")
            ),
            format!(
                r#"{{"protocol":"mco.request.v1","request":{}}}"#,
                body.replace("\"time\":", "\"time\":-")
            ),
            format!(
                r#"{{"protocol":"mco.request.v1","request":{}}}"#,
                body.replace("\"caller\"", "\"callr\"")
            ),
            format!(r#"{{"protocol":"mco.request.v1","request":{body},"signature":7}}"#),
            r#"{"protocol":"mco.request.v1","request":[]}"#.to_string(),
            good[..good.len() - 1].to_string(),
            "[]".to_string(),
            String::new(),
        ];
        for (n, case) in cases.iter().enumerate() {
            let bytes = case.as_bytes();
            let two_pass = RequestEnvelope::decode(bytes).and_then(|e| {
                let body = e.body()?.into_owned();
                Ok((body, e.target))
            });
            let one_pass = RequestEnvelope::open_unverified(bytes).map(|o| (o.body, o.target));
            // The first five are well-formed, the rest are not.
            match (two_pass, one_pass) {
                (Ok(a), Ok(b)) if n < 5 => assert_eq!(a, b, "case {n}: {case}"),
                (Err(_), Err(_)) if n >= 5 => {}
                (a, b) => panic!("case {n}: {a:?} and {b:?}: {case}"),
            }
        }
        let oversized = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            RequestEnvelope::open_unverified(&oversized),
            Err(DecodeError::TooLarge { .. })
        ));
        let reply = r#"{"protocol":"mco.reply.v1","reply":{"request_id":"r","sender":"w","agent":"a","action":"b","time":1,"statuscode":0,"statusmsg":"OK","data":{}},"target":{"index":0,"path":[]}}"#;
        assert!(ReplyEnvelope::open_unverified(reply.as_bytes()).is_err());
        assert!(ReplyEnvelope::decode(reply.as_bytes()).is_err());
    }
}
