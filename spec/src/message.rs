//! Requests, replies and status codes: what is inside an envelope ([`crate::envelope`]).
//!
//! # Wire format
//!
//! A request (the `request` of a `mco.request.v1` envelope):
//!
//! ```json
//! {
//!   "id": "5d3c8f0a9b2e4c1d8e7f6a5b4c3d2e1f",
//!   "collective": "mco",
//!   "agent": "rpcutil",
//!   "action": "ping",
//!   "data": {},
//!   "filter": {"fact": [{"fact": "country", "operator": "==", "value": "uk"}],
//!              "class": [], "identity": [], "agent": ["rpcutil"], "compound": []},
//!   "caller": "user=alice",
//!   "sender": "admin1.example.net",
//!   "time": 1763856000123,
//!   "ttl": 60,
//!   "reply_to": "mco.reply.0f1e2d3c4b5a69788796a5b4c3d2e1f0.5d3c8f0a9b2e4c1d8e7f6a5b4c3d2e1f"
//! }
//! ```
//!
//! A direct request also has `"targets": {"root": "<64 hex>", "count": N}` ([`crate::targets`]).
//!
//! A reply (the `reply` of a `mco.reply.v1` envelope):
//!
//! ```json
//! {
//!   "request_id": "5d3c8f0a9b2e4c1d8e7f6a5b4c3d2e1f",
//!   "sender": "web1.example.net",
//!   "agent": "rpcutil",
//!   "action": "ping",
//!   "time": 1763856000140,
//!   "statuscode": 0,
//!   "statusmsg": "OK",
//!   "data": {"pong": 1763856000}
//! }
//! ```
//!
//! `time` is Unix time in milliseconds, `ttl` is seconds. This module does no I/O.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::envelope::{Kind, ReplyKind, RequestKind};
use crate::filter::Filter;
use crate::subjects::{check_reply_to, is_valid_identity, is_valid_token};
use crate::targets::{Targets, MAX_TARGETS};

/// The `protocol` value of a request envelope.
pub const REQUEST_PROTOCOL: &str = <RequestKind as Kind>::PROTOCOL;
/// The `protocol` value of a reply envelope.
pub const REPLY_PROTOCOL: &str = <ReplyKind as Kind>::PROTOCOL;

/// The largest message a node or client accepts, in bytes.
///
/// Anything larger is refused before it is parsed, so a sender cannot make a node allocate
/// without bound. NATS's own default `max_payload` is also 1 MiB.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The longest TTL a request may ask for: seven days, in seconds.
pub const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// The `data` field of a node's refusal for clock trouble: the node's clock minus the
/// request's `time`, rounded to the second (negative: the node's clock is behind). A reply
/// with a status other than 0 and this field says the node refused because the two clocks
/// differ by more than the node allows (`clock_skew_seconds`, also in the data); clients
/// read it to tell the operator which nodes' clocks are off.
pub const CLOCK_OFFSET_FIELD: &str = "clock_offset_seconds";

/// Why bytes could not be turned into a request or reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message received.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// The bytes are not the JSON shape of the message.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// The envelope names a protocol this version does not speak.
    #[error("unsupported protocol {found:?}, expected {expected:?}")]
    Protocol {
        /// The protocol string found.
        found: String,
        /// The protocol string expected.
        expected: &'static str,
    },
    /// A field parsed but holds a value that is not allowed.
    #[error("invalid field {field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reply status codes, the MCollective/Choria convention.
///
/// On the wire a status code is its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 0: the action ran and succeeded.
    Ok,
    /// 1: the action was aborted (failed, refused, not authorized).
    Aborted,
    /// 2: the node has no such agent or action.
    UnknownAction,
    /// 3: a required input was missing.
    MissingData,
    /// 4: an input was invalid.
    InvalidData,
    /// 5: anything else went wrong.
    UnknownError,
}

