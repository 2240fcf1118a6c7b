//! Discovery from the client's side: one entry point, [`Client::discover_with`], for every
//! method (`--dm`), each answering with the node list and how long it took, and
//! [`Discovery::from_method`], which turns a method's name and options (`--do key=value`)
//! into one with the client's configured defaults (`registry_url`,
//! `external_discovery_command`).
//!
//! Broadcast discovery is the client's own: a `discovery` ping on the broker, whose replies
//! pass the same gate as a call's (signatures verified in batches, only this ping's id, once
//! per sender), so an impostor cannot add names to the node list. The other methods are built
//! from `mco_discovery`'s pieces (the registry database is read on a blocking thread). A
//! method that cannot serve the filter refuses it.
//!
//! Not for: reading files or stdin (the caller does, and hands over the parsed list), or
//! sending the request itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mco_discovery::cache::{CacheKey, Entry};
use mco_discovery::method::{select_from_list, MethodKind};
use mco_discovery::{Ended, Expected, Window};
use mco_spec::{subjects, Filter};
use serde_json::Map;

use crate::accept::ReplyGate;
use crate::builder::DiscoveryEnd;
use crate::client::Client;
use crate::error::{DiscoveryError, DiscoveryErrorKind};
use crate::result::{clock_offset, note_sorted};

/// What a discovery expects, looked up while its ping is out.
#[derive(Debug, Default)]
struct Expecting {
    expected: Option<Expected>,
    from: Option<ExpectedFrom>,
    /// The broker's count of the collective's nodes now, for the cache entry written after.
    fleet_size: Option<u64>,
}

/// The longest a discovery waits for its round trip through the broker before it ends (a
/// broker that does not answer is not waited for longer than this).
const SETTLE_LIMIT: Duration = Duration::from_millis(250);

/// How many discovery replies that have already arrived are verified in one batch.
const DISCOVERY_VERIFY_BATCH: usize = 256;

/// Where the node list comes from.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub enum Discovery {
    /// A discovery ping on the broker; every filter.
    #[default]
    Broadcast,
    /// A list of node names already read (from `--nodes FILE` or stdin); identity filters
    /// select from it, other filters are refused.
    List {
        /// Which method read it (flatfile or stdin), for messages.
        method: MethodKind,
        /// The names.
        nodes: Vec<String>,
    },
    /// The registry database that the registry service (`mcod registry`) fills from node
    /// registrations; every filter except data-plugin calls, no broadcast.
    Registry {
        /// An SQLite file (`PATH` or `sqlite://PATH`) or `postgres://...`.
        url: String,
    },
    /// A program speaking Choria's external discovery protocol.
    External {
        /// The program and its arguments.
        command: Vec<String>,
        /// Options passed to it (`--do key=value`).
        options: BTreeMap<String, String>,
    },
}

impl Discovery {
    /// The method called `kind` with `options` (`--do key=value`): the registry takes
    /// `url` (else the client's `registry_url`), the external method `command` (else the
    /// client's `external_discovery_command`) and passes the other options to the program.
    /// Node-list methods (flatfile, stdin) need the list itself: use [`Discovery::List`].
    pub fn from_method(
        kind: MethodKind,
        mut options: BTreeMap<String, String>,
        client: &crate::ClientOptions,
    ) -> Result<Discovery, DiscoveryError> {
        let invalid = |m: &str| DiscoveryError::new(DiscoveryErrorKind::InvalidNodeList, m);
        match kind {
            MethodKind::Broadcast => Ok(Discovery::Broadcast),
            MethodKind::Flatfile | MethodKind::Stdin => Err(invalid(&format!(
                "the {} discovery method needs its node list",
                kind.name()
            ))),
            MethodKind::Registry => {
                let url = options
                    .remove("url")
                    .or_else(|| client.registry_url.clone())
                    .ok_or_else(|| invalid("the registry discovery method needs the registry database: --do url=URL, or registry_url in the client configuration (an SQLite file that `mcod registry` writes, or postgres://...)"))?;
                Ok(Discovery::Registry { url })
            }
            MethodKind::External => {
                let command = match options.remove("command") {
                    Some(line) => shlex::split(&line)
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| {
                            invalid(&format!(
                                "cannot split the external discovery command {line:?}"
                            ))
                        })?,
                    None => client.external_discovery_command.clone().ok_or_else(|| {
                        invalid("the external discovery method needs a program: --do command=PROGRAM, or external_discovery_command in the client configuration")
                    })?,
                };
                Ok(Discovery::External { command, options })
            }
        }
    }

    /// The method's kind.
    pub fn kind(&self) -> MethodKind {
        match self {
            Discovery::Broadcast => MethodKind::Broadcast,
            Discovery::List { method, .. } => *method,
            Discovery::Registry { .. } => MethodKind::Registry,
            Discovery::External { .. } => MethodKind::External,
        }
    }
}

