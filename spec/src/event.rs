//! Events: what changed on a node, said by the node the moment it changed, on
//! `<collective>.event.<category>.<name>.<identity>` ([`crate::subjects::event`]).
//!
//! An event's type is two names, `<category>.<name>` (`node.started`,
//! `service.state_changed`, `puppet.run_finished`), so that a subscriber selects a category
//! or a type with one subject wildcard ([`crate::subjects::events_matching`]) and a broker
//! can let a node publish only under its own identity. An event travels in the envelope of
//! replies and registrations, signed by the node's key with its server token: a receiver
//! believes an event only from the node it names.
//!
//! # Wire format
//!
//! ```json
//! {
//!   "protocol": "mco.event.v1",
//!   "event": {
//!     "id": "0d6f5c3e9b5a4f0e8a1c2b3d4e5f6a7b",
//!     "type": "service.state_changed",
//!     "identity": "web1.example.net",
//!     "collective": "mco",
//!     "time": 1763856000123,
//!     "severity": "info",
//!     "data": {"service": "httpd", "state": "running", "action": "restart"}
//!   },
//!   "signature": "<base64>",
//!   "token": "mco1..."
//! }
//! ```
//!
//! Not for: publishing (mcod does), keeping a history (a JetStream stream does) or reading
//! them (the client's `events`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::envelope::EventEnvelope;
use crate::envelope::{EventKind, Kind};
use crate::message::DecodeError;
use crate::subjects::{is_valid_identity, is_valid_token};

/// The `protocol` value of an event envelope.
pub const EVENT_PROTOCOL: &str = <EventKind as Kind>::PROTOCOL;

/// The longest name of each half of a type, in bytes.
pub const MAX_TYPE_NAME_BYTES: usize = 32;

/// How much an event matters, in syslog's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Detail for debugging.
    Debug,
    /// Something happened as expected.
    Info,
    /// Something happened that may need a look.
    Warning,
    /// Something failed.
    Error,
    /// Something failed that needs a person now.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "debug" => Severity::Debug,
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            "critical" => Severity::Critical,
            other => {
                return Err(format!(
                    "{other:?} is not a severity (debug, info, warning, error, critical)"
                ))
            }
        })
    }
}

/// Something that changed on a node. See the [module docs](self) for the wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (32 lowercase hex digits): a receiver recognises an event it saw twice.
    pub id: String,
    /// `<category>.<name>`, see [`is_valid_type`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The node it happened on.
    pub identity: String,
    /// The collective it was published in.
    pub collective: String,
    /// When it happened, Unix milliseconds.
    pub time: u64,
    /// How much it matters.
    pub severity: Severity,
    /// What happened (a JSON object; its keys depend on the type).
    pub data: Value,
}

impl Event {
    /// Checks the fields a receiver relies on; [`EventEnvelope::body`] calls it.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let invalid = |field: &'static str, reason: String| DecodeError::Invalid { field, reason };
        if self.id.len() != 32
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("id", "must be 32 lowercase hex digits".into()));
        }
        if !is_valid_type(&self.kind) {
            return Err(invalid(
                "type",
                format!("{:?} is not <category>.<name> (lowercase letters, digits and _, each starting with a letter, at most {MAX_TYPE_NAME_BYTES} bytes)", self.kind),
            ));
        }
        if !is_valid_identity(&self.identity) {
            return Err(invalid(
                "identity",
                format!("{:?} is not a valid identity", self.identity),
            ));
        }
        if !is_valid_token(&self.collective) {
            return Err(invalid(
                "collective",
                format!("{:?} is not a valid collective name", self.collective),
            ));
        }
        if !self.data.is_object() {
            return Err(invalid("data", "must be a JSON object".into()));
        }
        Ok(())
    }
}

/// Whether `name` is one half of a type: a lowercase letter, then lowercase letters, digits
/// and `_`, at most [`MAX_TYPE_NAME_BYTES`] bytes.
fn is_type_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_TYPE_NAME_BYTES
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `kind` is a valid event type: `<category>.<name>`, two [type names](is_type_name).
pub fn is_valid_type(kind: &str) -> bool {
    matches!(kind.split_once('.'), Some((category, name)) if is_type_name(category) && is_type_name(name))
}

