//! The mco web gateway: an HTTP API over `mco-client` (the agents and their DDLs, discovery,
//! calls collected or streamed as Server-Sent Events or NDJSON), bearer tokens mapped to
//! callers whose own mco keys sign their requests, and a browser console served from the
//! binary. Configured from the same `client.toml` as `mco`, plus its `[web]` table.
//!
//! Not for: anything the library does not do (the gateway adds HTTP, callers and limits, no
//! fleet logic), and not an authorization layer over the nodes' policies.
#![warn(missing_docs)]

pub mod api;
pub mod callers;
pub mod config;
pub mod console;
pub mod error;
pub mod guard;
pub mod openapi;
pub mod request;
pub mod serve;
pub mod stream;
