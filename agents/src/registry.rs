//! The one place built-in agents are registered. Adding an agent means adding its file and
//! one line here (and its settings table to [`AgentSettings`] if it has any).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::agent::Agent;
use crate::package::{PackageAgent, PackageSettings};
use crate::puppet::{PuppetAgent, PuppetSettings};
use crate::service::{ServiceAgent, ServiceSettings};

/// The agents every node serves, discovery included.
pub fn builtin_agents() -> Vec<Arc<dyn Agent>> {
    vec![
        Arc::new(crate::discovery::Discovery::new()),
        Arc::new(crate::rpcutil::Rpcutil::new()),
    ]
}

/// A setting of the `[agents]` table with a value its type allows but the agent cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidSetting {
    /// The key, as written in the configuration (`agents.puppet.manifest`).
    pub key: &'static str,
    /// Why it cannot be used.
    pub reason: String,
}

impl InvalidSetting {
    pub(crate) fn new(key: &'static str, reason: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            key,
            reason: reason.into(),
        }
    }
}

/// Why an agent is not served on this node: the tools it runs are not there (or not
/// usable as configured). Not an error of the daemon, which serves its other agents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// The `[agents]` table of mcod's configuration: one table per agent that manages the node
/// through its own tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// `[agents.package]`.
    #[serde(default)]
    pub package: PackageSettings,
    /// `[agents.service]`.
    #[serde(default)]
    pub service: ServiceSettings,
    /// `[agents.puppet]`.
    #[serde(default)]
    pub puppet: PuppetSettings,
}

impl AgentSettings {
    /// Checks values that types cannot; the error names the key (`agents.puppet.manifest`).
    pub fn check(&self) -> Result<(), InvalidSetting> {
        self.package.check()?;
        self.service.check()?;
        self.puppet.check()
    }

    /// The settings with relative paths taken from `base` (the configuration's directory).
    /// A `command` without a `/` is looked up on `PATH`, so it is left alone.
    pub fn resolved(&self, base: &Path) -> AgentSettings {
        let absolute = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let mut resolved = self.clone();
        resolved.service.init_dir = self.service.init_dir.as_deref().map(absolute);
        resolved.puppet.manifest = self.puppet.manifest.as_deref().map(absolute);
        resolved.puppet.command = self.puppet.command.as_ref().map(|c| {
            if c.contains('/') {
                absolute(Path::new(c)).display().to_string()
            } else {
                c.clone()
            }
        });
        resolved
    }
}

/// The agents that manage the node through its own tools (`package`, `service`, `puppet`),
/// each when the node has what it needs; the rest come back as the reasons they are not
/// served, for the log.
pub fn system_agents(settings: &AgentSettings) -> (Vec<Arc<dyn Agent>>, Vec<String>) {
    type Activation = Result<Arc<dyn Agent>, Unavailable>;
    let candidates: [(&str, Activation); 3] = [
        (
            "package",
            PackageAgent::activate(&settings.package).map(|a| Arc::new(a) as Arc<dyn Agent>),
        ),
        (
            "service",
            ServiceAgent::activate(&settings.service).map(|a| Arc::new(a) as Arc<dyn Agent>),
        ),
        (
            "puppet",
            PuppetAgent::activate(&settings.puppet).map(|a| Arc::new(a) as Arc<dyn Agent>),
        ),
    ];
    let mut agents = Vec::new();
    let mut inactive = Vec::new();
    for (name, candidate) in candidates {
        match candidate {
            Ok(agent) => agents.push(agent),
            Err(why) => inactive.push(format!("the {name} agent is not served: {why}")),
        }
    }
    (agents, inactive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_resolve_relative_paths_and_name_bad_keys() {
        let settings: AgentSettings = toml_like(
            r#"{"service": {"init_dir": "init.d"}, "puppet": {"run_mode": "apply", "manifest": "site.pp", "command": "bin/puppet"}}"#,
        );
        let resolved = settings.resolved(Path::new("/etc/mco"));
        assert_eq!(
            resolved.service.init_dir.as_deref(),
            Some(Path::new("/etc/mco/init.d"))
        );
        assert_eq!(
            resolved.puppet.manifest.as_deref(),
            Some(Path::new("/etc/mco/site.pp"))
        );
        assert_eq!(
            resolved.puppet.command.as_deref(),
            Some("/etc/mco/bin/puppet")
        );
        assert!(resolved.check().is_ok());
        let unknown = serde_json::from_str::<AgentSettings>(r#"{"package": {"providr": "apt"}}"#);
        assert!(unknown.unwrap_err().to_string().contains("providr"));
        let bad_provider =
            serde_json::from_str::<AgentSettings>(r#"{"package": {"provider": "zypper"}}"#);
        assert!(bad_provider.is_err());
    }

    #[test]
    fn system_agents_are_served_when_their_tools_are_there() {
        let settings: AgentSettings = toml_like(r#"{"puppet": {"command": "no-such-puppet-mco"}}"#);
        let (agents, inactive) = system_agents(&settings);
        assert!(!agents.iter().any(|a| a.ddl().metadata.name == "puppet"));
        assert!(
            inactive
                .iter()
                .any(|r| r.starts_with("the puppet agent is not served: ")),
            "{inactive:?}"
        );
    }

    fn toml_like(json: &str) -> AgentSettings {
        serde_json::from_str(json).unwrap()
    }
}
