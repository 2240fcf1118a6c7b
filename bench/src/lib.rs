//! Instruments for mco's speed: a fleet simulator and the end-to-end benchmark.
//!
//! - [`sim`]: many node identities in one process, each with its own facts, keys and
//!   subscriptions, answering through `mcod`'s request pipeline. A load generator for
//!   benchmarks and scale tests (binary `mco-sim`), not a node.
//! - [`raw`]: the raw-NATS floor for the same message patterns and sizes (one publish, N
//!   subscribers, N replies; request/reply to one), with and without the signature work a
//!   request and its replies cannot avoid.
//! - [`keys`]: an issuer and the credentials it signs, in memory.
//! - [`measure`]: samples, percentiles, process memory, the figures table.
//! - [`discovery`]: the real `mco`'s wall time with broadcast discovery (warm cache, none,
//!   fixed window) against real `mcod` and simulated fleets, beside the raw floor.
//! - [`broker`]: waiting until the broker has processed a connection's subscriptions.
//!
//! The benchmark binary `mco-bench` starts its own `nats-server`, runs mco and the raw floor
//! in the same run and prints their ratios; `bench/README.md` records the command and the
//! figures. Micro-benchmarks of the hot paths are criterion benches in the crates that own
//! them (`spec/benches`, `ddl/benches`).
//!
//! Not for production use: the simulator shares connections and agents between identities
//! and keeps its keys in memory.

pub mod broker;
pub mod discovery;
pub mod keys;
pub mod measure;
pub mod raw;
pub mod sim;
