//! The node's state: settings, the agents it serves, facts, counters. Agents see it through
//! [`NodeInfo`]; the pipeline and the daemon share it behind an `Arc`.
//!
//! The agents are an [`AgentTable`] replaced whole when external agents are reloaded
//! ([`Node::replace_external`], on SIGHUP): a request holds the agent it was admitted with,
//! so a reload never changes or drops an action that is running. The table is read through
//! an `ArcSwap`, not a lock: every request of the fleet reads it, and a lock and a
//! reference count were four atomic writes to the node's memory a request, where a load
//! writes only to the reading thread's own slot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use mco_agents::data::{self, DataTask};
use mco_agents::fstat::FstatPolicy;
use mco_agents::{Agent, AgentSummary, NodeInfo};
use mco_spec::message::now_millis;
use serde_json::{json, Map, Value};

use crate::config::Settings;
use crate::facts::FactStore;
use crate::slots::Slots;
use crate::stats::Stats;

/// The agents a node serves at one moment, each already bounded by its `[concurrency]`.
#[derive(Default)]
pub struct AgentTable {
    /// By name, disabled agents removed, discovery included.
    agents: BTreeMap<String, Arc<dyn Agent>>,
    /// The same agents in one block, by name, for [`AgentTable::get`]: every request looks
    /// up its agent, and a map's nodes and the names' own allocations are several cache
    /// lines a busy node has lost from its caches, where this is one or two.
    index: Box<[Indexed]>,
    /// Names for filters and inventories, discovery excluded.
    names: Vec<String>,
    /// Which of them are external agents (what a reload replaces).
    external: BTreeSet<String>,
}

impl AgentTable {
    fn new(agents: BTreeMap<String, Arc<dyn Agent>>, external: BTreeSet<String>) -> AgentTable {
        let names = agents
            .keys()
            .filter(|n| *n != mco_spec::subjects::DISCOVERY_AGENT)
            .cloned()
            .collect();
        let index = agents
            .iter()
            .map(|(name, agent)| Indexed {
                key: NameKey::of(name),
                agent: agent.clone(),
            })
            .collect();
        AgentTable {
            agents,
            index,
            names,
            external,
        }
    }

    /// The agent called `name`, if served.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Agent>> {
        let key = NameKey::of(name);
        if !key.whole() {
            return self.agents.get(name);
        }
        self.index
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| &entry.agent)
    }

    /// Agent names as filters see them (`-A`), discovery excluded.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether an exact agent name in a filter (`-A name`) finds agent `name` here: the same
    /// answer as looking for it in [`Self::names`], from the index a request's agent is
    /// looked up in anyway, so a busy node reads no name of its own for the filter.
    pub fn filter_sees(&self, name: &str) -> bool {
        name != mco_spec::subjects::DISCOVERY_AGENT && self.get(name).is_some()
    }

    /// Every served agent name including `discovery`: what the daemon subscribes to.
    pub fn subscribed(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }
}

/// An agent's name as the index compares it: its length and first bytes, held in the
/// index itself. Names that fit are compared without reading anything else; longer ones are
/// looked up in the map.
#[derive(Clone, Copy, PartialEq, Eq)]
struct NameKey {
    len: usize,
    start: [u8; NameKey::HELD],
}

impl NameKey {
    /// Bytes of a name held in the key (agent names mostly fit).
    const HELD: usize = 24;

    fn of(name: &str) -> NameKey {
        let mut start = [0; NameKey::HELD];
        let held = name.len().min(NameKey::HELD);
        start[..held].copy_from_slice(&name.as_bytes()[..held]);
        NameKey {
            len: name.len(),
            start,
        }
    }

    /// Whether the key holds the whole name, so equal keys are equal names.
    fn whole(&self) -> bool {
        self.len <= NameKey::HELD
    }
}

/// One agent of [`AgentTable::index`].
struct Indexed {
    key: NameKey,
    agent: Arc<dyn Agent>,
}

/// What a reload of the external agents changed, by agent name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentChanges {
    /// Served now and not before.
    pub added: Vec<String>,
    /// Served before and not now.
    pub removed: Vec<String>,
    /// Served before and now, from what was loaded now.
    pub reloaded: Vec<String>,
}

/// Whether `agent` is an external agent (a program beside its DDL).
fn is_external(agent: &dyn Agent) -> bool {
    agent.ddl().metadata.provider.as_deref() == Some("external")
}

