//! What a node serves and enforces from files, loaded at start and again on SIGHUP: facts and
//! classes, action policies, and the external agents with their DDLs.
//!
//! A reload changes nothing for requests already admitted (each holds its agent and the
//! policy set it was checked with) and keeps what is in force when a file no longer loads:
//! a fact file that does not parse keeps its last good content, a policy directory with a
//! bad file keeps the policies in force, an external agent whose DDL or program no longer
//! loads keeps its previous version until its DDL is removed. The log says what changed and
//! what failed. Keys, trust, the configuration file and the built-in agents take a restart.
//!
//! Not for: subscribing to what changed (the daemon does, [`crate::daemon`]).

use std::sync::Arc;

use mco_agents::Agent;
use serde_json::Value;

use crate::config::Settings;
use crate::node::{AgentChanges, Node};
use crate::policy::PolicySet;

/// Every agent a node with `settings` serves at start: the built-in ones, the system agents
/// the machine has tools for, and the external agents in `agent_dirs` (one with a built-in
/// agent's name is ignored).
pub async fn agents_at_start(settings: &Settings, facts: &Value) -> Vec<Arc<dyn Agent>> {
    let mut agents = mco_agents::registry::builtin_agents();
    let (system, inactive) = mco_agents::registry::system_agents(&settings.agents);
    for reason in inactive {
        tracing::info!("{reason}");
    }
    agents.extend(system);
    for agent in external_agents(settings, facts).await {
        let name = agent.ddl().metadata.name.clone();
        if agents.iter().any(|a| a.ddl().metadata.name == name) {
            tracing::warn!("external agent {name} ignored: a built-in agent has that name");
        } else {
            tracing::info!("loaded external agent {name}");
            agents.push(agent);
        }
    }
    agents
}

/// The external agents in `agent_dirs` now, with what could not be loaded logged.
async fn external_agents(settings: &Settings, facts: &Value) -> Vec<Arc<dyn Agent>> {
    let (external, skipped) = mco_agents::external::load_external_agents(
        &settings.agent_dirs,
        &settings.plugin_config_dir,
        facts,
        // For the load warnings only: a validator a plugin provides is enforced. A broken
        // plugin directory stops mcod at start (main), so it is only empty here.
        &mco_ddl::Plugins::load(&settings.plugins_dir).unwrap_or_default(),
    )
    .await;
    for reason in skipped {
        tracing::warn!("{reason}");
    }
    external
}

/// Whether an external agent called `name` still has a DDL in `agent_dirs` (so one that did
/// not load failed, rather than being removed).
fn has_ddl(settings: &Settings, name: &str) -> bool {
    settings.agent_dirs.iter().any(|dir| {
        dir.join(format!("{name}.json")).is_file()
            || dir.join(name).join(format!("{name}.json")).is_file()
    })
}

/// Reloads facts, classes, policies and external agents (SIGHUP); returns what changed in
/// the agents, for the daemon's subscriptions.
pub async fn reload(node: &Arc<Node>) -> AgentChanges {
    tracing::info!("SIGHUP: reloading facts, classes, policies and external agents");
    let before = (node.facts.facts(), node.facts.classes());
    let reader = node.clone();
    // File reads stay off the runtime's workers.
    let _ = tokio::task::spawn_blocking(move || reader.facts.reload()).await;
    if (node.facts.facts(), node.facts.classes()) == before {
        tracing::info!("facts and classes unchanged");
    } else {
        tracing::info!("facts or classes changed");
    }
    reload_policies(node);
    let external = external_agents(&node.settings, &node.facts.facts()).await;
    let changes = node.replace_external(external, |name| {
        let kept = has_ddl(&node.settings, name);
        if kept {
            tracing::warn!(
                "external agent {name} did not load (see above): keeping the version in force"
            );
        }
        kept
    });
    tracing::info!(
        added = ?changes.added,
        removed = ?changes.removed,
        reloaded = ?changes.reloaded,
        agents = ?node.agent_names(),
        "agents reloaded"
    );
    changes
}

fn reload_policies(node: &Node) {
    let Some(dir) = &node.settings.policy_dir else {
        return;
    };
    match PolicySet::load_dir(dir, node.settings.allow_unconfigured) {
        Ok(policies) => {
            node.security.set_policies(Some(policies));
            tracing::info!("reloaded the policies in {}", dir.display());
        }
        Err(e) => tracing::error!("{e}: keeping the policies in force"),
    }
}
