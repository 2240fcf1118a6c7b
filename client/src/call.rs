//! Calls: what to send ([`Call`]), the replies as they arrive ([`Replies`], with batch
//! progress as [`Event`]s), the collected outcome ([`CallResult`], [`Stats`]), and requests
//! whose replies are read elsewhere ([`Client::send`], [`Client::listen`]).
//!
//! How a call reaches its nodes is decided here, in [`Client::call`]: when the node list is
//! known — named (`Call::nodes`, plain `-I`), read by a discovery method that yields a list
//! (flatfile, stdin, registry, external), narrowed by `--limit-nodes`, sliced into batches, or
//! found by a broadcast discovery to be at most `direct_threshold` nodes — each node gets a
//! direct request (queued in JetStream, see [`crate::direct`]); otherwise one broadcast with
//! the filter. [`Stats::mode_reason`] says which and why.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use mco_discovery::limit::{choose, slices, Size};
use mco_discovery::method::MethodKind;
use mco_spec::{subjects, Filter, Reply, TargetSet};
use serde_json::{Map, Value};

use crate::client::{Client, ClientError, ReplyRejected};
use crate::direct::{DirectRequest, QueueUse};
use crate::discovery::Discovery;

/// How a call reached its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One publish on the agent's broadcast subject; nodes apply the filter.
    Broadcast,
    /// One request per node on its direct subject.
    Direct,
}

/// `--limit-nodes`: act on part of the discovered nodes, chosen at random.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// How many.
    pub size: Size,
    /// A seed makes the choice repeatable.
    pub seed: Option<u64>,
}

/// `--batch`: direct requests in slices, each waited for before the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batch {
    /// Nodes per slice.
    pub size: Size,
    /// Pause between slices.
    pub sleep: Duration,
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
    /// How long to wait for replies (per batch when batching; the client's default if `None`).
    pub timeout: Option<Duration>,
    /// How long the request stays valid, seconds (the client's default if `None`).
    pub ttl: Option<u64>,
    /// Discovery timeout (the client's default if `None`).
    pub discovery_timeout: Option<Duration>,
    /// The nodes to address directly; when set, discovery is skipped.
    pub nodes: Option<Vec<String>>,
    /// Where the node list comes from when `nodes` is not set.
    pub discovery: Discovery,
    /// Act on part of the nodes only.
    pub limit: Option<Limit>,
    /// Send in slices.
    pub batch: Option<Batch>,
    /// Where nodes send their replies (a subject of the client's own by default); always
    /// under this caller's reply prefix ([`Client::reply_subject`]).
    pub reply_to: Option<String>,
    /// The request id (a fresh one by default): set it when a reader started before the call
    /// must know which replies are this call's ([`Client::listen`]). Ids must not repeat:
    /// nodes refuse an id they have run as a replay.
    pub request_id: Option<String>,
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
            discovery: Discovery::Broadcast,
            limit: None,
            batch: None,
            reply_to: None,
            request_id: None,
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

    /// Discovers with `discovery` instead of a broadcast.
    pub fn discovery(mut self, discovery: Discovery) -> Call {
        self.discovery = discovery;
        self
    }

    /// Acts on `size` of the nodes, chosen at random (repeatably with `seed`).
    pub fn limit(mut self, size: Size, seed: Option<u64>) -> Call {
        self.limit = Some(Limit { size, seed });
        self
    }

    /// Sends in slices of `size`, pausing `sleep` between them.
    pub fn batch(mut self, size: Size, sleep: Duration) -> Call {
        self.batch = Some(Batch { size, sleep });
        self
    }

    /// Has replies sent to `subject`.
    pub fn reply_to(mut self, subject: impl Into<String>) -> Call {
        self.reply_to = Some(subject.into());
        self
    }

    /// Sends the request with id `id` instead of a fresh one.
    pub fn request_id(mut self, id: impl Into<String>) -> Call {
        self.request_id = Some(id.into());
        self
    }
}

