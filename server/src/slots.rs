//! Who may run an action now: each agent's share of the node's action slots
//! (`[concurrency]`), under the node's `max_concurrent_actions` for all agents together.
//!
//! Every agent the node serves is wrapped in a [`Limited`] agent. A request that passed
//! admission takes a place in its agent's bounded queue (running or waiting), then one of the
//! agent's slots and one of the node's; a request that finds the queue full, or waits half
//! its agent's timeout without a slot (so an action that starts has at least half its time
//! to run), is answered with a refusal that says so ("busy: ...", status 1, aborted) and counted as
//! `busy` in `daemon_stats`. So a slow agent holds only its own slots: requests for other
//! agents (`rpcutil ping`) still run, and a flood of it is refused instead of piling up.
//!
//! [`Slots::messages_in_hand`] is the bound the daemon puts on the messages it holds at once
//! (those running, waiting, and in admission), so its memory stays bounded.
//!
//! Not for: deciding whether a request may run at all (admission, in the pipeline) or how
//! long an action may take (its DDL timeout, in the pipeline).

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mco_agents::{ActionContext, Agent, Outcome};
use mco_ddl::AgentDdl;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::config::{AgentLimits, Settings};
use crate::stats::Stats;

/// A count of places in use, up to a limit, taken and given back with one atomic operation
/// each and no lock: a fleet-wide broadcast takes and returns places on every node, and a
/// semaphore that locks its waiters' list on every release touches memory a busy node no
/// longer has in its caches.
#[derive(Debug)]
#[repr(C)]
struct Count {
    used: AtomicUsize,
    limit: usize,
}

/// A place of a [`Count`], given back when dropped.
struct Place<'a>(&'a Count);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

impl Count {
    fn new(limit: usize) -> Count {
        Count {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes a place if one is free now; whoever took it gives it back.
    fn take_one(&self) -> bool {
        self.used
            .fetch_update(SeqCst, SeqCst, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .is_ok()
    }

    /// Gives back a place [`Count::take_one`] took.
    fn give_back(&self) {
        self.used.fetch_sub(1, SeqCst);
    }

    /// A free place, if there is one now.
    fn try_take(&self) -> Option<Place<'_>> {
        self.take_one().then(|| Place(self))
    }

    fn used(&self) -> usize {
        self.used.load(SeqCst)
    }
}

/// A [`Count`] of slots that a request may also wait for. Only a request that has to wait
/// uses `freed`; a release looks at it only when someone waits.
///
/// Waiting is not first come, first served: a slot freed while requests wait goes to
/// whichever asks first, a waiter woken or a request just arrived. A waiter that loses
/// waits on, within its patience ([`Limited::call`]), so none waits without bound.
#[derive(Debug)]
#[repr(C)]
struct Gate {
    slots: Count,
    /// Requests waiting for a slot.
    waiting: AtomicUsize,
    freed: Notify,
}

/// A slot of a [`Gate`], given back (and a waiter woken) when dropped.
struct Slot<'a>(&'a Gate);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.slots.give_back();
        if self.0.waiting.load(SeqCst) > 0 {
            self.0.freed.notify_one();
        }
    }
}

impl Gate {
    fn new(limit: usize) -> Gate {
        Gate {
            slots: Count::new(limit),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// A free slot, if there is one now.
    fn try_take(&self) -> Option<Slot<'_>> {
        self.slots.take_one().then(|| Slot(self))
    }

    /// A slot, once one is free (cancel by dropping the future).
    async fn take(&self) -> Slot<'_> {
        if let Some(slot) = self.try_take() {
            return slot;
        }
        // Counted before looking again, and a release looks at the count after freeing its
        // slot (both sequentially consistent): either this sees the slot or the release
        // sees this waiter and wakes one (a wake-up with no waiter registered yet is kept by
        // `Notify` for the next).
        let _counted = Waiting::count(&self.waiting);
        loop {
            let mut freed = pin!(self.freed.notified());
            freed.as_mut().enable();
            if let Some(slot) = self.try_take() {
                return slot;
            }
            freed.await;
        }
    }
}

/// One waiter counted in a [`Gate`] for as long as it lives, however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Waiting<'_> {
    fn count(waiting: &AtomicUsize) -> Waiting<'_> {
        waiting.fetch_add(1, SeqCst);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// The node's action slots, shared by the agents it wraps.
pub(crate) struct Slots {
    /// One slot per action running, all agents together (`max_concurrent_actions`).
    global: Arc<Gate>,
    stats: Arc<Stats>,
    /// Actions that may run at once, all agents together.
    running: usize,
    /// What the agents' queues hold at most, summed.
    queued: usize,
}

impl Slots {
    pub(crate) fn new(settings: &Settings, stats: Arc<Stats>) -> Slots {
        Slots {
            global: Arc::new(Gate::new(settings.max_concurrent_actions)),
            stats,
            running: settings.max_concurrent_actions,
            queued: 0,
        }
    }

    /// `agent`, bounded by `limits`.
    pub(crate) fn limit(&mut self, agent: Arc<dyn Agent>, limits: AgentLimits) -> Arc<dyn Agent> {
        self.queued += limits.max_waiting;
        Arc::new(Limited {
            inner: agent,
            places: Count::new(limits.max_concurrent + limits.max_waiting),
            running: Gate::new(limits.max_concurrent),
            global: self.global.clone(),
            limits,
            stats: self.stats.clone(),
        })
    }