impl StatusCode {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            StatusCode::Ok => 0,
            StatusCode::Aborted => 1,
            StatusCode::UnknownAction => 2,
            StatusCode::MissingData => 3,
            StatusCode::InvalidData => 4,
            StatusCode::UnknownError => 5,
        }
    }

    /// The status code for a number, if it is one of 0–5.
    pub fn from_code(code: u64) -> Option<StatusCode> {
        Some(match code {
            0 => StatusCode::Ok,
            1 => StatusCode::Aborted,
            2 => StatusCode::UnknownAction,
            3 => StatusCode::MissingData,
            4 => StatusCode::InvalidData,
            5 => StatusCode::UnknownError,
            _ => return None,
        })
    }

    /// The text MCollective prints next to a node that did not succeed (empty for OK).
    pub fn description(self) -> &'static str {
        match self {
            StatusCode::Ok => "OK",
            StatusCode::Aborted => "Request Aborted",
            StatusCode::UnknownAction => "Unknown Action",
            StatusCode::MissingData => "Missing Request Data",
            StatusCode::InvalidData => "Invalid Request Data",
            StatusCode::UnknownError => "Unknown Request Status",
        }
    }

    /// Whether this is [`StatusCode::Ok`].
    pub fn is_ok(self) -> bool {
        self == StatusCode::Ok
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl Serialize for StatusCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u64::deserialize(deserializer)?;
        StatusCode::from_code(code)
            .ok_or_else(|| D::Error::custom(format!("status code {code} is not between 0 and 5")))
    }
}

/// The current Unix time in milliseconds.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new random request id: 32 lowercase hex digits (a UUIDv4 without dashes).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An RPC request: which action to run, with which inputs, on which nodes.
///
/// A request decoded from a message borrows its names from the message's bytes
/// ([`crate::envelope::Envelope::body`]): every node parses every broadcast of its fleet, and
/// copying seven strings out of each was most of what parsing allocated. A request a client
/// builds owns them (`Request<'static>`); [`Request::into_owned`] turns the one into the other.
///
/// See the [module docs](self) for the wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<'a> {
    /// Unique id; replies carry it back and nodes use it to recognise repeats.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// The collective the request was sent in.
    #[serde(borrow)]
    pub collective: Cow<'a, str>,
    /// The agent to call.
    #[serde(borrow)]
    pub agent: Cow<'a, str>,
    /// The action of that agent.
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    /// The action's inputs.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Which nodes should act; an empty filter matches every node.
    #[serde(default)]
    pub filter: Filter,
    /// Who asked (e.g. `user=alice`). Unsigned fleets take it on trust; signed ones take it
    /// from the caller's token.
    #[serde(borrow)]
    pub caller: Cow<'a, str>,
    /// The identity of the host that sent the request.
    #[serde(borrow)]
    pub sender: Cow<'a, str>,
    /// When the request was made, Unix milliseconds.
    pub time: u64,
    /// How long after `time` the request may still be acted on, in seconds.
    pub ttl: u64,
    /// The subject replies go to: always under the caller's own reply prefix
    /// ([`crate::subjects::check_reply_to`]).
    #[serde(borrow)]
    pub reply_to: Cow<'a, str>,
    /// The nodes a direct request is for ([`crate::targets`]); `None` on a broadcast, which
    /// its filter alone selects. A node acts on a targeted request only when its copy proves
    /// the node is a target, whatever subject it arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
}

