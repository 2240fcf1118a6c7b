//! Test support: real parts, started per test and stopped when dropped.
//!
//! - [`NatsServer`]: a real `nats-server` (JetStream on by default) on a free loopback port
//!   with a temporary store; it can be stopped and started again on the same port and store.
//! - [`NatsCluster`]: several of them routed into one JetStream cluster.
//! - [`SimulatedFleet`]: a real `mco-sim` serving thousands of node identities.
//! - [`Mcod`]: a real `mcod` process with its own config, facts and classes files.
//! - [`Fleet`]: a broker, several daemons and a client configuration, with [`Fleet::mco`] to
//!   run the real `mco` binary with a time limit.
//!
//! - [`Postgres`]: a real PostgreSQL server from the machine's binaries, in a temporary
//!   directory on a free loopback port, optionally with TLS ([`PostgresTls`]).
//! - [`Netns`]: a network namespace with a veth link to the host that can be cut, for
//!   real network partitions.
//! - [`TestCa`]: a certificate authority made with the real `openssl`, for TLS tests.
//! - [`RecordingProxy`]: a TCP proxy that records what crosses it, as someone on the network
//!   path would see it; [`DelayProxy`], one that delivers a client's bytes late, for a node
//!   on a distant link.
//! - [`RegistryService`]: a real `mcod registry` process storing a fleet's registrations.
//! - [`web::WebGateway`]: a real `mco-web` gateway in front of a fleet, with callers and tokens.
//!
//! - [`require_program`]: a tool a test needs, or a panic saying how to install it.
//! - [`MachineLock`]: serialises tests that change the machine itself (its package database)
//!   across test threads and test processes.
//!
//! When `nats-server` is missing, starting one panics with how to install it: a test never
//! passes silently without a broker. Every child process is killed when its owner is dropped,
//! and also if the test process dies (`PR_SET_PDEATHSIG`).
//!
//! Each part is its own module (`nats`, `mcod`, `fleet`, `run`, `postgres`, `registry`,
//! `tls`, `proxy`, `process`, `web`); everything is re-exported here.
//!
//! This crate is for tests only; it never touches the machine's own broker on port 4222.

mod cluster;
mod fleet;
mod mcod;
mod nats;
mod netns;
mod postgres;
mod process;
mod proxy;
mod registry;
mod run;
mod sim;
mod tls;
pub mod web;

pub use cluster::NatsCluster;
pub use fleet::{Broker, Fleet};
pub use mcod::{Keys, Mcod, NodeSpec};
pub use nats::NatsServer;
pub use netns::Netns;
pub use postgres::{postgres_bin_dir, Postgres, PostgresTls};
pub use process::{bin_path, free_port, nats_server_binary, require_program, rss_kb, MachineLock};
pub use proxy::{DelayProxy, Direction, RecordingProxy};
pub use registry::RegistryService;
pub use run::{finish, mco, mco_command, mcod, Run};
pub use sim::SimulatedFleet;
pub use tls::TestCa;