    /// The most messages the daemon needs to hold at once to keep every agent's queue and
    /// slots full and still read on: all that may run, all that may wait, and as many again
    /// in admission. Beyond it the daemon stops reading (the broker and the subscriptions'
    /// bounded buffers hold the rest), never because one agent is slow.
    pub(crate) fn messages_in_hand(&self) -> usize {
        2 * self.running + self.queued
    }
}

/// An agent that runs at most `limits.max_concurrent` actions at once, with at most
/// `limits.max_waiting` requests waiting for a slot.
///
/// `repr(C)`: what every request reads (the agent, the places, the node's slots and the
/// counts of its own) comes first, so a request that finds free slots touches little more
/// than the start of it.
#[repr(C)]
struct Limited {
    inner: Arc<dyn Agent>,
    /// One place per request running or waiting.
    places: Count,
    global: Arc<Gate>,
    /// One slot per action of this agent running.
    running: Gate,
    limits: AgentLimits,
    stats: Arc<Stats>,
}

impl Limited {
    /// The refusal of a request this agent has no room for; `waited` when it waited in vain.
    fn busy(&self, waited: Option<Duration>) -> Outcome {
        Stats::bump(&self.stats.busy);
        let AgentLimits {
            max_concurrent,
            max_waiting,
        } = self.limits;
        let running = self.running.slots.used().min(max_concurrent);
        let held = self.places.used();
        let waiting = held.saturating_sub(running);
        let name = &self.inner.ddl().metadata.name;
        let mut reason = format!(
            "busy: agent {name} is running {running} actions and has {waiting} waiting (max_concurrent {max_concurrent}, max_waiting {max_waiting})"
        );
        match waited {
            Some(waited) => reason.push_str(&format!(
                "; this request waited {} s for a slot",
                waited.as_secs_f64()
            )),
            None if running < max_concurrent => {
                // Its own slots are free: the node's are all taken by other agents.
                reason.push_str(" and the node's max_concurrent_actions are all running");
            }
            None => {}
        }
        tracing::debug!("{reason}");
        Outcome::aborted(reason)
    }

    /// This agent's slot and one of the node's, once both are free.
    async fn both_slots(&self) -> (Slot<'_>, Slot<'_>) {
        let own = self.running.take().await;
        let node = self.global.take().await;
        (own, node)
    }
}

#[async_trait]
impl Agent for Limited {
    fn ddl(&self) -> &AgentDdl {
        self.inner.ddl()
    }

    async fn call(
        &self,
        ctx: &ActionContext<'_>,
        action: &str,
        data: &Map<String, Value>,
    ) -> Outcome {
        let Some(_place) = self.places.try_take() else {
            return self.busy(None);
        };
        // Free slots are taken at once; only a request that must wait for one starts a timer.
        if let Some(own) = self.running.try_take() {
            if let Some(node) = self.global.try_take() {
                let _slots = (own, node);
                return self.inner.call(ctx, action, data).await;
            }
        }
        let patience = Duration::from_secs(self.inner.ddl().metadata.timeout) / 2;
        match tokio::time::timeout(patience, self.both_slots()).await {
            Ok(_slots) => self.inner.call(ctx, action, data).await,
            Err(_) => self.busy(Some(patience)),
        }
    }

    fn data_query(&self, query: Option<&str>) -> Option<Result<Value, String>> {
        self.inner.data_query(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_gives_places_up_to_its_limit_and_takes_them_back_when_dropped() {
        let count = Count::new(2);
        let a = count.try_take();
        let b = count.try_take();
        assert!(a.is_some() && b.is_some());
        assert!(count.try_take().is_none());
        assert_eq!(count.used(), 2);
        drop(a);
        assert_eq!(count.used(), 1);
        assert!(count.try_take().is_some());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_that_is_given_back() {
        let gate = Arc::new(Gate::new(1));
        let held = gate.try_take();
        assert!(held.is_some());
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _slot = gate.take().await;
                gate.slots.used()
            })
        };
        // The waiter is counted before it waits; only then is the slot given back.
        while gate.waiting.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let used_while_held = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was woken")
            .expect("the waiter ran");
        assert_eq!(used_while_held, 1);
        assert_eq!(gate.slots.used(), 0);
        assert_eq!(gate.waiting.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_nothing_behind() {
        let gate = Gate::new(1);
        let held = gate.try_take();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), gate.take()).await;
        assert!(gave_up.is_err());
        assert_eq!(gate.waiting.load(SeqCst), 0);
        drop(held);
        // The slot is free for the next, waiting or not.
        let next = tokio::time::timeout(Duration::from_secs(5), gate.take()).await;
        assert!(next.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_share_few_slots_without_losing_one() {
        let gate = Arc::new(Gate::new(3));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (gate, peak) = (gate.clone(), peak.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let _slot = gate.take().await;
                        peak.fetch_max(gate.slots.used(), SeqCst);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("no task waits for ever")
                .expect("the task ran");
        }
        assert!(peak.load(SeqCst) <= 3);
        assert_eq!(gate.slots.used(), 0);
        assert_eq!(gate.waiting.load(SeqCst), 0);
    }
}