impl Request<'_> {
    /// This request, owning all its parts (for keeping it beyond the bytes it was decoded
    /// from).
    pub fn into_owned(self) -> Request<'static> {
        Request {
            id: Cow::Owned(self.id.into_owned()),
            collective: Cow::Owned(self.collective.into_owned()),
            agent: Cow::Owned(self.agent.into_owned()),
            action: Cow::Owned(self.action.into_owned()),
            data: self.data,
            filter: self.filter,
            caller: Cow::Owned(self.caller.into_owned()),
            sender: Cow::Owned(self.sender.into_owned()),
            time: self.time,
            ttl: self.ttl,
            reply_to: Cow::Owned(self.reply_to.into_owned()),
            targets: self.targets,
        }
    }

    /// Whether the request's TTL has passed at `now_ms` (Unix milliseconds).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms > self.expires_at()
    }

    /// The Unix millisecond after which the request must not be acted on.
    pub fn expires_at(&self) -> u64 {
        self.time.saturating_add(self.ttl.saturating_mul(1000))
    }

    /// Checks the fields a node relies on; [`crate::envelope::Envelope::body`] calls it.
    pub fn validate(&self) -> Result<(), DecodeError> {
        fn invalid(field: &'static str, reason: impl Into<String>) -> DecodeError {
            DecodeError::Invalid {
                field,
                reason: reason.into(),
            }
        }
        if self.id.is_empty()
            || self.id.len() > 64
            || !crate::name_bytes::all_of(self.id.as_bytes(), crate::name_bytes::ID)
        {
            return Err(invalid("id", "must be 1 to 64 letters, digits or dashes"));
        }
        if !is_valid_token(&self.collective) {
            return Err(invalid(
                "collective",
                format!("{:?} is not a valid collective name", self.collective),
            ));
        }
        if !is_valid_token(&self.agent) {
            return Err(invalid(
                "agent",
                format!("{:?} is not a valid agent name", self.agent),
            ));
        }
        if !is_valid_token(&self.action) {
            return Err(invalid(
                "action",
                format!("{:?} is not a valid action name", self.action),
            ));
        }
        if self.caller.is_empty() || self.caller.len() > 256 {
            return Err(invalid("caller", "must be 1 to 256 characters"));
        }
        if !is_valid_identity(&self.sender) {
            return Err(invalid(
                "sender",
                format!("{:?} is not a valid identity", self.sender),
            ));
        }
        if self.ttl == 0 || self.ttl > MAX_TTL_SECONDS {
            return Err(invalid(
                "ttl",
                format!("must be between 1 and {MAX_TTL_SECONDS} seconds"),
            ));
        }
        if let Err(e) = check_reply_to(&self.collective, &self.caller, &self.reply_to) {
            return Err(invalid("reply_to", e.to_string()));
        }
        if let Some(targets) = &self.targets {
            if targets.count == 0 || targets.count > MAX_TARGETS || targets.root.len() != 64 {
                return Err(invalid(
                    "targets",
                    "must name 1 or more nodes by a 64-digit root",
                ));
            }
        }
        Ok(())
    }
}

/// A node's answer to one request.
///
/// See the [module docs](self) for the wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the request this answers.
    pub request_id: String,
    /// The identity of the node that answered.
    pub sender: String,
    /// The agent that was called.
    pub agent: String,
    /// The action that was called.
    pub action: String,
    /// When the reply was made, Unix milliseconds.
    pub time: u64,
    /// The outcome.
    pub statuscode: StatusCode,
    /// A human-readable outcome; `OK` on success, the reason otherwise.
    pub statusmsg: String,
    /// The action's outputs (a JSON object).
    #[serde(default = "empty_object")]
    pub data: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Signs a reply's bytes: returns the signature and the token to send with it.
pub type ReplySigner<'t> = dyn Fn(&[u8]) -> (String, &'t str) + 't;

/// A reply's fields, borrowed: what a node encodes without first copying the request's
/// strings into a [`Reply`]. Serialises exactly as the [`Reply`] with the same values.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReplyFields<'a> {
    /// The id of the request this answers.
    pub request_id: &'a str,
    /// The identity of the node that answered.
    pub sender: &'a str,
    /// The agent that was called.
    pub agent: &'a str,
    /// The action that was called.
    pub action: &'a str,
    /// When the reply was made, Unix milliseconds.
    pub time: u64,
    /// The outcome.
    pub statuscode: StatusCode,
    /// A human-readable outcome.
    pub statusmsg: &'a str,
    /// The action's outputs (a JSON object).
    pub data: &'a Value,
}