/// What a discovery found.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The nodes, sorted.
    pub nodes: Vec<String>,
    /// The method used.
    pub method: MethodKind,
    /// How long it took.
    pub elapsed: Duration,
    /// Nodes the filter selects that refused the discovery ping for clock trouble, sorted
    /// (broadcast discovery only): not in `nodes`, as they will not act on the call.
    pub clock_refused: Vec<String>,
    /// Nodes expected to answer (from the registry or the discovery cache) that did not,
    /// sorted (broadcast discovery only): not in `nodes`.
    pub missing: Vec<String>,
    /// Why a broadcast discovery ended (`None` for the other methods).
    pub ending: Option<DiscoveryEnding>,
}

/// Where a discovery's expected set came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpectedFrom {
    /// The registry database (`registry_url`).
    Registry,
    /// The discovery cache, written this long ago.
    Cache {
        /// The entry's age.
        age: Duration,
    },
}

/// Why a broadcast discovery ended, and what it knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryEnding {
    /// Why it ended.
    pub ended: Ended,
    /// Where its expected set came from, if it had one.
    pub expected_from: Option<ExpectedFrom>,
    /// The broker knew a different number of nodes than when the cache entry was written,
    /// so the expected set did not end discovery early.
    pub fleet_changed: bool,
    /// How the end was decided (`discovery_end`).
    pub end: DiscoveryEnd,
}

impl fmt::Display for DiscoveryEnding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ended)?;
        match (self.end, self.expected_from) {
            (DiscoveryEnd::Window, _) => f.write_str(" (discovery_end = window)")?,
            (DiscoveryEnd::Adaptive, None) => f.write_str(" (nothing expected)")?,
            (DiscoveryEnd::Adaptive, Some(ExpectedFrom::Registry)) => {
                f.write_str(" (expected: the registry's nodes)")?
            }
            (DiscoveryEnd::Adaptive, Some(ExpectedFrom::Cache { age })) => write!(
                f,
                " (expected: the discovery cache of {} s ago)",
                age.as_secs()
            )?,
        }
        if self.fleet_changed {
            f.write_str("; the broker knows another number of nodes than then, so discovery waited for new ones")?;
        }
        Ok(())
    }
}

/// What a discovery ping heard ([`Client::ping_discovery`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Pinged {
    /// The nodes that answered, each with the time its answer took, in arrival order.
    pub answered: Vec<(String, Duration)>,
    /// The nodes that refused for clock trouble ([`crate::result::clock_offset`]), sorted.
    pub clock_refused: Vec<String>,
    /// Expected nodes that did not answer, sorted.
    pub missing: Vec<String>,
    /// Why it ended.
    pub ending: DiscoveryEnding,
}

impl Client {
    /// The client's default discovery method ([`crate::ClientOptions::default_discovery_method`]).
    pub fn default_discovery(&self) -> Result<Discovery, DiscoveryError> {
        Discovery::from_method(
            self.options().default_discovery_method,
            BTreeMap::new(),
            self.options(),
        )
    }

