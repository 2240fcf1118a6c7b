//! Calls: what to send ([`Call`]), the replies as they arrive ([`Replies`]), and the
//! collected outcome ([`CallResult`], [`Stats`]).

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mco_spec::{subjects, Filter, Reply};
use serde_json::{Map, Value};

use crate::client::{Client, ClientError};

/// How a call reached its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One publish on the agent's broadcast subject; nodes apply the filter.
    Broadcast,
    /// One publish per named node on its direct subject; no discovery.
    Direct,
}

/// An RPC call to build and send with [`Client::call`].
#[derive(Debug, Clone)]
pub struct Call {
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The inputs.
    pub data: Map<String, Value>,
    /// Which nodes; the agent is added to it when sending.
    pub filter: Filter,
    /// The collective (the client's main one if `None`).
    pub collective: Option<String>,
    /// How long to wait for replies (the client's default if `None`).
    pub timeout: Option<Duration>,
    /// How long the request stays valid, seconds (the client's default if `None`).
    pub ttl: Option<u64>,
    /// Broadcast discovery timeout (the client's default if `None`).
    pub discovery_timeout: Option<Duration>,
    /// The nodes to address directly; when set, discovery is skipped.
    pub nodes: Option<Vec<String>>,
}

impl Call {
    /// A call of `agent`'s `action` with no inputs, to every node that has the agent.
    pub fn new(agent: impl Into<String>, action: impl Into<String>) -> Call {
        Call {
            agent: agent.into(),
            action: action.into(),
            data: Map::new(),
            filter: Filter::default(),
            collective: None,
            timeout: None,
            ttl: None,
            discovery_timeout: None,
            nodes: None,
        }
    }

    /// Adds an input.
    pub fn arg(mut self, key: impl Into<String>, value: impl Into<Value>) -> Call {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Sets all inputs.
    pub fn data(mut self, data: Map<String, Value>) -> Call {
        self.data = data;
        self
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: Filter) -> Call {
        self.filter = filter;
        self
    }

    /// Sets the collective.
    pub fn collective(mut self, collective: impl Into<String>) -> Call {
        self.collective = Some(collective.into());
        self
    }

    /// Sets how long to wait for replies.
    pub fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the TTL, seconds.
    pub fn ttl(mut self, ttl: u64) -> Call {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the discovery timeout.
    pub fn discovery_timeout(mut self, timeout: Duration) -> Call {
        self.discovery_timeout = Some(timeout);
        self
    }

    /// Addresses exactly these nodes, without discovery.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Call {
        self.nodes = Some(nodes.into_iter().map(Into::into).collect());
        self
    }
}

/// What happened in a call.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// How the call was sent (`None` if nothing was sent).
    #[serde(skip)]
    pub mode: Option<Mode>,
    /// Nodes expected to answer (discovered, or named).
    pub discovered: usize,
    /// Nodes that answered.
    pub responded: usize,
    /// Replies with status 0.
    pub ok: usize,
    /// Replies with another status.
    pub failed: usize,
    /// Expected nodes that did not answer, sorted.
    pub no_response_from: Vec<String>,
    /// Nodes that answered without being expected, sorted.
    pub unexpected_from: Vec<String>,
    /// Time spent discovering.
    pub discovery_time: Duration,
    /// Time from publishing to the last reply (or the timeout).
    pub elapsed: Duration,
    /// Messages on the reply subject that were not valid replies to this request.
    pub dropped: usize,
    /// Replies whose signature or token did not verify (ignored).
    pub forged: usize,
}

/// Replies with their statistics.
#[derive(Debug, Clone, Default)]
pub struct CallResult {
    /// Every reply, in arrival order.
    pub replies: Vec<Reply>,
    /// What happened.
    pub stats: Stats,
}

/// Replies as they arrive. Ends when every expected node has answered or at the timeout.
pub struct Replies {
    client: Option<Client>,
    subscriber: Option<async_nats::Subscriber>,
    request_id: String,
    expected: Option<BTreeSet<String>>,
    seen: HashSet<String>,
    deadline: tokio::time::Instant,
    started: Instant,
    stats: Stats,
}

impl Replies {
    /// The next reply, or `None` when the call is over.
    pub async fn next(&mut self) -> Option<Reply> {
        loop {
            if self
                .expected
                .as_ref()
                .is_some_and(|e| e.iter().all(|n| self.seen.contains(n)))
            {
                return self.finish();
            }
            let subscriber = self.subscriber.as_mut()?;
            let message = match tokio::time::timeout_at(self.deadline, subscriber.next()).await {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => return self.finish(),
            };
            let Some(client) = &self.client else {
                return self.finish();
            };
            let reply = match client.accept_reply(&message.payload) {
                Ok(r) if r.request_id == self.request_id => r,
                Err(crate::client::ReplyRejected::Forged(_)) => {
                    self.stats.forged += 1;
                    continue;
                }
                _ => {
                    self.stats.dropped += 1;
                    continue;
                }
            };
            if !self.seen.insert(reply.sender.clone()) {
                self.stats.dropped += 1;
                continue;
            }
            self.stats.responded += 1;
            if reply.statuscode.is_ok() {
                self.stats.ok += 1;
            } else {
                self.stats.failed += 1;
            }
            if self
                .expected
                .as_ref()
                .is_some_and(|e| !e.contains(&reply.sender))
            {
                self.stats.unexpected_from.push(reply.sender.clone());
            }
            self.stats.elapsed = self.started.elapsed();
            return Some(reply);
        }
    }

