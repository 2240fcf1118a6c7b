//! A call's replies as they arrive: [`Replies`] is a `futures::Stream` of replies (so
//! `while let Some(r) = replies.next().await` and every `StreamExt` combinator work), with
//! batch progress as [`Event`]s from [`Replies::next_event`], statistics at any time
//! ([`Replies::stats`]), a [`Stopper`] that ends a batched call before its next slice, and
//! [`Replies::collect`] for the whole [`CallResult`]. Dropping it ends the call and its
//! subscription.
//!
//! The stream ends when every contacted node has answered (or at the timeout) and no slice is
//! left. Replies pass the one reply gate ([`crate::accept`]): verified in batches of what has
//! already arrived, only this call's request id, once per sender; output defaults from the
//! agent's DDL are filled in.
//!
//! Not for: deciding whom to contact (the plan did) or sending the first slice's request
//! twice (each slice is sent once, when it is due).

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use mco_spec::{subjects, Reply};

use crate::accept::{ReplyGate, ReplyRejected};
use crate::call::Prepared;
use crate::client::Client;
use crate::ddl::ActionDdl;
use crate::error::CallError;
use crate::link::DirectRequest;
use crate::result::{note_sorted, CallResult, Mode, Stats, Warning};

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

/// The most replies verified in one batch: large enough for batch verification to pay off
/// fully, small enough that the first replies of a large fleet are not held back.
const VERIFY_BATCH: usize = 256;

/// What the call knows so far, shared between the stream that reads the replies and the
/// handle that reports on them (and may close the call between two events).
#[derive(Debug)]
struct Progress {
    stats: Stats,
    gate: ReplyGate,
    /// Every node the call is for. The three sets are shared: a broadcast contacts every
    /// expected node in one slice, and copying a fleet's names twice per call was a
    /// measurable part of a large call.
    expected: Arc<BTreeSet<String>>,
    /// Nodes sent the request so far.
    contacted: Arc<BTreeSet<String>>,
    /// Nodes of the slice being waited for.
    current: Arc<BTreeSet<String>>,
    /// How many of `current` have not answered: kept as a count, since rescanning the slice
    /// before every reply is quadratic over a broadcast.
    current_unanswered: usize,
    started: Instant,
    finished: bool,
}

impl Progress {
    /// Counts an accepted (or refused) reply; the reply if it is a new one for this call.
    fn take(&mut self, accepted: Result<Reply, ReplyRejected>) -> Option<Reply> {
        let reply = self.gate.admit(accepted);
        self.stats.forged = self.gate.forged;
        self.stats.dropped = self.gate.dropped;
        let reply = reply?;
        // Each lookup compares names along a path through a tree of a fleet's names: a node
        // of the slice is expected, so one lookup mostly answers both questions.
        let in_current = self.current.contains(&reply.sender);
        if in_current {
            self.current_unanswered = self.current_unanswered.saturating_sub(1);
        }
        self.stats.responded += 1;
        if reply.statuscode.is_ok() {
            self.stats.ok += 1;
        } else {
            self.stats.failed += 1;
            self.stats.note_clock_refusal(&reply);
        }
        // A node that refused discovery for clock trouble answers a broadcast the same way:
        // it is named as such, not as unexpected.
        if !in_current
            && !self.expected.contains(&reply.sender)
            && self
                .stats
                .clock_refused
                .binary_search(&reply.sender)
                .is_err()
        {
            self.stats.unexpected_from.push(reply.sender.clone());
        }
        self.stats.elapsed = self.started.elapsed();
        Some(reply)
    }

    /// Completes the statistics: who did not answer, who was never asked.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let seen = self.gate.seen();
        if self.stats.responded == 0 || self.contacted.len() != seen.len() {
            self.stats.elapsed = self.started.elapsed();
        }
        self.stats.no_response_from = self
            .contacted
            .iter()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        // Expected by discovery and silent: not contacted, but not to be forgotten. One that
        // answered the broadcast after all is not in the list.
        let missing = std::mem::take(&mut self.stats.discovery_missing);
        for node in &missing {
            if !seen.contains(node) {
                note_sorted(&mut self.stats.no_response_from, node);
            }
        }
        self.stats.discovery_missing = missing;
        self.stats.not_contacted = self
            .expected
            .iter()
            .filter(|n| !self.contacted.contains(*n))
            .cloned()
            .collect();
        self.stats.unexpected_from.sort();
    }

    /// Starts waiting for `slice`.
    fn contact(&mut self, slice: &[String]) {
        Arc::make_mut(&mut self.contacted).extend(slice.iter().cloned());
        self.current = Arc::new(slice.iter().cloned().collect());
        let seen = self.gate.seen();
        self.current_unanswered = self.current.iter().filter(|n| !seen.contains(*n)).count();
        self.stats.batches += 1;
    }
}