impl ReplyFields<'_> {
    /// The reply envelope as bytes to publish, built in one buffer: the reply is serialised
    /// in place, `sign` (if any) is given exactly those bytes and returns the signature and
    /// token to add. Byte for byte what [`crate::ReplyEnvelope::to_bytes`] makes of the same reply.
    pub fn encode_envelope<'t>(
        &self,
        sign: Option<&ReplySigner<'t>>,
    ) -> Result<Vec<u8>, serde_json::Error> {
        // Room for the envelope, the fields and small outputs (and a signature and token),
        // so that a typical reply is written without growing the buffer.
        let room = if sign.is_some() { 1024 } else { 384 };
        let mut out = Vec::with_capacity(room + self.statusmsg.len());
        // The protocol name needs no JSON escaping.
        out.extend_from_slice(b"{\"protocol\":\"");
        out.extend_from_slice(REPLY_PROTOCOL.as_bytes());
        out.extend_from_slice(b"\",\"reply\":");
        let start = out.len();
        self.write_json(&mut out)?;
        match sign {
            None => out.extend_from_slice(b",\"signature\":null,\"token\":null}"),
            Some(sign) => {
                let (signature, token) = sign(&out[start..]);
                out.extend_from_slice(b",\"signature\":");
                write_json_str(&mut out, &signature)?;
                out.extend_from_slice(b",\"token\":");
                write_json_str(&mut out, token)?;
                out.push(b'}');
            }
        }
        Ok(out)
    }

    /// The reply object, written as serde_json writes a [`Reply`] (keys in declaration
    /// order, no whitespace) but without the serializer's machinery: every node writes one
    /// for every request.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let mut numbers = itoa::Buffer::new();
        out.extend_from_slice(b"{\"request_id\":");
        write_json_str(out, self.request_id)?;
        out.extend_from_slice(b",\"sender\":");
        write_json_str(out, self.sender)?;
        out.extend_from_slice(b",\"agent\":");
        write_json_str(out, self.agent)?;
        out.extend_from_slice(b",\"action\":");
        write_json_str(out, self.action)?;
        out.extend_from_slice(b",\"time\":");
        out.extend_from_slice(numbers.format(self.time).as_bytes());
        out.extend_from_slice(b",\"statuscode\":");
        out.extend_from_slice(numbers.format(self.statuscode.code()).as_bytes());
        out.extend_from_slice(b",\"statusmsg\":");
        write_json_str(out, self.statusmsg)?;
        out.extend_from_slice(b",\"data\":");
        serde_json::to_writer(&mut *out, self.data)?;
        out.push(b'}');
        Ok(())
    }
}

/// Writes `text` as a JSON string: as it is between quotes when nothing in it needs escaping
/// (the usual case: ids, names, "OK"), else as serde_json escapes it.
fn write_json_str(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    if crate::json_text::special_at(text.as_bytes()).is_none() {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, text)
    }
}

impl Reply {
    /// This reply's fields, borrowed.
    pub fn fields(&self) -> ReplyFields<'_> {
        ReplyFields {
            request_id: &self.request_id,
            sender: &self.sender,
            agent: &self.agent,
            action: &self.action,
            time: self.time,
            statuscode: self.statuscode,
            statusmsg: &self.statusmsg,
            data: &self.data,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::envelope::{ReplyEnvelope, RequestEnvelope};
    use serde_json::json;

    pub(crate) fn sample_request() -> Request<'static> {
        let mut filter = Filter::default();
        filter.add_fact("country=uk").unwrap();
        filter.agent.push("rpcutil".into());
        Request {
            id: new_request_id().into(),
            collective: "mco".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            data: Map::new(),
            filter,
            caller: "user=alice".into(),
            sender: "admin1.example.net".into(),
            time: 1_763_856_000_123,
            ttl: 60,
            reply_to: crate::subjects::reply("mco", "user=alice", "x").into(),
            targets: None,
        }
    }