    /// Finds the nodes matching `filter` in `collective` (main if `None`) with `discovery`.
    /// `timeout` bounds broadcast and external discovery (the client's discovery timeout if
    /// `None`).
    ///
    /// For node lists, `filter` must not carry the agent a call adds: a list knows names only.
    pub async fn discover_with(
        &self,
        discovery: &Discovery,
        filter: &Filter,
        collective: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Discovered, DiscoveryError> {
        filter.compile()?;
        let collective = self
            .collective(collective)
            .map_err(|e| e.into_kind(DiscoveryErrorKind::InvalidFilter))?;
        let started = Instant::now();
        let mut clock_refused = Vec::new();
        let mut missing = Vec::new();
        let mut ending = None;
        let nodes = match discovery {
            Discovery::Broadcast => {
                let pinged = self
                    .ping_discovery(filter, Some(&collective), timeout)
                    .await?;
                clock_refused = pinged.clock_refused;
                missing = pinged.missing;
                ending = Some(pinged.ending);
                let mut nodes: Vec<String> = pinged.answered.into_iter().map(|(n, _)| n).collect();
                nodes.sort();
                nodes
            }
            Discovery::List { method, nodes } => select_from_list(*method, nodes.clone(), filter)?,
            Discovery::External { command, options } => {
                let request = mco_discovery::external::ExternalRequest {
                    collective: &collective,
                    filter,
                    options,
                    timeout: timeout.unwrap_or(self.options().discovery_timeout),
                };
                mco_discovery::external::discover(command, &request).await?
            }
            #[cfg(not(feature = "registry"))]
            Discovery::Registry { .. } => return Err(DiscoveryError::new(
                DiscoveryErrorKind::NotBuilt,
                "this build of mco-client reads no registry database (its registry feature is off)",
            )),
            #[cfg(feature = "registry")]
            Discovery::Registry { url } => {
                let (url, filter, in_collective) =
                    (url.clone(), filter.clone(), collective.clone());
                // Both database drivers block; the registry is also dropped on that thread,
                // as the PostgreSQL driver's own runtime must not be dropped on ours.
                tokio::task::spawn_blocking(move || {
                    mco_discovery::registry::Registry::open_existing(&url)?
                        .discover(&filter, &in_collective)
                })
                .await
                .map_err(|e| {
                    DiscoveryError::new(
                        DiscoveryErrorKind::Registry,
                        format!("registry discovery failed: {e}"),
                    )
                })??
            }
        };
        Ok(Discovered {
            nodes,
            method: discovery.kind(),
            elapsed: started.elapsed(),
            clock_refused,
            missing,
            ending,
        })
    }

    /// Finds the nodes matching `filter` in `collective` (main if `None`) by broadcast, each
    /// with the time its answer took, in arrival order. Ends at `timeout` (default: the
    /// client's discovery timeout) or earlier, as `discovery_end` says ([`DiscoveryEnd`]).
    pub async fn discover_timed(
        &self,
        filter: &Filter,
        collective: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Vec<(String, Duration)>, DiscoveryError> {
        Ok(self
            .ping_discovery(filter, collective, timeout)
            .await?
            .answered)
    }

    /// Like [`Client::discover_timed`], and also names the nodes that refused the ping for
    /// clock trouble: the filter selects them, but they will not act on requests from here,
    /// so they are kept apart from the nodes found.
    pub async fn ping_discovery(
        &self,
        filter: &Filter,
        collective: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Pinged, DiscoveryError> {
        filter.compile()?;
        let collective = self
            .collective(collective)
            .map_err(|e| e.into_kind(DiscoveryErrorKind::InvalidFilter))?;
        let o = self.options();
        let request = self.request(
            &collective,
            subjects::DISCOVERY_AGENT,
            "ping",
            Map::new(),
            filter.clone(),
            o.ttl,
        );
        let broker = |e: crate::CallError| e.into_kind(DiscoveryErrorKind::Broker);
        let subscriber = self
            .link()
            .subscribe(&request.reply_to)
            .await
            .map_err(broker)?;
        let payload = self
            .encode(&request)
            .map_err(|e| e.into_kind(DiscoveryErrorKind::InvalidFilter))?;
        let timeout = timeout.unwrap_or(o.discovery_timeout);
        let adaptive = o.discovery_end == DiscoveryEnd::Adaptive;
        let started = tokio::time::Instant::now();
        let send = async {
            self.link()
                .publish(
                    subjects::broadcast(&collective, subjects::DISCOVERY_AGENT),
                    payload,
                )
                .await?;
            self.link().flush_before(started + timeout).await
        };
        // Whom to expect is looked up while the ping is out.
        let (sent, expecting) = tokio::join!(send, async {
            if adaptive {
                self.expected_set(&collective, filter, timeout).await
            } else {
                Expecting::default()
            }
        });
        sent.map_err(broker)?;
        let client = self.clone();
        let expected_nodes = expecting.expected.as_ref().map_or(0, |e| e.nodes.len());
        let mut gate = ReplyGate::expecting(request.id.clone(), expected_nodes);
        // Filled as replies are read: a refusal is not a node found.
        let refused = Arc::new(Mutex::new(Vec::new()));
        let refused_here = Arc::clone(&refused);
        let senders = subscriber
            .ready_chunks(DISCOVERY_VERIFY_BATCH)
            .flat_map(move |messages| {
                let payloads: Vec<&[u8]> = messages.iter().map(|m| m.payload.as_ref()).collect();
                let accepted: Vec<String> = client
                    .accept_replies(&payloads)
                    .into_iter()
                    .filter_map(|reply| gate.admit(reply))
                    .filter_map(|reply| {
                        if clock_offset(&reply).is_none() {
                            return Some(reply.sender);
                        }
                        let mut refused = refused_here.lock().unwrap_or_else(|p| p.into_inner());
                        note_sorted(&mut refused, &reply.sender);
                        None
                    })
                    .collect();
                futures::stream::iter(accepted)
            });
        let window = if adaptive {
            Window::adaptive(timeout, o.discovery_adaptive, expecting.expected.clone())
        } else {
            Window::new(timeout, o.discovery_window)
        };
        // Before discovery ends, the replies already on their way are read: a round trip
        // through the broker comes back behind them.
        let link = self.link();
        let settle = || link.settle(&collective, SETTLE_LIMIT);
        let heard = mco_discovery::collect(senders, window, started, settle).await;
        let clock_refused = std::mem::take(&mut *refused.lock().unwrap_or_else(|p| p.into_inner()));
        if adaptive && heard.ended != Ended::Limit {
            self.remember(&collective, filter, expecting.fleet_size, &heard.found)
                .await;
        }
        Ok(Pinged {
            answered: heard.found,
            clock_refused,
            missing: heard.missing,
            ending: DiscoveryEnding {
                ended: heard.ended,
                expected_from: expecting.from,
                fleet_changed: expecting.expected.as_ref().is_some_and(|e| e.fleet_changed),
                end: o.discovery_end,
            },
        })
    }

    /// The nodes a broadcast discovery for `filter` expects: the registry's when
    /// `registry_url` is set (and it can answer the filter), else the discovery cache's, marked
    /// as possibly incomplete when the broker now knows another number of nodes.
    async fn expected_set(
        &self,
        collective: &str,
        filter: &Filter,
        timeout: Duration,
    ) -> Expecting {
        let o = self.options();
        let fleet_size = self.link().fleet_size(collective, timeout / 4);
        #[cfg(feature = "registry")]
        if let Some(url) = &o.registry_url {
            let (url, filter_for, in_collective) =
                (url.clone(), filter.clone(), collective.to_string());
            let looked_up = tokio::task::spawn_blocking(move || {
                mco_discovery::registry::Registry::open_existing(&url)?
                    .discover(&filter_for, &in_collective)
            });
            let (looked_up, fleet_size) = tokio::join!(looked_up, fleet_size);
            match looked_up {
                Ok(Ok(nodes)) => {
                    return Expecting {
                        expected: Some(Expected {
                            nodes: nodes.into_iter().collect(),
                            ..Expected::default()
                        }),
                        from: Some(ExpectedFrom::Registry),
                        fleet_size,
                    }
                }
                Ok(Err(e)) => tracing::debug!("no expected set from the registry: {e}"),
                Err(e) => tracing::debug!("no expected set from the registry: {e}"),
            }
            return self.expected_from_cache(collective, filter, fleet_size);
        }
        let fleet_size = fleet_size.await;
        self.expected_from_cache(collective, filter, fleet_size)
    }

    fn expected_from_cache(
        &self,
        collective: &str,
        filter: &Filter,
        fleet_size: Option<u64>,
    ) -> Expecting {
        let o = self.options();
        let Some(cache) = &o.discovery_cache else {
            return Expecting {
                fleet_size,
                ..Expecting::default()
            };
        };
        let key = CacheKey::new(&o.brokers, collective, &o.caller, filter);
        let Some(entry) = cache.load(&key) else {
            return Expecting {
                fleet_size,
                ..Expecting::default()
            };
        };
        let fleet_changed =
            matches!((entry.fleet_size, fleet_size), (Some(then), Some(now)) if then != now);
        let took = entry.slowest();
        Expecting {
            from: Some(ExpectedFrom::Cache { age: entry.age() }),
            expected: Some(Expected {
                nodes: entry.nodes.into_iter().map(|n| n.identity).collect(),
                fleet_changed,
                took,
            }),
            fleet_size,
        }
    }

    /// Writes what a discovery found to the discovery cache (failures are logged: the
    /// cache only makes the next discovery quicker).
    async fn remember(
        &self,
        collective: &str,
        filter: &Filter,
        fleet_size: Option<u64>,
        found: &[(String, Duration)],
    ) {
        let o = self.options();
        let Some(cache) = o.discovery_cache.clone() else {
            return;
        };
        let key = CacheKey::new(&o.brokers, collective, &o.caller, filter);
        let entry = Entry::new(collective, filter, fleet_size, found);
        let stored = tokio::task::spawn_blocking(move || cache.store(&key, &entry)).await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!("discovery cache: {e}"),
        }
    }

    /// Finds the identities of the nodes matching `filter` by broadcast, sorted.
    pub async fn discover(
        &self,
        filter: &Filter,
        collective: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Vec<String>, DiscoveryError> {
        let mut nodes: Vec<String> = self
            .discover_timed(filter, collective, timeout)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        nodes.sort();
        Ok(nodes)
    }
}