/// One node: what it is and what it serves.
///
/// `repr(C)` keeps the fields in the order written: what every request reads (counters,
/// agents, plugins, events, the identity at the start of the settings, then the head of
/// the security state) comes first and together, so a request touches few cache lines of
/// a node whose memory a busy machine has pushed out of its caches.
#[repr(C)]
pub struct Node {
    /// Counters (shared with the agents' slots, which count busy refusals).
    pub stats: Arc<Stats>,
    /// The agents served now.
    agents: ArcSwap<AgentTable>,
    /// The validator plugins every request's inputs are checked with (`plugins_dir`).
    pub(crate) plugins: Arc<mco_ddl::Plugins>,
    /// Where this node's events go out ([`crate::events`]).
    pub events: Arc<crate::events::EventSink>,
    /// The resolved configuration.
    pub settings: Settings,
    /// Trust, credentials, replay memory, policies and audit.
    pub security: crate::security::Security,
    /// Facts and classes.
    pub facts: FactStore,
    /// The node's action slots, which bound every agent, reloaded ones included.
    slots: Mutex<Slots>,
    /// The most messages the daemon holds at once ([`crate::slots::Slots::messages_in_hand`]),
    /// fixed at start.
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
        let mut slots = Slots::new(&settings, stats.clone());
        let external = agents
            .iter()
            .filter(|a| is_external(a.as_ref()))
            .map(|a| a.ddl().metadata.name.clone())
            .collect();
        let agents = bounded(&settings, &mut slots, agents);
        for name in settings.concurrency.agents.keys() {
            if !agents.contains_key(name) {
                tracing::warn!("[concurrency.agents.{name}]: this node serves no agent {name}");
            }
        }
        let security = crate::security::Security::insecure(&settings);
        let data_slots = Arc::new(tokio::sync::Semaphore::new(settings.data.max_concurrent));
        let fstat_policy = Arc::new(settings.data.fstat_policy());
        let events = Arc::new(crate::events::EventSink::new(&settings.events));
        Node {
            events,
            data_slots,
            fstat_policy,
            settings,
            facts,
            stats,
            messages_in_hand: slots.messages_in_hand(),
            slots: Mutex::new(slots),
            security,
            agents: ArcSwap::from_pointee(AgentTable::new(agents, external)),
            plugins: Arc::new(mco_ddl::Plugins::none()),
            started: now_millis() / 1000,
        }
    }

    /// The node with these security settings (by default it is insecure: tests only).
    pub fn with_security(mut self, security: crate::security::Security) -> Node {
        self.security = security;
        self
    }

    /// The node with the validator plugins of its `plugins_dir` (none otherwise).
    pub fn with_plugins(mut self, plugins: mco_ddl::Plugins) -> Node {
        self.plugins = Arc::new(plugins);
        self
    }

    /// The agents served now, held for a while (a request's admission): the table stays
    /// whole for the holder even if a reload replaces it meanwhile.
    pub fn agents_now(&self) -> arc_swap::Guard<Arc<AgentTable>> {
        self.agents.load()
    }

    /// The agent called `name`, if served.
    pub fn agent(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.agents.load().get(name).cloned()
    }

    /// Every served agent name including `discovery`: what the daemon subscribes to.
    pub fn subscribed_agents(&self) -> Vec<String> {
        self.agents_now().subscribed().map(str::to_string).collect()
    }

    /// Agent names as filters see them (`-A`), discovery excluded.
    pub fn agent_names(&self) -> Vec<String> {
        self.agents_now().names().to_vec()
    }

    /// Serves `external` in place of the external agents served now; the built-in and
    /// system agents stay. An external agent served now that is not in `external` but
    /// `keep` says still exists (it failed to load) stays as it was. Returns what changed.
    pub fn replace_external(
        &self,
        external: Vec<Arc<dyn Agent>>,
        keep: impl Fn(&str) -> bool,
    ) -> AgentChanges {
        let now = self.agents_now();
        let fresh: BTreeSet<String> = external
            .iter()
            .map(|a| a.ddl().metadata.name.clone())
            .collect();
        let mut agents: BTreeMap<String, Arc<dyn Agent>> = now
            .agents
            .iter()
            .filter(|(name, _)| {
                !now.external.contains(*name) || (!fresh.contains(*name) && keep(name))
            })
            .map(|(name, agent)| (name.clone(), agent.clone()))
            .collect();
        let mut kept_external: BTreeSet<String> = now
            .external
            .iter()
            .filter(|n| agents.contains_key(*n))
            .cloned()
            .collect();
        let external: Vec<Arc<dyn Agent>> = external
            .into_iter()
            .filter(|a| {
                let name = &a.ddl().metadata.name;
                let clash = agents.contains_key(name) && !kept_external.contains(name);
                if clash {
                    tracing::warn!("external agent {name} ignored: a built-in agent has that name");
                }
                !clash
            })
            .collect();
        let loaded = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            bounded(&self.settings, &mut slots, external)
        };
        kept_external.extend(loaded.keys().cloned());
        agents.extend(loaded);
        let changes = AgentChanges {
            added: agents
                .keys()
                .filter(|n| now.get(n).is_none())
                .cloned()
                .collect(),
            removed: now
                .agents
                .keys()
                .filter(|n| !agents.contains_key(*n))
                .cloned()
                .collect(),
            reloaded: now
                .external
                .iter()
                .filter(|n| fresh.contains(*n) && agents.contains_key(*n))
                .cloned()
                .collect(),
        };
        self.agents
            .store(Arc::new(AgentTable::new(agents, kept_external)));
        changes
    }
}

