//! Discovery: turning a filter into a list of nodes.
//!
//! The methods (`--dm`, see [`method::MethodKind`]) and the pieces they are made of:
//! - broadcast: collecting the senders of discovery replies until the discovery timeout, or
//!   until replies stop arriving for a short *window* after the last one ([`collect`]); the
//!   client feeds it the replies it reads from NATS;
//! - flatfile and stdin: node lists in the formats people and programs write
//!   ([`nodelist::parse`]), narrowed by identity filters ([`method::select_from_list`]);
//! - external: a program speaking Choria's external discovery protocol ([`external`]);
//! - registry: the database the registry service fills from node registrations, answering
//!   every filter with the nodes' own evaluator ([`registry::Registry`]), over TLS to
//!   PostgreSQL as libpq's `sslmode`/`sslrootcert` say (the private `pg_tls` module);
//! - choosing part of the result: `--limit-nodes` and batch slices ([`limit`]).
//!
//! A method that cannot serve a filter refuses it ([`DiscoveryError::Unsupported`]).
//! This crate does not talk to NATS: the client supplies the broadcast replies, and the
//! registry service the registrations.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use mco_discovery::{collect, Window};
//! let replies = futures::stream::iter(["web1", "web2", "web1"].map(String::from));
//! let found = collect(replies, Window::new(Duration::from_secs(2), Duration::from_millis(300))).await;
//! assert_eq!(found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["web1", "web2"]);
//! # }
//! ```
#![warn(missing_docs)]

pub mod external;
pub mod limit;
pub mod method;
pub mod nodelist;
#[cfg(feature = "registry")]
mod pg_tls;
#[cfg(feature = "registry")]
pub mod registry;

use std::collections::HashSet;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// Why discovery could not produce a node list.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// A node list (file, stdin) could not be read as one.
    #[error("{origin}: {reason}")]
    InvalidNodeList {
        /// Where the list came from (a file name, or stdin).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The method cannot serve (part of) the filter.
    #[error("the {method} discovery method cannot use {what}; use --dm broadcast or --dm registry for such filters")]
    Unsupported {
        /// The method.
        method: String,
        /// What it cannot do.
        what: String,
    },
    /// A discovery option or method name is wrong.
    #[error("{0}")]
    InvalidOption(String),
    /// The external discovery program failed.
    #[error("external discovery {command}: {reason}")]
    External {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
}

/// When to stop collecting discovery replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Never wait longer than this in total.
    pub timeout: Duration,
    /// Stop when no new reply arrived for this long after the last one. Until the first
    /// reply arrives only `timeout` applies, so a slow fleet is not cut short.
    pub quiet: Duration,
    /// Stop after this many distinct nodes.
    pub limit: Option<usize>,
}

impl Window {
    /// A window with no node limit.
    pub fn new(timeout: Duration, quiet: Duration) -> Window {
        Window {
            timeout,
            quiet,
            limit: None,
        }
    }
}

/// Collects distinct senders from `replies` within `window`; each with the time it took to
/// arrive, in arrival order. Duplicates are ignored.
pub async fn collect<S>(replies: S, window: Window) -> Vec<(String, Duration)>
where
    S: Stream<Item = String>,
{
    let start = Instant::now();
    let deadline = start + window.timeout;
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut last: Option<Instant> = None;
    futures::pin_mut!(replies);
    loop {
        if window.limit.is_some_and(|l| found.len() >= l) {
            break;
        }
        let until = match last {
            Some(at) => deadline.min(at + window.quiet),
            None => deadline,
        };
        match tokio::time::timeout_at(until, replies.next()).await {
            Ok(Some(sender)) => {
                let now = Instant::now();
                if seen.insert(sender.clone()) {
                    found.push((sender, now - start));
                    last = Some(now);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn delayed(items: Vec<(u64, &'static str)>) -> impl Stream<Item = String> {
        stream::unfold(items.into_iter(), |mut it| async move {
            let (delay, name) = it.next()?;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Some((name.to_string(), it))
        })
        .chain(stream::pending())
    }

    fn names(found: &[(String, Duration)]) -> Vec<&str> {
        found.iter().map(|f| f.0.as_str()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn ends_a_quiet_window_after_the_last_reply() {
        let start = Instant::now();
        let found = collect(
            delayed(vec![(10, "a"), (50, "b"), (100, "c"), (1000, "late")]),
            Window::new(Duration::from_secs(2), Duration::from_millis(300)),
        )
        .await;
        assert_eq!(names(&found), ["a", "b", "c"]);
        assert_eq!(start.elapsed(), Duration::from_millis(460));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_the_full_timeout_for_a_first_reply() {
        let start = Instant::now();
        let found = collect(
            delayed(vec![(1500, "slow")]),
            Window::new(Duration::from_secs(2), Duration::from_millis(300)),
        )
        .await;
        assert_eq!(names(&found), ["slow"]);
        assert_eq!(start.elapsed(), Duration::from_millis(1800));
        let start = Instant::now();
        assert!(collect(
            delayed(vec![]),
            Window::new(Duration::from_secs(2), Duration::from_millis(300))
        )
        .await
        .is_empty());
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_timeout_and_honours_limits_and_duplicates() {
        let start = Instant::now();
        let steady: Vec<(u64, &str)> = vec![
            (200, "a"),
            (200, "b"),
            (200, "c"),
            (200, "d"),
            (200, "e"),
            (200, "f"),
            (200, "g"),
            (200, "h"),
            (200, "i"),
            (200, "j"),
            (200, "k"),
        ];
        let found = collect(
            delayed(steady),
            Window::new(Duration::from_secs(2), Duration::from_millis(300)),
        )
        .await;
        assert_eq!(found.len(), 10);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let mut window = Window::new(Duration::from_secs(2), Duration::from_millis(300));
        window.limit = Some(2);
        let found = collect(
            delayed(vec![(1, "a"), (1, "a"), (1, "b"), (1, "c")]),
            window,
        )
        .await;
        assert_eq!(names(&found), ["a", "b"]);
    }
}
