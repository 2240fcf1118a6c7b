//! The mco wire protocol, and nothing else.
//!
//! This crate defines what travels over the broker and how a node decides whether a request
//! is meant for it:
//!
//! - [`subjects`]: the NATS subject names for broadcast, direct, reply and registration traffic.
//! - [`envelope`]: the one signed envelope requests, replies and registrations travel in.
//! - [`message`]: the request and reply types and status codes.
//! - [`request_reader`]: a shortcut past serde for requests in the shape clients write them.
//! - [`targets`]: the compact, signed set of nodes a direct request is for.
//! - [`security`]: keys, issuer-signed tokens, and request/reply signatures.
//! - [`filter`]: the filter model (`-F`, `-C`, `-I`, `-A`, `-W`), its parser and the one
//!   evaluator that every component uses to decide a match.
//! - [`compound`]: `-S` expressions (`and`, `or`, `not`, parentheses, facts, classes and
//!   data-plugin calls), evaluated by the same evaluator.
//! - [`regex_dialect`]: reading Ruby/Go regular expressions as those engines do.
//! - [`registration`]: what a node tells registry services about itself, signed like a reply.
//! - [`event`]: what changed on a node, signed like a reply.
//!
//! It is deliberately free of I/O: it does not know NATS, files or clocks beyond
//! [`message::now_millis`]. Everything here is testable without a broker.
//!
//! ```
//! use mco_spec::filter::{Filter, NodeView};
//! use serde_json::json;
//!
//! let mut filter = Filter::default();
//! filter.add_fact("country=uk").unwrap();
//! filter.identity.push("/^web/".to_string());
//! let compiled = filter.compile().unwrap();
//!
//! let facts = json!({"country": "uk"});
//! let node = NodeView { identity: "web1", facts: &facts, classes: &[], agents: &[] };
//! assert!(compiled.matches(&node));
//! ```
#![warn(missing_docs)]

pub mod compound;
pub mod envelope;
pub mod event;
pub mod filter;
mod json_text;
pub mod message;
mod name_bytes;
pub mod regex_dialect;
pub mod registration;
pub mod request_reader;
pub mod security;
pub mod subjects;
pub mod targets;

pub use envelope::{Envelope, EventEnvelope, RegistrationEnvelope, ReplyEnvelope, RequestEnvelope};
pub use filter::{CompiledFilter, FactFilter, FactOperator, Filter, FilterError, NodeView};
pub use message::{DecodeError, Reply, Request, StatusCode, MAX_MESSAGE_BYTES};
pub use targets::{TargetProof, TargetSet, Targets};