/// `agents` by name, minus those the settings disable, each bounded by its `[concurrency]`.
fn bounded(
    settings: &Settings,
    slots: &mut Slots,
    agents: Vec<Arc<dyn Agent>>,
) -> BTreeMap<String, Arc<dyn Agent>> {
    agents
        .into_iter()
        .map(|a| (a.ddl().metadata.name.clone(), a))
        .filter(|(name, _)| {
            name == mco_spec::subjects::DISCOVERY_AGENT || !settings.disabled_agents.contains(name)
        })
        .map(|(name, a)| {
            let limits = settings.concurrency.limits(&name);
            (name, slots.limit(a, limits))
        })
        .collect()
}

impl NodeInfo for Node {
    fn identity(&self) -> &str {
        &self.settings.identity
    }

    fn events(&self) -> Option<Arc<dyn mco_agents::EventEmitter>> {
        Some(self.events.clone())
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
        let table = self.agents_now();
        table
            .names()
            .iter()
            .filter_map(|n| table.get(n))
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
        let (user, system) = crate::stats::process_cpu_times();
        out.insert("threads".into(), json!([]));
        out.insert("agents".into(), json!(self.agent_names()));
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
        let Some(agent) = self.agent(plugin) else {
            return data::ready(Err(missing()));
        };
        let query = query.map(str::to_string);
        let missing = missing();
        Box::new(move || agent.data_query(query.as_deref()).unwrap_or(Err(missing)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use mco_agents::{ActionContext, Outcome};
    use mco_ddl::AgentDdl;

    /// An agent that is only its name.
    struct Named(AgentDdl);

    #[async_trait]
    impl Agent for Named {
        fn ddl(&self) -> &AgentDdl {
            &self.0
        }

        async fn call(&self, _: &ActionContext<'_>, _: &str, _: &Map<String, Value>) -> Outcome {
            Outcome::aborted("not for running")
        }
    }

    fn named(name: &str) -> Arc<dyn Agent> {
        let mut ddl = mco_agents::rpcutil::Rpcutil::new().ddl().clone();
        ddl.metadata.name = name.to_string();
        Arc::new(Named(ddl))
    }

    #[test]
    fn the_table_finds_each_agent_by_its_whole_name_however_long() {
        let long = "a_name_longer_than_the_key_holds_one";
        let names = [
            "rpcutil",
            "rpc",
            "discovery",
            "exactly_twenty_four_byte",
            "exactly_twenty_four_bytes",
            long,
            "a_name_longer_than_the_key_holds_two",
        ];
        let agents = names.iter().map(|n| (n.to_string(), named(n))).collect();
        let table = AgentTable::new(agents, BTreeSet::new());
        for name in names {
            let found = table.get(name).map(|a| a.ddl().metadata.name.clone());
            assert_eq!(found.as_deref(), Some(name));
        }
        // Prefixes, extensions and a name that differs only beyond the key are not served.
        for absent in [
            "rpcuti",
            "rpcutils",
            "",
            "exactly_twenty_four_byt",
            "a_name_longer_than_the_key_holds_three",
            &long[..24],
        ] {
            assert!(table.get(absent).is_none(), "{absent:?}");
        }
        assert!(!table.names().iter().any(|n| n == "discovery"));
    }
}