/// What happened in a call.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// How the call was sent (`None` if nothing was sent).
    #[serde(skip)]
    pub mode: Option<Mode>,
    /// Why that mode, in words.
    pub mode_reason: String,
    /// The discovery method used, if discovery happened.
    #[serde(serialize_with = "method_name")]
    pub discovery_method: Option<MethodKind>,
    /// Nodes the call was for (discovered, or named, after any limit).
    pub discovered: usize,
    /// Nodes that answered.
    pub responded: usize,
    /// Replies with status 0.
    pub ok: usize,
    /// Replies with another status.
    pub failed: usize,
    /// Nodes sent a request that did not answer, sorted.
    pub no_response_from: Vec<String>,
    /// Nodes that answered without being expected, sorted.
    pub unexpected_from: Vec<String>,
    /// Nodes never sent the request because the call was stopped between batches, sorted.
    pub not_contacted: Vec<String>,
    /// Nodes whose direct request the broker refused to queue, with why.
    pub send_failures: Vec<(String, String)>,
    /// Whether direct requests were queued in JetStream (`None` for a broadcast).
    pub queued: Option<bool>,
    /// Slices sent (1 without batching).
    pub batches: usize,
    /// Slices the call will send (1 unless batching; 0 when there is nobody to send to).
    pub batches_planned: usize,
    /// Things the caller should know (queuing unavailable, a TTL shorter than the run).
    pub warnings: Vec<String>,
    /// Time spent discovering.
    pub discovery_time: Duration,
    /// Time from publishing to the last reply (or the timeout).
    pub elapsed: Duration,
    /// Messages on the reply subject that were not valid replies to this request.
    pub dropped: usize,
    /// Replies whose signature or token did not verify (ignored).
    pub forged: usize,
}

fn method_name<S: serde::Serializer>(m: &Option<MethodKind>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.name()),
        None => s.serialize_none(),
    }
}

/// Replies with their statistics.
#[derive(Debug, Clone, Default)]
pub struct CallResult {
    /// Every reply, in arrival order.
    pub replies: Vec<Reply>,
    /// Every node the call was for, sorted.
    pub nodes: Vec<String>,
    /// What happened.
    pub stats: Stats,
}

/// What became of one node of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeOutcome<'a> {
    /// It answered (look at the status code).
    Replied(&'a Reply),
    /// It was sent the request and did not answer in time.
    NoResponse,
    /// The call was stopped before its batch.
    NotContacted,
}

impl CallResult {
    /// Each node the call was for, with its reply or why there is none: a caller can act on
    /// every host it named.
    pub fn by_node(&self) -> BTreeMap<&str, NodeOutcome<'_>> {
        let replies: BTreeMap<&str, &Reply> = self
            .replies
            .iter()
            .map(|r| (r.sender.as_str(), r))
            .collect();
        let not_contacted: HashSet<&str> = self
            .stats
            .not_contacted
            .iter()
            .map(String::as_str)
            .collect();
        self.nodes
            .iter()
            .map(|n| {
                let outcome = match replies.get(n.as_str()) {
                    Some(r) => NodeOutcome::Replied(r),
                    None if not_contacted.contains(n.as_str()) => NodeOutcome::NotContacted,
                    None => NodeOutcome::NoResponse,
                };
                (n.as_str(), outcome)
            })
            .collect()
    }
}

/// Something that happened during a call, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A node answered.
    Reply(Reply),
    /// A slice of direct requests was sent.
    BatchSent {
        /// Its number, from 1.
        number: usize,
        /// How many slices there are.
        of: usize,
        /// Its nodes.
        nodes: Vec<String>,
    },
    /// The call pauses before the next slice.
    Pause {
        /// The number of the slice that follows.
        before: usize,
        /// For how long.
        sleep: Duration,
    },
}