type Shared = Arc<Mutex<Progress>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Progress> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The loop that reads a call's replies and sends its slices.
struct Driver {
    client: Client,
    subscriber: async_nats::Subscriber,
    collective: String,
    direct: Option<Arc<DirectRequest>>,
    pending: VecDeque<Vec<String>>,
    batch_sleep: Duration,
    batches: usize,
    pause_announced: bool,
    timeout: Duration,
    deadline: tokio::time::Instant,
    events: VecDeque<Event>,
    /// Replies read and verified (in a batch) but not handed out yet.
    ready: VecDeque<Result<Reply, ReplyRejected>>,
    stopper: Stopper,
    action: Option<ActionDdl>,
    shared: Shared,
}

impl Driver {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if lock(&self.shared).finished {
                return None;
            }
            // Replies already read and verified come first: they arrived in time.
            if let Some(accepted) = self.ready.pop_front() {
                let taken = lock(&self.shared).take(accepted);
                if let Some(mut reply) = taken {
                    if let Some(action) = &self.action {
                        action.complete(&mut reply);
                    }
                    return Some(Event::Reply(reply));
                }
                continue;
            }
            let slice_done = lock(&self.shared).current_unanswered == 0;
            if slice_done || tokio::time::Instant::now() >= self.deadline {
                if self.pending.is_empty() || self.stopper.is_stopped() {
                    return self.finish();
                }
                if !self.pause_announced && !self.batch_sleep.is_zero() {
                    self.pause_announced = true;
                    let before = lock(&self.shared).stats.batches + 1;
                    return Some(Event::Pause {
                        before,
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
                    lock(&self.shared).stats.warnings.push(Warning::Stopped {
                        reason: e.to_string(),
                    });
                    return self.finish();
                }
                continue;
            }
            let message = match tokio::time::timeout_at(self.deadline, self.subscriber.next()).await
            {
                Ok(Some(m)) => m,
                Ok(None) => return self.finish(),
                // The slice's time is up; the loop decides what comes next.
                Err(_) => continue,
            };
            // Whatever else has arrived already is verified in the same batch.
            let mut batch = vec![message.payload];
            while batch.len() < VERIFY_BATCH {
                match self.subscriber.next().now_or_never() {
                    Some(Some(m)) => batch.push(m.payload),
                    _ => break,
                }
            }
            let payloads: Vec<&[u8]> = batch.iter().map(|b| b.as_ref()).collect();
            self.ready.extend(self.client.accept_replies(&payloads));
        }
    }

    async fn send_next_slice(&mut self) -> Result<(), CallError> {
        let (Some(slice), Some(direct)) = (self.pending.pop_front(), self.direct.clone()) else {
            return Ok(());
        };
        // Queuing waits for the broker's acknowledgements, which never come while the
        // connection is down: a slice gets no longer to be sent than to be answered, but
        // at least long enough for the broker's refusals to be told apart.
        let link = self.client.link();
        let limit = self.timeout.max(link.send_direct_limit());
        let sent = tokio::time::timeout(limit, link.send_direct(&self.collective, &slice, &direct))
            .await
            .map_err(|_| link.unanswered(limit))??;
        let number = {
            let mut progress = lock(&self.shared);
            progress.stats.send_failures.extend(sent.failed);
            progress.contact(&slice);
            progress.stats.batches
        };
        self.deadline = tokio::time::Instant::now() + self.timeout;
        self.events.push_back(Event::BatchSent {
            number,
            of: self.batches,
            nodes: slice,
        });
        Ok(())
    }

    fn finish(&mut self) -> Option<Event> {
        lock(&self.shared).finish();
        None
    }
}

/// Replies as they arrive; see the [module docs](self).
pub struct Replies {
    events: Option<BoxStream<'static, Event>>,
    shared: Shared,
    stopper: Stopper,
    action: Option<ActionDdl>,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("stats", &lock(&self.shared).stats)
            .finish()
    }
}

