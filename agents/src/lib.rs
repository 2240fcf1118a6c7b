//! Agents: the named sets of actions a node serves.
//!
//! An agent implements [`Agent`]: it has a DDL (which describes its actions, inputs, outputs
//! and timeout) and answers calls. The node validates inputs against the DDL before calling,
//! enforces the DDL timeout, and fills output defaults afterwards, so an agent only does its
//! work. Built-in agents live one per file and are registered in [`registry`]: `rpcutil`
//! and `discovery` on every node; `package`, `service` and `puppet` (the agents operators
//! use every day, on the node's own tools) where the node has those tools, configured by
//! [`registry::AgentSettings`].
//!
//! Agents never touch the broker: everything they may know about the node comes through the
//! [`NodeInfo`] in their [`ActionContext`].
//!
//! ```
//! use mco_agents::registry::builtin_agents;
//! let names: Vec<String> = builtin_agents().iter().map(|a| a.ddl().metadata.name.clone()).collect();
//! assert!(names.contains(&"rpcutil".to_string()));
//! ```
#![warn(missing_docs)]

pub mod agent;
pub mod data;
pub mod discovery;
pub mod external;
pub mod fstat;
pub mod package;
pub mod providers;
pub mod puppet;
pub mod registry;
pub mod rpcutil;
pub mod service;
#[cfg(test)]
mod testing;

pub use agent::{ActionContext, Agent, AgentSummary, EventEmitter, NodeInfo, Outcome};