/// A selection of event types: `node.started`, `puppet.*` (a category), `*.started` or `*`
/// (everything); a lone category (`puppet`) means `puppet.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePattern {
    category: Option<String>,
    name: Option<String>,
}

impl TypePattern {
    /// Every type.
    pub fn all() -> TypePattern {
        TypePattern {
            category: None,
            name: None,
        }
    }

    /// The NATS wildcard tokens `<category>.<name>` for the subject.
    pub fn subject_tokens(&self) -> String {
        format!(
            "{}.{}",
            self.category.as_deref().unwrap_or("*"),
            self.name.as_deref().unwrap_or("*")
        )
    }

    /// Whether `kind` is selected.
    pub fn matches(&self, kind: &str) -> bool {
        let Some((category, name)) = kind.split_once('.') else {
            return false;
        };
        self.category.as_deref().is_none_or(|c| c == category)
            && self.name.as_deref().is_none_or(|n| n == name)
    }
}

impl std::str::FromStr for TypePattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let part = |p: &str| -> Result<Option<String>, String> {
            match p {
                "*" => Ok(None),
                p if is_type_name(p) => Ok(Some(p.to_string())),
                _ => Err(format!(
                    "{s:?} is not an event type pattern: <category>.<name>, either of which may be *, e.g. puppet.* or node.started"
                )),
            }
        };
        let (category, name) = s.split_once('.').unwrap_or((s, "*"));
        Ok(TypePattern {
            category: part(category)?,
            name: part(name)?,
        })
    }
}

impl std::fmt::Display for TypePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.subject_tokens())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Event {
        Event {
            id: crate::message::new_request_id(),
            kind: "service.state_changed".into(),
            identity: "web1.example.net".into(),
            collective: "mco".into(),
            time: 1,
            severity: Severity::Info,
            data: json!({"service": "httpd"}),
        }
    }

    #[test]
    fn an_event_checks_its_fields() {
        assert!(event().validate().is_ok());
        for (broken, field) in [
            (
                Event {
                    id: "x".into(),
                    ..event()
                },
                "id",
            ),
            (
                Event {
                    kind: "service".into(),
                    ..event()
                },
                "type",
            ),
            (
                Event {
                    kind: "a.b.c".into(),
                    ..event()
                },
                "type",
            ),
            (
                Event {
                    kind: "Service.x".into(),
                    ..event()
                },
                "type",
            ),
            (
                Event {
                    kind: format!("a.{}", "b".repeat(33)),
                    ..event()
                },
                "type",
            ),
            (
                Event {
                    identity: "a b".into(),
                    ..event()
                },
                "identity",
            ),
            (
                Event {
                    collective: "a.b".into(),
                    ..event()
                },
                "collective",
            ),
            (
                Event {
                    data: json!([1]),
                    ..event()
                },
                "data",
            ),
        ] {
            match broken.validate() {
                Err(DecodeError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{broken:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn type_patterns_select_by_category_and_name() {
        let p = |s: &str| s.parse::<TypePattern>().unwrap();
        assert_eq!(p("puppet.*").subject_tokens(), "puppet.*");
        assert_eq!(p("puppet").subject_tokens(), "puppet.*");
        assert_eq!(p("*").subject_tokens(), "*.*");
        assert_eq!(p("*.started").subject_tokens(), "*.started");
        assert!(p("puppet.*").matches("puppet.run_finished"));
        assert!(!p("puppet.*").matches("node.started"));
        assert!(p("*.started").matches("node.started"));
        assert!(TypePattern::all().matches("a.b"));
        for bad in ["", "a.b.c", "A.*", "puppet.>", "puppet.", ".x"] {
            assert!(bad.parse::<TypePattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn severities_order_and_read_by_name() {
        assert!(Severity::Critical > Severity::Warning);
        assert_eq!("warning".parse::<Severity>(), Ok(Severity::Warning));
        assert!("fatal".parse::<Severity>().is_err());
        assert_eq!(
            serde_json::to_value(Severity::Error).unwrap(),
            json!("error")
        );
    }
}