    #[test]
    fn request_round_trips_through_its_envelope() {
        let request = sample_request();
        let bytes = RequestEnvelope::unsigned(&request)
            .unwrap()
            .to_bytes()
            .unwrap();
        let envelope = RequestEnvelope::decode(&bytes).unwrap();
        assert_eq!(envelope.body().unwrap(), request);
        assert!(envelope.signature.is_none());
        // The signed bytes are the request's own serialisation, untouched.
        assert_eq!(envelope.body_bytes(), serde_json::to_vec(&request).unwrap());
    }

    #[test]
    fn reply_round_trips_through_its_envelope() {
        let reply = Reply {
            request_id: "abc".into(),
            sender: "web1".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 1,
            statuscode: StatusCode::InvalidData,
            statusmsg: "bad".into(),
            data: json!({"x": 1}),
        };
        let bytes = ReplyEnvelope::unsigned(&reply).unwrap().to_bytes().unwrap();
        let parsed = ReplyEnvelope::decode(&bytes).unwrap().body().unwrap();
        assert_eq!(parsed, reply);
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(raw["reply"]["statuscode"], json!(4));
    }

    #[test]
    fn reply_fields_encode_exactly_as_the_reply_envelope() {
        let reply = Reply {
            request_id: "abc".into(),
            sender: "web1".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 1_763_856_000_140,
            statuscode: StatusCode::Aborted,
            statusmsg: "quote \" and \u{e9}, a\ttab and \u{1}".into(),
            data: json!({"pong": 1, "nested": {"a": [1, "b"]}}),
        };
        let expected = ReplyEnvelope::unsigned(&reply).unwrap().to_bytes().unwrap();
        assert_eq!(reply.fields().encode_envelope(None).unwrap(), expected);
        let round = ReplyEnvelope::decode(&expected).unwrap().body().unwrap();
        assert_eq!(round, reply);
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            RequestEnvelope::decode(&big),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            RequestEnvelope::decode(b"{nope"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            RequestEnvelope::decode(b"[]"),
            Err(DecodeError::Json(_))
        ));
        let wrong = br#"{"protocol":"other","request":{}}"#;
        assert!(matches!(
            RequestEnvelope::decode(wrong),
            Err(DecodeError::Protocol { .. })
        ));
        let bad_status = br#"{"protocol":"mco.reply.v1","reply":{"request_id":"a","sender":"b","agent":"c","action":"d","time":1,"statuscode":9,"statusmsg":"","data":{}}}"#;
        let envelope = ReplyEnvelope::decode(bad_status).unwrap();
        assert!(envelope.body().is_err());
    }

    #[test]
    fn invalid_request_fields_are_named() {
        type Mutation = Box<dyn Fn(&mut Request<'static>)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("id", Box::new(|r| r.id = "".into())),
            ("collective", Box::new(|r| r.collective = "a.b".into())),
            ("agent", Box::new(|r| r.agent = "x>".into())),
            ("action", Box::new(|r| r.action = "".into())),
            ("sender", Box::new(|r| r.sender = "a b".into())),
            ("ttl", Box::new(|r| r.ttl = 0)),
            ("reply_to", Box::new(|r| r.reply_to = "a.>".into())),
        ];
        for (field, mutate) in cases {
            let mut request = sample_request();
            mutate(&mut request);
            match request.validate() {
                Err(DecodeError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn ttl_expiry_is_inclusive_of_the_last_millisecond() {
        let request = sample_request();
        assert!(!request.is_expired(request.time + 60_000));
        assert!(request.is_expired(request.time + 60_001));
    }

    #[test]
    fn status_codes_map_both_ways() {
        for code in 0..=5 {
            assert_eq!(StatusCode::from_code(code).unwrap().code() as u64, code);
        }
        assert!(StatusCode::from_code(6).is_none());
    }
}
