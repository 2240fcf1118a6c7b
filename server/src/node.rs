//! The node's state: settings, the agents it serves, facts, counters. Agents see it through
//! [`NodeInfo`]; the pipeline and the daemon share it behind an `Arc`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mco_agents::data::{self, DataTask};
use mco_agents::fstat::FstatPolicy;
use mco_agents::{Agent, AgentSummary, NodeInfo};
use mco_spec::message::now_millis;
use serde_json::{json, Map, Value};

use crate::config::Settings;
use crate::facts::FactStore;
use crate::stats::Stats;

/// One node: what it is and what it serves.
pub struct Node {
    /// The resolved configuration.
    pub settings: Settings,
    /// Facts and classes.
    pub facts: FactStore,
    /// Counters (shared with the agents' slots, which count busy refusals).
    pub stats: Arc<Stats>,
    /// Trust, credentials, replay memory, policies and audit.
    pub security: crate::security::Security,
    /// Served agents by name (disabled agents removed), discovery included.
    agents: BTreeMap<String, Arc<dyn Agent>>,
    /// Agent names for filters and inventories, discovery excluded.
    agent_names: Vec<String>,
    /// The most messages the daemon holds at once ([`crate::slots::Slots::messages_in_hand`]).
    pub(crate) messages_in_hand: usize,
    /// One permit per data-plugin evaluation allowed at once (`[data] max_concurrent`).
    pub(crate) data_slots: Arc<tokio::sync::Semaphore>,
    /// Where fstat may look, resolved once from `[data] fstat_paths`; shared with the data
    /// tasks that run off the runtime.
    fstat_policy: Arc<FstatPolicy>,
    started: u64,
}

impl Node {
    /// A node serving `agents` (minus those the settings disable), each within its
    /// `[concurrency]` bounds.
    pub fn new(settings: Settings, facts: FactStore, agents: Vec<Arc<dyn Agent>>) -> Node {
        let stats = Arc::new(Stats::default());
        let mut slots = crate::slots::Slots::new(&settings, stats.clone());
        let agents: BTreeMap<String, Arc<dyn Agent>> = agents
            .into_iter()
            .map(|a| (a.ddl().metadata.name.clone(), a))
            .filter(|(name, _)| {
                name == mco_spec::subjects::DISCOVERY_AGENT
                    || !settings.disabled_agents.contains(name)
            })
            .map(|(name, a)| {
                let limits = settings.concurrency.limits(&name);
                (name, slots.limit(a, limits))
            })
            .collect();
        for name in settings.concurrency.agents.keys() {
            if !agents.contains_key(name) {
                tracing::warn!("[concurrency.agents.{name}]: this node serves no agent {name}");
            }
        }
        let agent_names = agents
            .keys()
            .filter(|n| *n != mco_spec::subjects::DISCOVERY_AGENT)
            .cloned()
            .collect();
        let security = crate::security::Security::insecure(&settings);
        let data_slots = Arc::new(tokio::sync::Semaphore::new(settings.data.max_concurrent));
        let fstat_policy = Arc::new(settings.data.fstat_policy());
        Node {
            data_slots,
            fstat_policy,
            settings,
            facts,
            stats,
            messages_in_hand: slots.messages_in_hand(),
            security,
            agents,
            agent_names,
            started: now_millis() / 1000,
        }
    }

    /// The node with these security settings (by default it is insecure: tests only).
    pub fn with_security(mut self, security: crate::security::Security) -> Node {
        self.security = security;
        self
    }

    /// The agent called `name`, if served.
    pub fn agent(&self, name: &str) -> Option<&Arc<dyn Agent>> {
        self.agents.get(name)
    }

    /// Every served agent name including `discovery`: what the daemon subscribes to.
    pub fn subscribed_agents(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }

    /// Agent names as filters see them (`-A`), discovery excluded.
    pub fn agent_names(&self) -> &[String] {
        &self.agent_names
    }
}

impl NodeInfo for Node {
    fn identity(&self) -> &str {
        &self.settings.identity
    }

    fn facts(&self) -> Arc<Value> {
        self.facts.facts()
    }

    fn classes(&self) -> Arc<Vec<String>> {
        self.facts.classes()
    }

    fn collectives(&self) -> Vec<String> {
        self.settings.collectives.clone()
    }

    fn main_collective(&self) -> String {
        self.settings.main_collective.clone()
    }

    fn agents(&self) -> Vec<AgentSummary> {
        self.agent_names
            .iter()
            .filter_map(|n| self.agents.get(n))
            .map(|a| AgentSummary::of(a.ddl()))
            .collect()
    }

    fn stats(&self) -> Map<String, Value> {
        let mut out: Map<String, Value> = self
            .stats
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let (user, system) = cpu_times();
        out.insert("threads".into(), json!([]));
        out.insert("agents".into(), json!(self.agent_names));
        out.insert("pid".into(), json!(std::process::id()));
        out.insert("times".into(), json!({"utime": user, "stime": system}));
        out.insert("starttime".into(), json!(self.started));
        out.insert(
            "configfile".into(),
            json!(self
                .settings
                .config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()),
        );
        out.insert("version".into(), json!(self.version()));
        out.insert("events".into(), json!(0));
        out
    }

    fn config_item(&self, item: &str) -> Option<Value> {
        self.settings.item(item)
    }

    fn fstat_policy(&self) -> Arc<FstatPolicy> {
        self.fstat_policy.clone()
    }

    fn data_task(&self, plugin: &str, query: Option<&str>) -> DataTask {
        if let Some(task) = data::builtin_task(plugin, query, self) {
            return task;
        }
        let missing = || format!("no data plugin called {plugin:?} on this node");
        let Some(agent) = self.agents.get(plugin).cloned() else {
            return data::ready(Err(missing()));
        };
        let query = query.map(str::to_string);
        let missing = missing();
        Box::new(move || agent.data_query(query.as_deref()).unwrap_or(Err(missing)))
    }
}

/// User and system CPU seconds of this process.
fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage(2) fills the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return (0.0, 0.0);
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}