    fn finish(&mut self) -> Option<Reply> {
        if self.subscriber.take().is_some() {
            if self.stats.responded == 0 || self.expected.is_none() {
                self.stats.elapsed = self.started.elapsed();
            }
            if let Some(expected) = &self.expected {
                self.stats.no_response_from = expected
                    .iter()
                    .filter(|n| !self.seen.contains(*n))
                    .cloned()
                    .collect();
            }
            self.stats.unexpected_from.sort();
        }
        None
    }

    /// The statistics so far (complete once [`Self::next`] returned `None`).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Reads every reply and returns them with the statistics.
    pub async fn collect(mut self) -> CallResult {
        let mut replies = Vec::new();
        while let Some(r) = self.next().await {
            replies.push(r);
        }
        CallResult {
            replies,
            stats: self.stats,
        }
    }

    /// The replies as a `Stream`.
    pub fn into_stream(self) -> impl futures::Stream<Item = Reply> {
        futures::stream::unfold(self, |mut r| async move {
            r.next().await.map(|reply| (reply, r))
        })
    }
}

impl Client {
    /// Sends `call` and returns its replies.
    ///
    /// The node list is known when `call.nodes` is set or the filter is nothing but exact
    /// identities (`-I a -I b`): then each node gets a direct request and no discovery is
    /// done. Otherwise the client discovers the matching nodes by broadcast, and — if any —
    /// broadcasts the request with the filter, expecting exactly the discovered nodes. The
    /// agent is always added to the filter, so nodes without it stay silent.
    pub async fn call(&self, call: Call) -> Result<Replies, ClientError> {
        let collective = self.collective(call.collective.as_deref())?;
        let mut filter = call.filter.clone();
        if !subjects::is_valid_token(&call.agent) || !subjects::is_valid_token(&call.action) {
            return Err(ClientError::InvalidInput(format!(
                "{}#{} is not a valid agent and action",
                call.agent, call.action
            )));
        }
        if !filter.agent.contains(&call.agent) {
            filter.agent.push(call.agent.clone());
        }
        filter.compile()?;
        let o = self.options();
        let ttl = call.ttl.unwrap_or(o.ttl);
        let timeout = call.timeout.unwrap_or(o.timeout);
        let direct_nodes = call
            .nodes
            .clone()
            .or_else(|| call.filter.plain_identities().map(<[String]>::to_vec));

        let started_discovery = Instant::now();
        let (mode, expected) = match direct_nodes {
            Some(nodes) => {
                if let Some(bad) = nodes.iter().find(|n| !subjects::is_valid_identity(n)) {
                    return Err(ClientError::InvalidInput(format!(
                        "{bad:?} is not a valid identity"
                    )));
                }
                (Mode::Direct, nodes.into_iter().collect::<BTreeSet<_>>())
            }
            None => {
                let found = self
                    .discover(&filter, Some(&collective), call.discovery_timeout)
                    .await?;
                (Mode::Broadcast, found.into_iter().collect())
            }
        };
        let discovery_time = if mode == Mode::Direct {
            Duration::ZERO
        } else {
            started_discovery.elapsed()
        };
        let mut stats = Stats {
            mode: Some(mode),
            discovered: expected.len(),
            discovery_time,
            ..Stats::default()
        };
        if expected.is_empty() {
            stats.mode = None;
            return Ok(Replies {
                client: None,
                subscriber: None,
                request_id: String::new(),
                expected: Some(expected),
                seen: HashSet::new(),
                deadline: tokio::time::Instant::now(),
                started: Instant::now(),
                stats,
            });
        }

        let request_filter = match mode {
            Mode::Broadcast => filter,
            // A direct request is addressed by identity; the node does not filter it.
            Mode::Direct => Filter {
                agent: vec![call.agent.clone()],
                ..Filter::default()
            },
        };
        let request = self.request(
            &collective,
            &call.agent,
            &call.action,
            call.data.clone(),
            request_filter,
            ttl,
        );
        let subscriber = self.subscribe(&request.reply_to).await?;
        let started = Instant::now();
        match mode {
            Mode::Broadcast => {
                self.publish(subjects::broadcast(&collective, &call.agent), &request)
                    .await?
            }
            Mode::Direct => {
                for node in &expected {
                    self.publish(subjects::direct(&collective, node), &request)
                        .await?;
                }
            }
        }
        self.flush().await?;
        Ok(Replies {
            client: Some(self.clone()),
            subscriber: Some(subscriber),
            request_id: request.id,
            expected: Some(expected),
            seen: HashSet::new(),
            deadline: tokio::time::Instant::now() + timeout,
            started,
            stats,
        })
    }
}
