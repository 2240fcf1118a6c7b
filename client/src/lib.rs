//! The mco client library: find nodes, call their agents, collect replies with statistics.
//!
//! A [`Client`] is a cheap `Clone` handle over one NATS connection, built by
//! [`Client::builder`]`…connect().await`. A web application keeps one in its state and shares
//! it between requests.
//!
//! - [`Client::discover`] finds the nodes that match a filter (broadcast discovery, ending a
//!   short quiet window after the last reply); [`Client::discover_with`] uses any
//!   [`Discovery`] method (a node list, an external program, the registry).
//! - [`Client::call`] sends a [`Call`] and returns [`Replies`], a stream of decoded replies
//!   (and batch progress, [`Replies::next_event`]) that ends when every contacted node
//!   answered or at the timeout; [`Replies::collect`] gathers them into a [`CallResult`] with
//!   [`Stats`] (discovered, responded, ok, failed, no response from, elapsed), and
//!   [`CallResult::by_node`] gives every named node its reply or "no response". A node that
//!   did not answer is a row in the stats, not an error; a failed action is a reply with a
//!   status code.
//! - Direct requests wait in a JetStream work queue for nodes that are down
//!   ([`Call::ttl`] bounds how long); [`Call::batch`] sends them in slices.
//! - [`Client::send`] sends without waiting and [`Client::listen`] reads the replies, in
//!   another task or process: what a web application's request handler and worker need.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mco_client::ClientError> {
//! use mco_client::{Call, Client};
//! use mco_spec::Filter;
//!
//! let client = Client::builder().broker("nats://127.0.0.1:4222").connect().await?;
//! let mut filter = Filter::default();
//! filter.add_fact("country=uk").map_err(mco_client::ClientError::from)?;
//! let result = client.call(Call::new("rpcutil", "ping").filter(filter)).await?.collect().await;
//! for reply in &result.replies {
//!     println!("{} {}", reply.sender, reply.data);
//! }
//! println!("{} of {} answered", result.stats.responded, result.stats.discovered);
//! # Ok(()) }
//! ```
//!
//! The `mco` command line is the `mco-cli` crate, built on this library.
#![warn(missing_docs)]

pub mod call;
pub mod client;
pub mod config;
pub mod direct;
pub mod discovery;

pub use call::{
    Batch, Call, CallResult, Event, Limit, Listener, Mode, NodeOutcome, Replies, Sent, Stats,
    Stopper,
};
pub use client::{Client, ClientBuilder, ClientError};
pub use direct::QueueUse;
pub use discovery::{Discovered, Discovery};
pub use mco_discovery::limit::Size;
pub use mco_discovery::method::MethodKind;
