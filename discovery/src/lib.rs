//! Discovery: turning a filter into a list of nodes.
//!
//! The methods (`--dm`, see [`method::MethodKind`]) and the pieces they are made of:
//! - broadcast: collecting the senders of discovery replies until the discovery timeout, or
//!   earlier when they are all in ([`collect`], [`Window`]): adaptively, when every node of an
//!   expected set has answered (the registry's, or [`cache`]'s record of who answered the same
//!   filter recently) or a multiple of the time the replies took, or after a fixed quiet
//!   window; the client feeds it the replies it reads from NATS;
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
//! use mco_discovery::{collect, Adaptive, Ended, Expected, Window};
//! let replies = futures::stream::iter(["web1", "web2", "web1"].map(String::from));
//! let expected = Expected { nodes: ["web1", "web2"].map(String::from).into(), ..Expected::default() };
//! let window = Window::adaptive(Duration::from_secs(2), Adaptive::default(), Some(expected));
//! let settle = || async {}; // the client: a round trip through the broker
//! let heard = collect(replies, window, tokio::time::Instant::now(), settle).await;
//! assert_eq!(heard.found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["web1", "web2"]);
//! assert_eq!(heard.ended, Ended::Closed);
//! # }
//! ```
#![warn(missing_docs)]

pub mod cache;
pub mod external;
pub mod limit;
pub mod method;
pub mod nodelist;
#[cfg(feature = "registry")]
mod pg_tls;
#[cfg(feature = "registry")]
pub mod registry;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use std::future::Future;
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

/// How broadcast discovery decides it has heard everyone (`discovery_end` in the client
/// configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending {
    /// End this long after the last new reply, whatever came before (MCollective's and
    /// Choria's windowed discovery; `discovery_end = "window"`).
    Quiet(Duration),
    /// End as soon as what is known says the fleet has answered ([`Adaptive`]).
    Adaptive(Adaptive),
}

/// The adaptive end of discovery (`discovery_end = "adaptive"`, the default).
///
/// With an [`Expected`] set that every node of has answered, and no node outside it, discovery
/// ends a grace after the last expected reply: `max(grace, a quarter of the time to that
/// reply)`, so a fleet that took 8 ms is done at 33 ms and one 150 ms away at 188 ms.
/// Otherwise (nothing expected, an expected node silent, a node nobody expected, or a fleet
/// known to have changed) it ends at `max(floor, factor × time to the latest new reply)` from
/// the ping: long enough for a node a couple of hundred milliseconds away, and growing with a
/// fleet whose replies keep coming (a large fleet's replies take long to arrive because the
/// client reads them one after another, so the factor is modest). While an expected node is
/// silent and the set says how long it took to answer last time ([`Expected::took`]), it also
/// waits `factor ×` that: a fleet whose replies pause (a loaded client, a busy broker) is not
/// given up on before it has had as long as it needed before, while a node that is down costs
/// no more than that. Until a first reply arrives only the timeout applies.
///
/// Whatever the rule, discovery ends only after the replies already on their way have been
/// read: [`collect`]'s `settle` (a round trip through the broker) comes back behind them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptive {
    /// The shortest discovery without a complete expected set.
    pub floor: Duration,
    /// How many times the time to the latest new reply discovery lasts at least.
    pub factor: f64,
    /// The shortest wait for new nodes once every expected node has answered.
    pub grace: Duration,
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive {
            floor: Duration::from_millis(200),
            factor: 1.5,
            grace: Duration::from_millis(25),
        }
    }
}

/// The nodes a discovery expects to hear from (from the registry, or the discovery cache of
/// [`cache`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Their identities.
    pub nodes: HashSet<String>,
    /// The fleet is known to have changed since the set was made (a node joined): the set
    /// may be incomplete, so it does not end discovery early.
    pub fleet_changed: bool,
    /// How long the slowest of them took to answer when the set was made (the discovery
    /// cache records it; a registry does not know it).
    pub took: Option<Duration>,
}