/// Stops a batched call before its next slice (the slice being waited for completes).
/// Cheap to clone; hand it to a signal handler.
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    inner: Arc<(AtomicBool, tokio::sync::Notify)>,
}

impl Stopper {
    /// Sends no further slices.
    pub fn stop(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_waiters();
    }

    /// Whether [`Self::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.0.load(Ordering::SeqCst)
    }
}

/// Replies as they arrive. Ends when every contacted node has answered (or at the timeout)
/// and no slice is left.
pub struct Replies {
    client: Option<Client>,
    subscriber: Option<async_nats::Subscriber>,
    request_id: String,
    collective: String,
    /// The signed request each slice's nodes get a copy of (none for a broadcast).
    direct: Option<Arc<DirectRequest>>,
    /// Every node the call is for.
    ///
    /// The three sets are shared: a broadcast contacts every expected node in one slice, and
    /// copying a fleet's names twice per call was a measurable part of a large call.
    expected: Arc<BTreeSet<String>>,
    /// Nodes sent the request so far.
    contacted: Arc<BTreeSet<String>>,
    /// Nodes of the slice being waited for.
    current: Arc<BTreeSet<String>>,
    /// How many of `current` have not answered yet: checked before every event, so it is
    /// kept as a count rather than recomputed over the slice (which is quadratic in the
    /// fleet size over a broadcast's replies).
    current_unanswered: usize,
    pending: VecDeque<Vec<String>>,
    batch_sleep: Duration,
    batches: usize,
    pause_announced: bool,
    timeout: Duration,
    seen: HashSet<String>,
    deadline: tokio::time::Instant,
    started: Instant,
    stats: Stats,
    events: VecDeque<Event>,
    /// Replies read and verified (in a batch) but not handed out yet.
    ready: VecDeque<Result<Reply, ReplyRejected>>,
    stopper: Stopper,
}

/// The most replies verified in one batch: large enough for batch verification to pay off
/// fully, small enough that the first replies of a large fleet are not held back.
const VERIFY_BATCH: usize = 256;

impl Replies {
    fn empty(stats: Stats) -> Replies {
        Replies {
            client: None,
            subscriber: None,
            request_id: String::new(),
            collective: String::new(),
            direct: None,
            expected: Arc::default(),
            contacted: Arc::default(),
            current: Arc::default(),
            current_unanswered: 0,
            pending: VecDeque::new(),
            batch_sleep: Duration::ZERO,
            batches: 0,
            pause_announced: false,
            timeout: Duration::ZERO,
            seen: HashSet::new(),
            deadline: tokio::time::Instant::now(),
            started: Instant::now(),
            stats,
            events: VecDeque::new(),
            ready: VecDeque::new(),
            stopper: Stopper::default(),
        }
    }

    /// The next reply, or `None` when the call is over.
    pub async fn next(&mut self) -> Option<Reply> {
        loop {
            match self.next_event().await? {
                Event::Reply(r) => return Some(r),
                Event::BatchSent { .. } | Event::Pause { .. } => continue,
            }
        }
    }

