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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mco_agents::{ActionContext, Agent, Outcome};
use mco_ddl::AgentDdl;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::config::{AgentLimits, Settings};
use crate::stats::Stats;

/// The node's action slots, shared by the agents it wraps.
pub(crate) struct Slots {
    /// One permit per action running, all agents together (`max_concurrent_actions`).
    global: Arc<Semaphore>,
    stats: Arc<Stats>,
    /// Actions that may run at once, all agents together.
    running: usize,
    /// What the agents' queues hold at most, summed.
    queued: usize,
}

impl Slots {
    pub(crate) fn new(settings: &Settings, stats: Arc<Stats>) -> Slots {
        Slots {
            global: Arc::new(Semaphore::new(settings.max_concurrent_actions)),
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
            limits,
            places: Semaphore::new(limits.max_concurrent + limits.max_waiting),
            running: Semaphore::new(limits.max_concurrent),
            global: self.global.clone(),
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
struct Limited {
    inner: Arc<dyn Agent>,
    limits: AgentLimits,
    /// One permit per request running or waiting.
    places: Semaphore,
    /// One permit per action of this agent running.
    running: Semaphore,
    global: Arc<Semaphore>,
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
        let running = max_concurrent.saturating_sub(self.running.available_permits());
        let held = (max_concurrent + max_waiting).saturating_sub(self.places.available_permits());
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
        // Semaphores are never closed here, so an error cannot happen; it is read as busy.
        let Ok(_place) = self.places.try_acquire() else {
            return self.busy(None);
        };
        // Free slots are taken at once; only a request that must wait for one starts a timer.
        if let Ok(own) = self.running.try_acquire() {
            if let Ok(node) = self.global.try_acquire() {
                let _slots = (own, node);
                return self.inner.call(ctx, action, data).await;
            }
        }
        let patience = Duration::from_secs(self.inner.ddl().metadata.timeout) / 2;
        let slots = async {
            let own = self.running.acquire().await.ok()?;
            let node = self.global.acquire().await.ok()?;
            Some((own, node))
        };
        match tokio::time::timeout(patience, slots).await {
            Ok(Some(_slots)) => self.inner.call(ctx, action, data).await,
            Ok(None) => self.busy(None),
            Err(_) => self.busy(Some(patience)),
        }
    }

    fn data_query(&self, query: Option<&str>) -> Option<Result<Value, String>> {
        self.inner.data_query(query)
    }
}
