//! `mcod`, the mco node daemon, as a library.
//!
//! - [`config`]: the TOML configuration (`server/mcod.example.toml` documents every key).
//! - [`facts`]: facts (built-in, merged under YAML/JSON files) and classes, reloaded when the
//!   files change.
//! - [`node`]: the node's state (identity, agents, facts, counters), which agents see
//!   through [`mco_agents::NodeInfo`].
//! - [`pipeline`]: what happens to one message, without any broker: decode, collective, TTL,
//!   filter, DDL validation, the action with its timeout, the reply.
//! - [`security`], [`policy`], [`replay`], [`audit`]: signatures and tokens, action policies,
//!   replay protection and the audit log, as the pipeline applies them.
//! - [`daemon`]: the NATS connection, subscriptions, bounded concurrency and graceful
//!   shutdown around the pipeline.
//! - [`reload`]: the agents at start, and facts, policies and external agents again on
//!   SIGHUP, keeping what is in force when a file no longer loads.
//! - [`registration`]: publishing the node's signed registration every few minutes.
//! - [`registry`]: the registry service (`mcod registry`), which verifies registrations and
//!   stores them in the registry database that `mco --dm registry` reads.
//!
//! It is not the client (that is `mco-client`) and holds no agent logic (that is
//! `mco-agents`).
#![warn(missing_docs)]

pub mod audit;
pub mod config;
pub mod daemon;
pub mod direct;
pub mod emit;
pub mod events;
pub mod facts;
pub mod node;
pub mod pipeline;
pub mod registration;
pub mod registry;
pub mod rejection;
pub mod reload;
pub mod replay;
pub mod security;
mod slots;
pub mod stats;

/// Action policies (the `mco-policy` crate), as the pipeline applies them.
pub use mco_policy as policy;

pub use config::{Config, ConfigError, Settings};
pub use daemon::{run, run_reloading, DaemonError};
pub use node::Node;
