//! The mco client library: find nodes, call their agents, stream and collect their replies.
//! Everything the `mco` command line does with a fleet, it does through this crate.
//!
//! # Connect
//!
//! A [`Client`] is a cheap `Clone` handle over one NATS connection, built by a
//! [`ClientBuilder`] ending in `.connect().await`. A web application keeps one in its state
//! and shares it between requests. Start from the same `client.toml` the command line reads
//! ([`ClientBuilder::from_default_config`] looks where `mco` looks, [`ClientBuilder::from_config`]
//! takes a path); every key of it is also a builder method.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mco_client::Client;
//!
//! let client = Client::builder()
//!     .broker("nats://127.0.0.1:4222")
//!     .key_file("/etc/mco/webapp.key")
//!     .token_file("/etc/mco/webapp.token")
//!     .issuer_keys(["/etc/mco/issuer.pub"])
//!     .connect()
//!     .await?;
//! // or: mco_client::ClientBuilder::from_config("/etc/mco/client.toml")?.connect().await?
//! # let _ = client; Ok(()) }
//! ```
//!
//! # Call and collect
//!
//! [`Client::call`] sends a [`Call`]; inputs are converted and checked against the agent's
//! DDL before anything is sent (the same check the node runs), so a bad input is an
//! [`CallErrorKind::InvalidInput`] error and no node hears of it. [`Replies::collect`]
//! gathers the replies into a [`CallResult`] with [`Stats`], the DDL's aggregates
//! ([`CallResult::aggregates`]) and every named node's [`NodeOutcome`]
//! ([`CallResult::by_node`]). A node that did not answer is a row in the stats, not an error;
//! a failed action is a reply with a status code.
//!
//! ```no_run
//! # async fn demo(client: mco_client::Client) -> Result<(), mco_client::CallError> {
//! use mco_client::{Call, Filter, StatusCode};
//!
//! let mut filter = Filter::default();
//! filter.add_with("country=uk role::web")?;
//! let result = client
//!     .call(Call::new("service", "status").arg("service", "nginx").filter(filter))
//!     .await?
//!     .collect()
//!     .await;
//! for reply in result.replies.iter().filter(|r| r.statuscode == StatusCode::Ok) {
//!     println!("{}: {}", reply.sender, reply.data["status"]);
//! }
//! for summary in result.aggregates() {
//!     print!("{}", summary.render());
//! }
//! println!("{} of {} answered", result.stats.responded, result.stats.discovered);
//! # Ok(()) }
//! ```
//!
//! # Stream
//!
//! [`Replies`] is a `futures::Stream` of replies as they arrive; [`Replies::next_event`]
//! also gives batch progress ([`Event`]). Dropping it ends the call.
//!
//! ```no_run
//! # async fn demo(client: mco_client::Client) -> Result<(), mco_client::CallError> {
//! use futures::StreamExt;
//! use mco_client::Call;
//!
//! let replies = client.call(Call::new("rpcutil", "ping")).await?;
//! let failed: Vec<String> = replies
//!     .filter(|r| futures::future::ready(!r.statuscode.is_ok()))
//!     .map(|r| r.sender)
//!     .collect()
//!     .await;
//! # let _ = failed; Ok(()) }
//! ```
//!
//! # Discovery
//!
//! A call discovers its nodes with the client's default method (a broadcast `discovery`
//! ping, ending as soon as the nodes expected from the registry or the discovery cache have
//! answered, else after a multiple of the time the replies took: [`DiscoveryEnd`]) unless it
//! names them
//! ([`Call::nodes`]) or another [`Discovery`]: a node list already read, the registry
//! database (cargo feature `registry`, on by default), or an external program.
//! [`Client::discover_with`] discovers without calling. Direct requests wait in a JetStream
//! work queue for nodes that are down ([`Call::ttl`] bounds how long); [`Call::batch`] sends
//! them in slices.
//!
//! # Elsewhere
//!
//! [`Client::send`] sends without waiting and [`Client::listen`] reads the replies of that
//! request in another task or process: what a web application's request handler and worker
//! need.
//!
//! # Errors
//!
//! Each operation has its error type with a `kind()`: [`ConnectError`]
//! ([`ConnectErrorKind`]: invalid options, configuration, credentials, broker
//! authentication, broker unavailable), [`CallError`] ([`CallErrorKind`]: invalid input,
//! unknown collective, DDL, discovery, broker, not queued), [`DiscoveryError`]
//! ([`DiscoveryErrorKind`]). A web handler maps the kinds to status codes (invalid input to
//! 400, an unavailable broker to 503) without parsing messages.
//!
//! # Features
//!
//! `registry` (default): discovery from the registry database, which brings the SQLite and
//! PostgreSQL clients. A web application that does not read the registry depends on
//! `mco-client` with `default-features = false`.
#![warn(missing_docs)]

pub mod accept;
pub mod builder;
pub mod call;
pub mod client;
pub mod config;
pub mod ddl;
pub mod discovery;
pub mod error;
pub mod events;
pub mod link;
pub mod listen;
pub mod plan;
pub mod replies;
pub mod result;

pub use accept::ReplyRejected;
pub use builder::{ClientBuilder, ClientOptions, DiscoveryEnd};
pub use call::Call;
pub use client::Client;
pub use ddl::{ActionDdl, Ddls};
pub use discovery::{Discovered, Discovery, Pinged};
pub use error::{
    CallError, CallErrorKind, ConnectError, ConnectErrorKind, DiscoveryError, DiscoveryErrorKind,
    Error,
};
pub use events::{EventItem, EventQuery, EventRejected, ReceivedEvent, Since};
pub use link::{connect_as, QueueUse};
pub use listen::{Listener, Sent};
pub use plan::{Batch, Limit};
pub use replies::{Event, Replies, Stopper};
pub use result::{
    reply_json, stats_json, CallResult, Mode, ModeReason, NodeOutcome, Stats, Warning,
};

pub use mco_ddl::{AggregateResult, InputError, InputErrorKind};
pub use mco_discovery::limit::Size;
pub use mco_discovery::method::MethodKind;
pub use mco_discovery::Ended;
pub use mco_spec::{Filter, FilterError, Reply, StatusCode};
