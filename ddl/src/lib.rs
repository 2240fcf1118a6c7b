//! Agent descriptions (DDLs): what an agent's actions accept, return and summarise.
//!
//! mco reads DDLs in the JSON format that Choria uses, so existing DDLs load unmodified. A DDL
//! drives everything around an action: the CLI converts `key=value` arguments by the declared
//! types and checks them before sending, the node checks them again (never trusting the
//! client), replies get output defaults, the CLI decides which nodes to print and how to label
//! their data, and the client computes the declared aggregates over all replies.
//!
//! - [`load`]: reading a DDL as Choria does, with warnings for what mco does not enforce
//!   ([`AgentDdl::load`]), and strictly against the JSON Schema and semantically
//!   ([`load::lint`], [`AgentDdl::from_json`]), with findings that name the action and field.
//! - [`model`]: the DDL types ([`AgentDdl`], [`Action`], [`Input`], [`Output`]).
//! - [`validate`]: input validation and CLI value conversion, shared by client and node.
//! - [`validators`]: `shellsafe`, `ipv4address`, `ipv6address`, `ipaddress`, named validators
//!   such as `service_name`, and regular expressions.
//! - [`aggregate`]: `summary`, `boolean_summary`, `average`, `sum` over replies.
//! - [`plugins`]: validators and aggregate functions installed without recompiling
//!   (declarative in `validators.toml`, or executables run through `mco-runner`).
//! - [`doc`]: the text `mco plugin doc AGENT` prints.
//! - [`builtin`]: the DDLs mco ships (rpcutil, service, package, puppet).
//! - [`ruby`]: converting MCollective's Ruby agent DDLs to Choria's JSON
//!   (`mco plugin convert`), without running Ruby.
//!
//! It does no network I/O and knows nothing of NATS; the only file access is
//! [`AgentDdl::load`] and [`plugins::Plugins`] (its directory, and the plugin executables it
//! runs).
//!
//! ```
//! use mco_ddl::AgentDdl;
//! use serde_json::{json, Map};
//!
//! let ddl = AgentDdl::from_json(include_str!("../tests/data/service.json"), "service.json").unwrap();
//! let action = ddl.action("restart").unwrap();
//! let mut input = Map::new();
//! input.insert("service".into(), json!("httpd; rm -rf /"));
//! let err = action.validate_inputs(&mut input).unwrap_err();
//! assert_eq!(err.input, "service");
//! ```
#![warn(missing_docs)]

pub mod aggregate;
pub mod builtin;
pub mod doc;
pub mod load;
pub mod model;
pub mod plugins;
pub mod ruby;
pub mod validate;
pub mod validators;

pub use aggregate::{AggregateResult, Aggregator};
pub use load::{DdlError, Finding, FindingKind, Loaded};
pub use model::{Action, AgentDdl, Display, Input, InputType, Metadata, Output};
pub use plugins::Plugins;
pub use validate::{InputError, InputErrorKind};