/// When to stop collecting discovery replies.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Never wait longer than this in total (`--dt`).
    pub timeout: Duration,
    /// What ends discovery before the timeout.
    pub ending: Ending,
    /// Stop after this many distinct nodes.
    pub limit: Option<usize>,
    /// Who should answer, if known (adaptive ending only).
    pub expected: Option<Expected>,
}

impl Window {
    /// A window that ends `quiet` after the last reply, with no node limit.
    pub fn new(timeout: Duration, quiet: Duration) -> Window {
        Window {
            timeout,
            ending: Ending::Quiet(quiet),
            limit: None,
            expected: None,
        }
    }

    /// An adaptive window ([`Adaptive`]) with no node limit.
    pub fn adaptive(timeout: Duration, adaptive: Adaptive, expected: Option<Expected>) -> Window {
        Window {
            timeout,
            ending: Ending::Adaptive(adaptive),
            limit: None,
            expected,
        }
    }
}

/// Why a discovery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// Every expected node answered, and the grace for new nodes passed.
    AllExpected {
        /// How many were expected.
        expected: usize,
    },
    /// The window after the replies passed (quiet, or adaptive without a complete expected
    /// set).
    Window,
    /// The timeout (`--dt`) passed.
    Cap,
    /// The node limit was reached.
    Limit,
    /// The replies stopped coming (the subscription ended).
    Closed,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::AllExpected { expected } => {
                write!(f, "all {expected} expected nodes answered")
            }
            Ended::Window => f.write_str("no new replies within the window"),
            Ended::Cap => f.write_str("the discovery timeout passed"),
            Ended::Limit => f.write_str("the node limit was reached"),
            Ended::Closed => f.write_str("the replies ended"),
        }
    }
}

/// What [`collect`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Distinct senders, each with the time from `started` to its reply, in arrival order.
    pub found: Vec<(String, Duration)>,
    /// Expected nodes that did not answer, sorted.
    pub missing: Vec<String>,
    /// Why collection stopped.
    pub ended: Ended,
}

/// Collects distinct senders from `replies` within `window`, timing them from `started`
/// (when the ping was published). Duplicates are ignored.
///
/// Before ending (other than at the timeout or the node limit), it awaits `settle`, which
/// must return once every reply already sent towards the collector can be read from
/// `replies` (the client makes a round trip through the broker, whose answer arrives behind
/// them), and takes in what is ready: a collector that was busy, or a broker that delivered
/// late, does not end discovery before replies that were already there. When that brings a
/// new node, collection goes on.
pub async fn collect<S, F, Fut>(
    replies: S,
    window: Window,
    started: Instant,
    mut settle: F,
) -> Collected
where
    S: Stream<Item = String>,
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let deadline = started + window.timeout;
    let mut heard = Heard {
        expected: window.expected.as_ref(),
        seen: HashSet::new(),
        found: Vec::new(),
        last: None,
        expected_heard: 0,
        all_expected_at: None,
        unexpected: false,
        started,
    };
    futures::pin_mut!(replies);
    let ended = loop {
        if window.limit.is_some_and(|l| heard.found.len() >= l) {
            break Ended::Limit;
        }
        let (until, why) = heard.end(&window, deadline);
        match tokio::time::timeout_at(until, replies.next()).await {
            Ok(Some(sender)) => heard.note(sender),
            Ok(None) => break Ended::Closed,
            Err(_) if why == Ended::Cap => break why,
            Err(_) => {
                let _ = tokio::time::timeout_at(deadline, settle()).await;
                let before = heard.found.len();
                let mut closed = false;
                loop {
                    match replies.next().now_or_never() {
                        Some(Some(sender)) => heard.note(sender),
                        Some(None) => {
                            closed = true;
                            break;
                        }
                        None => break,
                    }
                }
                if closed {
                    break Ended::Closed;
                }
                if heard.found.len() == before {
                    break why;
                }
            }
        }
    };
    let mut missing: Vec<String> = heard
        .expected
        .map(|e| {
            e.nodes
                .iter()
                .filter(|n| !heard.seen.contains(*n))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    missing.sort();
    Collected {
        found: heard.found,
        missing,
        ended,
    }
}

/// What [`collect`] has heard so far.
struct Heard<'a> {
    expected: Option<&'a Expected>,
    seen: HashSet<String>,
    found: Vec<(String, Duration)>,
    /// When the latest new sender was heard.
    last: Option<Instant>,
    expected_heard: usize,
    all_expected_at: Option<Instant>,
    unexpected: bool,
    started: Instant,
}