impl Replies {
    /// Sends the prepared call's request (its broadcast, or its first slice) and returns the
    /// replies to come.
    pub(crate) async fn start(
        client: &Client,
        prepared: Prepared,
        batch_sleep: Duration,
    ) -> Result<Replies, CallError> {
        let Prepared {
            collective,
            agent,
            mode,
            nodes,
            request_id,
            reply_to,
            payload,
            direct,
            slices,
            stats,
            action,
            timeout,
        } = prepared;
        // The nodes are the caller's own list (discovery's, or the ones it named): room for
        // each of their replies is what the call would take anyway.
        let gate = ReplyGate::expecting(request_id, nodes.len());
        let shared = Arc::new(Mutex::new(Progress {
            stats,
            gate,
            expected: Arc::new(nodes.into_iter().collect()),
            contacted: Arc::default(),
            current: Arc::default(),
            current_unanswered: 0,
            started: Instant::now(),
            finished: false,
        }));
        let stopper = Stopper::default();
        if lock(&shared).expected.is_empty() {
            lock(&shared).finish();
            return Ok(Replies {
                events: None,
                shared,
                stopper,
                action,
            });
        }
        let subscriber = client.link().subscribe(&reply_to).await?;
        let batches = slices.len();
        let mut driver = Driver {
            client: client.clone(),
            subscriber,
            collective: collective.clone(),
            direct,
            pending: slices,
            batch_sleep,
            batches,
            pause_announced: false,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
            events: VecDeque::new(),
            ready: VecDeque::new(),
            stopper: stopper.clone(),
            action: action.clone(),
            shared: shared.clone(),
        };
        match mode {
            Mode::Broadcast => {
                client
                    .link()
                    .publish(subjects::broadcast(&collective, &agent), payload)
                    .await?;
                client.link().flush_before(driver.deadline).await?;
                let mut progress = lock(&shared);
                let expected = progress.expected.clone();
                progress.stats.batches = 1;
                progress.contacted = expected.clone();
                progress.current_unanswered = expected.len();
                progress.current = expected;
            }
            Mode::Direct => {
                driver.send_next_slice().await?;
                if batches == 1 {
                    // Without batching, progress events would be noise.
                    driver.events.clear();
                }
            }
        }
        let events = futures::stream::unfold(driver, |mut driver| async move {
            driver.next_event().await.map(|event| (event, driver))
        })
        .boxed();
        Ok(Replies {
            events: Some(events),
            shared,
            stopper,
            action,
        })
    }

    /// The next reply or batch progress, or `None` when the call is over.
    pub async fn next_event(&mut self) -> Option<Event> {
        let event = self.events.as_mut()?.next().await;
        if event.is_none() {
            self.events = None;
        }
        event
    }

    /// Stops now, without waiting for more replies or sending more slices; the statistics
    /// are then complete (nodes still silent count as no response).
    pub fn close(&mut self) {
        self.events = None;
        lock(&self.shared).finish();
    }

    /// The statistics so far (complete once the stream has ended).
    pub fn stats(&self) -> Stats {
        lock(&self.shared).stats.clone()
    }

    /// A handle that stops the call before its next slice.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Every node the call is for, sorted.
    pub fn nodes(&self) -> Vec<String> {
        lock(&self.shared).expected.iter().cloned().collect()
    }

    /// Reads every reply and returns them with the statistics.
    pub async fn collect(mut self) -> CallResult {
        let mut replies = Vec::new();
        while let Some(event) = self.next_event().await {
            if let Event::Reply(reply) = event {
                replies.push(reply);
            }
        }
        let mut result = self.result(replies);
        result.run_aggregate_plugins().await;
        result
    }

    /// The call's result with `replies` (read by the caller from this stream).
    pub fn result(&self, replies: Vec<Reply>) -> CallResult {
        let progress = lock(&self.shared);
        CallResult {
            replies,
            nodes: progress.expected.iter().cloned().collect(),
            stats: progress.stats.clone(),
            action: self.action.clone(),
            plugin_aggregates: Vec::new(),
        }
    }
}

impl Stream for Replies {
    type Item = Reply;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Reply>> {
        loop {
            let Some(events) = self.events.as_mut() else {
                return Poll::Ready(None);
            };
            match events.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.events = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Event::Reply(reply))) => return Poll::Ready(Some(reply)),
                Poll::Ready(Some(_)) => continue,
            }
        }
    }
}