    /// The next reply or batch progress, or `None` when the call is over.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            self.subscriber.as_ref()?;
            // Replies already read and verified come first: they arrived in time.
            if let Some(accepted) = self.ready.pop_front() {
                if let Some(reply) = self.take(accepted) {
                    return Some(Event::Reply(reply));
                }
                continue;
            }
            let slice_done = self.current_unanswered == 0;
            if slice_done || tokio::time::Instant::now() >= self.deadline {
                if self.pending.is_empty() || self.stopper.is_stopped() {
                    return self.finish();
                }
                if !self.pause_announced && !self.batch_sleep.is_zero() {
                    self.pause_announced = true;
                    return Some(Event::Pause {
                        before: self.stats.batches + 1,
                        sleep: self.batch_sleep,
                    });
                }
                self.pause_announced = false;
                let stopped = self.stopper.clone();
                tokio::select! {
                    _ = tokio::time::sleep(self.batch_sleep) => {}
                    _ = stopped.inner.1.notified() => {}
                }
                if self.stopper.is_stopped() {
                    return self.finish();
                }
                if let Err(e) = self.send_next_slice().await {
                    self.stats.warnings.push(format!("stopped: {e}"));
                    return self.finish();
                }
                continue;
            }
            let subscriber = self.subscriber.as_mut()?;
            let message = match tokio::time::timeout_at(self.deadline, subscriber.next()).await {
                Ok(Some(m)) => m,
                Ok(None) => return self.finish(),
                // The slice's time is up; the loop decides what comes next.
                Err(_) => continue,
            };
            // Whatever else has arrived already is verified in the same batch.
            let mut batch = vec![message.payload];
            while batch.len() < VERIFY_BATCH {
                match subscriber.next().now_or_never() {
                    Some(Some(m)) => batch.push(m.payload),
                    _ => break,
                }
            }
            let Some(client) = &self.client else {
                return self.finish();
            };
            let payloads: Vec<&[u8]> = batch.iter().map(|b| b.as_ref()).collect();
            self.ready.extend(client.accept_replies(&payloads));
        }
    }

    /// Counts an accepted (or refused) reply; the reply if it is a new one for this call.
    fn take(&mut self, accepted: Result<Reply, ReplyRejected>) -> Option<Reply> {
        let reply = match accepted {
            Ok(r) if r.request_id == self.request_id => r,
            Err(ReplyRejected::Forged(_)) => {
                self.stats.forged += 1;
                return None;
            }
            _ => {
                self.stats.dropped += 1;
                return None;
            }
        };
        if !self.seen.insert(reply.sender.clone()) {
            self.stats.dropped += 1;
            return None;
        }
        if self.current.contains(&reply.sender) {
            self.current_unanswered = self.current_unanswered.saturating_sub(1);
        }
        self.stats.responded += 1;
        if reply.statuscode.is_ok() {
            self.stats.ok += 1;
        } else {
            self.stats.failed += 1;
        }
        if !self.expected.contains(&reply.sender) {
            self.stats.unexpected_from.push(reply.sender.clone());
        }
        self.stats.elapsed = self.started.elapsed();
        Some(reply)
    }

    async fn send_next_slice(&mut self) -> Result<(), ClientError> {
        let Some(slice) = self.pending.pop_front() else {
            return Ok(());
        };
        let (Some(client), Some(direct)) = (self.client.clone(), self.direct.clone()) else {
            return Ok(());
        };
        let sent = client
            .send_direct(&self.collective, &slice, &direct)
            .await?;
        self.stats.send_failures.extend(sent.failed);
        self.stats.batches += 1;
        Arc::make_mut(&mut self.contacted).extend(slice.iter().cloned());
        self.current = Arc::new(slice.iter().cloned().collect());
        self.current_unanswered = self
            .current
            .iter()
            .filter(|n| !self.seen.contains(*n))
            .count();
        self.deadline = tokio::time::Instant::now() + self.timeout;
        self.events.push_back(Event::BatchSent {
            number: self.stats.batches,
            of: self.batches,
            nodes: slice,
        });
        Ok(())
    }

    fn finish(&mut self) -> Option<Event> {
        if self.subscriber.take().is_some() {
            if self.stats.responded == 0 || self.contacted.len() != self.seen.len() {
                self.stats.elapsed = self.started.elapsed();
            }
            self.stats.no_response_from = self
                .contacted
                .iter()
                .filter(|n| !self.seen.contains(*n))
                .cloned()
                .collect();
            self.stats.not_contacted = self
                .expected
                .iter()
                .filter(|n| !self.contacted.contains(*n))
                .cloned()
                .collect();
            self.stats.unexpected_from.sort();
        }
        None
    }

    /// Stops now, without waiting for more replies or sending more slices; the statistics
    /// are then complete (nodes still silent count as no response).
    pub fn close(&mut self) {
        self.pending.clear();
        self.events.clear();
        self.ready.clear();
        self.finish();
    }

    /// The statistics so far (complete once [`Self::next`] returned `None`).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A handle that stops the call before its next slice.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Every node the call is for, sorted.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.expected.iter().map(String::as_str)
    }

    /// Reads every reply and returns them with the statistics.
    pub async fn collect(mut self) -> CallResult {
        let mut replies = Vec::new();
        while let Some(r) = self.next().await {
            replies.push(r);
        }
        CallResult {
            replies,
            nodes: Arc::try_unwrap(self.expected)
                .unwrap_or_else(|shared| (*shared).clone())
                .into_iter()
                .collect(),
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

/// A request sent by [`Client::send`], whose replies are read elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The request id, which every reply carries.
    pub request_id: String,
    /// Where the replies go.
    pub reply_to: String,
    /// Every node the request went to (for a broadcast: the discovered ones).
    pub nodes: Vec<String>,
    /// How it was sent.
    pub stats: Stats,
}

/// A call resolved: who, how, and the signed request.
struct Plan {
    collective: String,
    mode: Mode,
    nodes: Vec<String>,
    request_id: String,
    reply_to: String,
    /// The encoded request: the broadcast's payload, or the base of every direct copy.
    payload: Bytes,
    /// For direct mode: the signed request and the targets it is bound to.
    direct: Option<Arc<DirectRequest>>,
    slices: VecDeque<Vec<String>>,
    stats: Stats,
}

impl Client {
    /// Sends `call` and returns its replies.
    ///
    /// The agent is always added to the filter, so nodes without it stay silent. See the
    /// [module docs](self) for how the mode is chosen.
    pub async fn call(&self, call: Call) -> Result<Replies, ClientError> {
        let mut plan = self.plan(&call).await?;
        if plan.nodes.is_empty() {
            return Ok(Replies::empty(plan.stats));
        }
        let subscriber = self.subscribe(&plan.reply_to).await?;
        let timeout = call.timeout.unwrap_or(self.options().timeout);
        let started = Instant::now();
        let batches = plan.slices.len();
        let mut replies = Replies {
            client: Some(self.clone()),
            subscriber: Some(subscriber),
            request_id: plan.request_id,
            collective: plan.collective.clone(),
            direct: plan.direct.clone(),
            expected: Arc::new(std::mem::take(&mut plan.nodes).into_iter().collect()),
            contacted: Arc::default(),
            current: Arc::default(),
            current_unanswered: 0,
            pending: std::mem::take(&mut plan.slices),
            batch_sleep: call.batch.map(|b| b.sleep).unwrap_or_default(),
            batches,
            pause_announced: false,
            timeout,
            seen: HashSet::new(),
            deadline: tokio::time::Instant::now() + timeout,
            started,
            stats: plan.stats,
            events: VecDeque::new(),
            ready: VecDeque::new(),
            stopper: Stopper::default(),
        };
        match plan.mode {
            Mode::Broadcast => {
                self.publish_bytes(
                    subjects::broadcast(&plan.collective, &call.agent),
                    plan.payload,
                )
                .await?;
                self.flush().await?;
                replies.stats.batches = 1;
                replies.contacted = Arc::clone(&replies.expected);
                replies.current = Arc::clone(&replies.expected);
                replies.current_unanswered = replies.current.len();
            }
            Mode::Direct => {
                replies.send_next_slice().await?;
                if batches == 1 {
                    // Without batching, progress events would be noise.
                    replies.events.clear();
                }
            }
        }
        Ok(replies)
    }

    /// Sends `call` without waiting for replies (`--nr`, `--reply-to`): they go to
    /// `call.reply_to` (or the client's own reply subject, where nobody listens), to be read
    /// by [`Client::listen`] here or in another process. Batching needs the replies of each
    /// slice, so it is refused here.
    pub async fn send(&self, call: Call) -> Result<Sent, ClientError> {
        if call.batch.is_some() {
            return Err(ClientError::InvalidInput(
                "batching waits for each slice's replies, so it cannot be combined with sending without waiting (--nr, --reply-to)".into(),
            ));
        }
        let mut plan = self.plan(&call).await?;
        if !plan.nodes.is_empty() {
            match plan.mode {
                Mode::Broadcast => {
                    self.publish_bytes(
                        subjects::broadcast(&plan.collective, &call.agent),
                        plan.payload.clone(),
                    )
                    .await?;
                    self.flush().await?;
                }
                Mode::Direct => {
                    if let Some(direct) = &plan.direct {
                        let sent = self
                            .send_direct(&plan.collective, &plan.nodes, direct)
                            .await?;
                        plan.stats.send_failures = sent.failed;
                    }
                }
            }
            plan.stats.batches = 1;
        }
        Ok(Sent {
            request_id: plan.request_id,
            reply_to: plan.reply_to,
            nodes: plan.nodes,
            stats: plan.stats,
        })
    }

    /// Decides who gets the call and how, discovers if needed, and builds the signed request.
    async fn plan(&self, call: &Call) -> Result<Plan, ClientError> {
        let collective = self.collective(call.collective.as_deref())?;
        if !subjects::is_valid_token(&call.agent) || !subjects::is_valid_token(&call.action) {
            return Err(ClientError::InvalidInput(format!(
                "{}#{} is not a valid agent and action",
                call.agent, call.action
            )));
        }
        if let Some(subject) = &call.reply_to {
            subjects::check_reply_to(&collective, &self.options().caller, subject)
                .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        }
        let mut filter = call.filter.clone();
        if !filter.agent.contains(&call.agent) {
            filter.agent.push(call.agent.clone());
        }
        filter.compile()?;
        let o = self.options();
        let mut stats = Stats::default();

        let started_discovery = Instant::now();
        let named = call
            .nodes
            .clone()
            .map(|n| (n, "the node list was given"))
            .or_else(|| match call.discovery {
                Discovery::Broadcast => call
                    .filter
                    .plain_identities()
                    .map(|ids| (ids.to_vec(), "-I named the nodes")),
                _ => None,
            });
        let (mut nodes, mut mode, mut reason) = match named {
            Some((nodes, why)) => {
                if let Some(bad) = nodes.iter().find(|n| !subjects::is_valid_identity(n)) {
                    return Err(ClientError::InvalidInput(format!(
                        "{bad:?} is not a valid identity"
                    )));
                }
                let mut nodes = nodes;
                nodes.sort();
                nodes.dedup();
                (nodes, Mode::Direct, why.to_string())
            }
            None => {
                // A node list knows names only: the agent this call adds is not a filter on it.
                let for_method = match call.discovery {
                    Discovery::List { .. } => &call.filter,
                    _ => &filter,
                };
                let found = self
                    .discover_with(
                        &call.discovery,
                        for_method,
                        Some(&collective),
                        call.discovery_timeout,
                    )
                    .await?;
                stats.discovery_method = Some(found.method);
                stats.discovery_time = started_discovery.elapsed();
                let count = found.nodes.len();
                if found.method.yields_node_list() {
                    let why = format!(
                        "the {} discovery method gave the node list",
                        found.method.name()
                    );
                    (found.nodes, Mode::Direct, why)
                } else if count <= o.direct_threshold {
                    let why = format!(
                        "broadcast discovery found {count} node(s), at most direct_addressing_threshold ({})",
                        o.direct_threshold
                    );
                    (found.nodes, Mode::Direct, why)
                } else {
                    let why = format!(
                        "broadcast discovery found {count} nodes, more than direct_addressing_threshold ({}): one broadcast with the filter",
                        o.direct_threshold
                    );
                    (found.nodes, Mode::Broadcast, why)
                }
            }
        };
        if let Some(limit) = call.limit {
            let before = nodes.len();
            nodes = choose(&nodes, limit.size, limit.seed);
            if nodes.len() < before {
                mode = Mode::Direct;
                reason = format!("--limit-nodes chose {} of {before} nodes", nodes.len());
            }
        }
        if call.batch.is_some() && mode == Mode::Broadcast {
            mode = Mode::Direct;
            reason = "batching sends direct requests in slices".into();
        }
        stats.mode = (!nodes.is_empty()).then_some(mode);
        stats.batches_planned = slices_planned(mode, call.batch, &nodes);
        stats.mode_reason = reason;
        stats.discovered = nodes.len();

        let slices: VecDeque<Vec<String>> = match (mode, call.batch) {
            (Mode::Direct, Some(batch)) => slices(&nodes, batch.size).into(),
            (Mode::Direct, None) => VecDeque::from([nodes.clone()]),
            (Mode::Broadcast, _) => VecDeque::new(),
        };
        let timeout = call.timeout.unwrap_or(o.timeout);
        let ttl = ttl_for(call, o.ttl, timeout, slices.len(), &mut stats.warnings);
        if mode == Mode::Direct && !nodes.is_empty() {
            match self.direct_queue_use(&collective).await {
                QueueUse::Queued => stats.queued = Some(true),
                QueueUse::NotQueued(why) => {
                    stats.queued = Some(false);
                    stats.warnings.push(format!(
                        "direct requests are not queued ({why}): nodes that are down now will not get them"
                    ));
                }
            }
        }

        let request_filter = match mode {
            Mode::Broadcast => filter,
            // A direct request is addressed by identity; the node does not filter it.
            Mode::Direct => Filter {
                agent: vec![call.agent.clone()],
                ..Filter::default()
            },
        };
        let mut request = self.request(
            &collective,
            &call.agent,
            &call.action,
            call.data.clone(),
            request_filter,
            ttl,
        );
        if let Some(id) = &call.request_id {
            request.reply_to = subjects::reply(&collective, &request.caller, id);
            request.id = id.clone();
        }
        if let Some(subject) = &call.reply_to {
            request.reply_to = subject.clone();
        }
        request
            .validate()
            .map_err(|e| ClientError::InvalidInput(format!("the request: {e}")))?;
        // A direct request names its nodes in the signed bytes, so a copy read off one node's
        // subject cannot be run on another: every slice's nodes are among one target set.
        let targets = match mode {
            Mode::Direct => TargetSet::new(nodes.iter().cloned()),
            Mode::Broadcast => None,
        };
        request.targets = targets.as_ref().map(TargetSet::targets);
        let payload = self.encode(&request)?;
        let direct = targets.map(|targets| {
            Arc::new(DirectRequest {
                envelope: payload.clone(),
                targets,
            })
        });
        Ok(Plan {
            collective,
            mode,
            nodes,
            request_id: request.id,
            reply_to: request.reply_to,
            payload,
            direct,
            slices,
            stats,
        })
    }
}

fn slices_planned(mode: Mode, batch: Option<Batch>, nodes: &[String]) -> usize {
    match (mode, batch) {
        (Mode::Direct, Some(batch)) => slices(nodes, batch.size).len(),
        _ => usize::from(!nodes.is_empty()),
    }
}

/// The request's TTL. One request (one id, one signature) serves every slice of a batched
/// call, so its TTL must cover the whole run: without `--ttl` it is stretched to, with a
/// `--ttl` too short for the run a warning says so.
fn ttl_for(
    call: &Call,
    default_ttl: u64,
    timeout: Duration,
    slices: usize,
    warnings: &mut Vec<String>,
) -> u64 {
    let run = match call.batch {
        Some(batch) if slices > 1 => {
            let n = slices as u64;
            n * timeout.as_secs().max(1) + (n - 1) * batch.sleep.as_secs().max(1)
        }
        _ => 0,
    };
    match call.ttl {
        Some(ttl) => {
            if run > ttl {
                warnings.push(format!(
                    "the TTL of {ttl} s is shorter than the batched run may take ({run} s): nodes in late batches may refuse the request as expired"
                ));
            }
            ttl
        }
        None => default_ttl
            .saturating_add(run)
            .min(mco_spec::message::MAX_TTL_SECONDS),
    }
}

/// Replies to one request arriving on a subject, read by a process other than the one that
/// sent the request (`mco replies`, a web application's worker).
pub struct Listener {
    client: Client,
    subscriber: async_nats::Subscriber,
    request_id: String,
    seen: HashSet<String>,
    /// Messages that were not acceptable replies.
    pub dropped: usize,
    /// Replies whose signature did not verify.
    pub forged: usize,
}

impl Client {
    /// Subscribes to `subject` for the replies to request `request_id`; signed replies to
    /// anything else (another request, an old one replayed onto the subject) are dropped.
    /// Subscribe before sending, or replies that arrive first are missed.
    pub async fn listen(&self, subject: &str, request_id: &str) -> Result<Listener, ClientError> {
        let subscriber = self.subscribe(subject).await?;
        // The subscription must be in place on the broker before anyone sends.
        self.flush().await?;
        Ok(Listener {
            client: self.clone(),
            subscriber,
            request_id: request_id.to_string(),
            seen: HashSet::new(),
            dropped: 0,
            forged: 0,
        })
    }
}

impl Listener {
    /// The next verified reply before `deadline`, or `None` at the deadline.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<Reply> {
        loop {
            let message = tokio::time::timeout_at(deadline, self.subscriber.next())
                .await
                .ok()??;
            match self.client.accept_reply(&message.payload) {
                Ok(reply) => {
                    if reply.request_id != self.request_id {
                        self.dropped += 1;
                        continue;
                    }
                    if !self.seen.insert(reply.sender.clone()) {
                        self.dropped += 1;
                        continue;
                    }
                    return Some(reply);
                }
                Err(ReplyRejected::Forged(_)) => self.forged += 1,
                Err(_) => self.dropped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batched_run_stretches_the_default_ttl_and_warns_about_a_short_one() {
        let call = Call::new("rpcutil", "ping").batch(Size::Count(2), Duration::from_secs(5));
        let mut warnings = Vec::new();
        // 4 slices: 4 × 10 s waiting + 3 × 5 s sleeping.
        assert_eq!(
            ttl_for(&call, 60, Duration::from_secs(10), 4, &mut warnings),
            60 + 55
        );
        assert!(warnings.is_empty());
        let short = call.clone().ttl(30);
        assert_eq!(
            ttl_for(&short, 60, Duration::from_secs(10), 4, &mut warnings),
            30
        );
        assert!(
            warnings[0].contains("shorter than the batched run"),
            "{warnings:?}"
        );
        let plain = Call::new("rpcutil", "ping");
        assert_eq!(
            ttl_for(&plain, 60, Duration::from_secs(10), 1, &mut warnings),
            60
        );
    }

    #[test]
    fn by_node_names_every_node() {
        let reply = Reply {
            request_id: "r".into(),
            sender: "a".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 0,
            statuscode: mco_spec::StatusCode::Ok,
            statusmsg: "OK".into(),
            data: Value::Null,
        };
        let result = CallResult {
            replies: vec![reply.clone()],
            nodes: vec!["a".into(), "b".into(), "c".into()],
            stats: Stats {
                not_contacted: vec!["c".into()],
                ..Stats::default()
            },
        };
        let by_node = result.by_node();
        assert_eq!(by_node["a"], NodeOutcome::Replied(&reply));
        assert_eq!(by_node["b"], NodeOutcome::NoResponse);
        assert_eq!(by_node["c"], NodeOutcome::NotContacted);
    }
}