impl Heard<'_> {
    /// Takes in a sender heard now.
    fn note(&mut self, sender: String) {
        if self.seen.contains(&sender) {
            return;
        }
        let now = Instant::now();
        match self.expected {
            Some(e) if e.nodes.contains(&sender) => {
                self.expected_heard += 1;
                if self.expected_heard == e.nodes.len() && !e.fleet_changed {
                    self.all_expected_at = Some(now);
                }
            }
            _ => self.unexpected = true,
        }
        self.seen.insert(sender.clone());
        self.found
            .push((sender, now.saturating_duration_since(self.started)));
        self.last = Some(now);
    }

    /// How long the expected set took to answer last time, while one of its nodes is still
    /// silent.
    fn silent_expected_took(&self) -> Option<Duration> {
        let expected = self.expected?;
        (self.expected_heard < expected.nodes.len())
            .then_some(expected.took)
            .flatten()
    }

    /// When collection ends if nothing new is heard, and why.
    fn end(&self, window: &Window, deadline: Instant) -> (Instant, Ended) {
        let (until, why) = match (self.last, window.ending) {
            (None, _) => (deadline, Ended::Cap),
            (Some(at), Ending::Quiet(quiet)) => (at + quiet, Ended::Window),
            (Some(at), Ending::Adaptive(rule)) => match self.all_expected_at {
                Some(done) if !self.unexpected => {
                    let waited = done.saturating_duration_since(self.started);
                    let count = self.expected.map_or(0, |e| e.nodes.len());
                    (
                        done + rule.grace.max(waited / 4),
                        Ended::AllExpected { expected: count },
                    )
                }
                _ => {
                    let waited = at.saturating_duration_since(self.started);
                    let mut wait = rule.floor.max(waited.mul_f64(rule.factor));
                    if let Some(took) = self.silent_expected_took() {
                        wait = wait.max(took.mul_f64(rule.factor));
                    }
                    (self.started + wait, Ended::Window)
                }
            },
        };
        if until >= deadline {
            (deadline, Ended::Cap)
        } else {
            (until, why)
        }
    }
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

    fn names(heard: &Collected) -> Vec<&str> {
        heard.found.iter().map(|f| f.0.as_str()).collect()
    }

    fn quiet() -> Window {
        Window::new(Duration::from_secs(2), Duration::from_millis(300))
    }

    fn adaptive(expected: &[&str]) -> Window {
        let expected = (!expected.is_empty()).then(|| Expected {
            nodes: expected.iter().map(|n| n.to_string()).collect(),
            ..Expected::default()
        });
        Window::adaptive(Duration::from_secs(2), Adaptive::default(), expected)
    }

    async fn run(items: Vec<(u64, &'static str)>, window: Window) -> (Collected, Duration) {
        let start = Instant::now();
        let heard = collect(delayed(items), window, start, || async {}).await;
        (heard, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn ends_a_quiet_window_after_the_last_reply() {
        let items = vec![(10, "a"), (50, "b"), (100, "c"), (1000, "late")];
        let (heard, took) = run(items, quiet()).await;
        assert_eq!(names(&heard), ["a", "b", "c"]);
        assert_eq!(took, Duration::from_millis(460));
        assert_eq!(heard.ended, Ended::Window);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_the_full_timeout_for_a_first_reply() {
        for window in [quiet(), adaptive(&[]), adaptive(&["a"])] {
            let (heard, took) = run(vec![(1500, "slow")], window.clone()).await;
            assert_eq!(names(&heard), ["slow"]);
            assert!(took >= Duration::from_millis(1500), "{window:?}: {took:?}");
            let (heard, took) = run(vec![], window).await;
            assert!(heard.found.is_empty());
            assert_eq!(took, Duration::from_secs(2));
            assert_eq!(heard.ended, Ended::Cap);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_timeout_and_honours_limits_and_duplicates() {
        let steady: Vec<(u64, &str)> = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]
            .into_iter()
            .map(|n| (200, n))
            .collect();
        let (heard, took) = run(steady, quiet()).await;
        assert_eq!(heard.found.len(), 10);
        assert_eq!(took, Duration::from_secs(2));
        assert_eq!(heard.ended, Ended::Cap);
        let mut window = quiet();
        window.limit = Some(2);
        let (heard, _) = run(vec![(1, "a"), (1, "a"), (1, "b"), (1, "c")], window).await;
        assert_eq!(names(&heard), ["a", "b"]);
        assert_eq!(heard.ended, Ended::Limit);
    }

    #[tokio::test(start_paused = true)]
    async fn ends_a_grace_after_every_expected_node_answered() {
        // A fast fleet: done 25 ms (the grace) after its last reply at 8 ms.
        let items = vec![(2, "a"), (3, "b"), (3, "c"), (5000, "late")];
        let (heard, took) = run(items, adaptive(&["a", "b", "c"])).await;
        assert_eq!(names(&heard), ["a", "b", "c"]);
        assert_eq!(took, Duration::from_millis(8 + 25));
        assert_eq!(heard.ended, Ended::AllExpected { expected: 3 });
        assert!(heard.missing.is_empty());
        // A distant one: the grace grows with the time the fleet took (150 ms), which hears a
        // new node about as far as the farthest expected one.
        let items = vec![(2, "a"), (148, "far"), (20, "new-far"), (5000, "late")];
        let (heard, took) = run(items, adaptive(&["a", "far"])).await;
        assert_eq!(names(&heard), ["a", "far", "new-far"]);
        assert_eq!(heard.ended, Ended::Window);
        assert_eq!(took, Duration::from_millis(170 * 3 / 2));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_an_expected_node_that_is_slow() {
        let items = vec![(2, "a"), (3, "b"), (145, "delayed"), (5000, "late")];
        let (heard, took) = run(items, adaptive(&["a", "b", "delayed"])).await;
        assert_eq!(names(&heard), ["a", "b", "delayed"]);
        assert_eq!(heard.ended, Ended::AllExpected { expected: 3 });
        // tokio's timers round up to the millisecond.
        assert_eq!(took, Duration::from_millis(150 + 38));
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_nobody_expected_keeps_discovery_open_for_the_window() {
        // Without an expected set the floor (200 ms) hears a node 150 ms away.
        let items = vec![(2, "a"), (3, "b"), (145, "delayed"), (5000, "late")];
        let (heard, took) = run(items, adaptive(&[])).await;
        assert_eq!(names(&heard), ["a", "b", "delayed"]);
        assert_eq!(heard.ended, Ended::Window);
        assert_eq!(took, Duration::from_millis(225), "1.5 x 150 ms");
        // A fast new node is heard within the grace and turns the rest into the window.
        let items = vec![(2, "a"), (3, "b"), (3, "new")];
        let (heard, took) = run(items, adaptive(&["a", "b"])).await;
        assert_eq!(names(&heard), ["a", "b", "new"]);
        assert_eq!(took, Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expected_node_that_is_down_is_missing_after_the_window_not_the_timeout() {
        let items = vec![(2, "a"), (3, "b")];
        let (heard, took) = run(items, adaptive(&["a", "b", "down"])).await;
        assert_eq!(names(&heard), ["a", "b"]);
        assert_eq!(heard.missing, ["down"]);
        assert_eq!(heard.ended, Ended::Window);
        assert_eq!(took, Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_that_pauses_gets_as_long_as_it_took_last_time() {
        // Last time the set took 400 ms to answer. Now its replies pause after 20 ms (a loaded
        // client or broker) and the rest come at 500 ms: 1.5 x 20 ms, or the floor, would end
        // at 200 ms and miss them; 1.5 x 400 ms does not.
        let with_took = |took_ms: u64| {
            let mut window = adaptive(&["a", "b", "c", "d"]);
            if let Some(e) = window.expected.as_mut() {
                e.took = Some(Duration::from_millis(took_ms));
            }
            window
        };
        let items = vec![(10, "a"), (10, "b"), (480, "c"), (0, "d")];
        let (heard, took) = run(items.clone(), with_took(400)).await;
        assert_eq!(names(&heard), ["a", "b", "c", "d"]);
        assert_eq!(heard.ended, Ended::AllExpected { expected: 4 });
        assert!(heard.missing.is_empty());
        assert_eq!(took, Duration::from_millis(500 + 125));
        // Without the record of last time, the pause ends discovery.
        let (heard, _) = run(items, adaptive(&["a", "b", "c", "d"])).await;
        assert_eq!(names(&heard), ["a", "b"]);
        // A node that is down costs 1.5 x what the set took, not the timeout.
        let (heard, took) = run(vec![(2, "a"), (3, "b"), (5, "c")], with_took(300)).await;
        assert_eq!(heard.missing, ["d"]);
        assert_eq!(heard.ended, Ended::Window);
        assert_eq!(took, Duration::from_millis(450));
        // Once every expected node answered, last time's figure no longer holds anything up.
        let items = vec![(2, "a"), (3, "b"), (5, "c"), (5, "d")];
        let (heard, took) = run(items, with_took(1200)).await;
        assert_eq!(heard.ended, Ended::AllExpected { expected: 4 });
        assert_eq!(took, Duration::from_millis(15 + 25));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_known_to_have_changed_does_not_end_early() {
        let mut window = adaptive(&["a"]);
        if let Some(e) = window.expected.as_mut() {
            e.fleet_changed = true;
        }
        let items = vec![(2, "a"), (148, "joined")];
        let (heard, _) = run(items, window).await;
        assert_eq!(names(&heard), ["a", "joined"]);
        assert_eq!(heard.ended, Ended::Window);
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_listening_while_replies_keep_coming() {
        // A large fleet whose replies take 550 ms to arrive: 1.5 x 550 ms.
        let mut items: Vec<(u64, &str)> = vec![(100, "a")];
        items.extend(["b", "c", "d", "e", "f"].map(|n| (90, n)));
        let (heard, took) = run(items, adaptive(&[])).await;
        assert_eq!(heard.found.len(), 6);
        assert_eq!(took, Duration::from_millis(825));
    }

    #[tokio::test(start_paused = true)]
    async fn replies_already_on_their_way_are_read_before_discovery_ends() {
        // "late" reached the collector before the window ended, but is readable only once the
        // round trip through the broker came back (a busy reader, a broker that delivered
        // late).
        let released = std::sync::Arc::new(tokio::sync::Notify::new());
        let gate = released.clone();
        let replies = stream::iter(["a".to_string()])
            .chain(stream::once(async move {
                gate.notified().await;
                "late".to_string()
            }))
            .chain(stream::pending());
        let settles = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = settles.clone();
        let settle = move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            released.notify_one();
            async {}
        };
        let start = Instant::now();
        let heard = collect(replies, adaptive(&[]), start, settle).await;
        assert_eq!(names(&heard), ["a", "late"]);
        assert_eq!(heard.ended, Ended::Window);
        // Once when the window first ended (bringing "late"), once more before it ended.
        assert_eq!(settles.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Without the round trip the reply is lost.
        let replies = stream::iter(["a".to_string()]).chain(stream::pending());
        let heard = collect(
            replies,
            adaptive(&["a", "late"]),
            Instant::now(),
            || async {},
        )
        .await;
        assert_eq!(heard.missing, ["late"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_trip_that_never_comes_back_ends_at_the_timeout() {
        let replies = stream::iter(["a".to_string()]).chain(stream::pending());
        let start = Instant::now();
        let heard = collect(
            replies,
            adaptive(&[]),
            start,
            futures::future::pending::<()>,
        )
        .await;
        assert_eq!(names(&heard), ["a"]);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
