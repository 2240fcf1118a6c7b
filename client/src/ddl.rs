//! The agents' DDLs on the client, so that a call is checked and its replies completed as the
//! command line does: inputs converted by their declared types and validated (the same
//! `validate_inputs` the node runs) before anything is sent, output defaults filled in on
//! every reply, the DDL's aggregates computed over a call's replies, and `-S` data-plugin
//! names checked before a filter is sent.
//!
//! DDLs come from `ddl_dirs` (first) and the ones built in (rpcutil, service, package,
//! puppet); each agent's is read once per [`Ddls`]. An agent with no DDL is called without
//! checks: its inputs go as given, its replies as they come.
//!
//! Not for: rendering replies (the command line's display rules use [`ActionDdl::action`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mco_ddl::{Action, AgentDdl, AggregateResult, Aggregator, Plugins};
use mco_spec::{Filter, Reply};
use serde_json::{Map, Value};

use crate::error::{invalid, CallError, CallErrorKind};

/// The data plugins nodes answer in `-S` filters besides the agents' own (`service('x')`).
pub const BUILTIN_DATA_PLUGINS: [&str; 4] = ["agent", "collective", "fact", "fstat"];

/// The DDLs a client knows, read on first use.
#[derive(Debug, Default)]
pub struct Ddls {
    dirs: Vec<PathBuf>,
    read: Mutex<HashMap<String, Option<Arc<AgentDdl>>>>,
    /// The validators and aggregate functions installed besides the built-in ones.
    plugins: Arc<Plugins>,
}

/// One action of an agent's DDL.
#[derive(Debug, Clone)]
pub struct ActionDdl {
    ddl: Arc<AgentDdl>,
    index: usize,
    plugins: Arc<Plugins>,
}

impl ActionDdl {
    /// The agent's DDL.
    pub fn agent(&self) -> &AgentDdl {
        &self.ddl
    }

    /// The action.
    pub fn action(&self) -> &Action {
        // Made only by `Ddls::action` from an index into this DDL's actions.
        &self.ddl.actions[self.index]
    }

    /// Fills the declared output defaults into a reply's data.
    pub fn complete(&self, reply: &mut Reply) {
        if let Value::Object(map) = &mut reply.data {
            self.action().apply_output_defaults(map);
        }
    }

    /// The declared aggregates over the successful replies among `replies`.
    pub fn aggregates<'a>(
        &self,
        replies: impl IntoIterator<Item = &'a Reply>,
    ) -> Vec<AggregateResult> {
        let mut aggregator = Aggregator::new(self.action());
        for reply in replies.into_iter().filter(|r| r.statuscode.is_ok()) {
            if let Some(map) = reply.data.as_object() {
                aggregator.add(map);
            }
        }
        aggregator.results()
    }

    /// The declared aggregates that plugins compute, over the successful replies among
    /// `replies` (run once per call: each is a program).
    pub async fn plugin_aggregates(&self, replies: &[Reply]) -> Vec<AggregateResult> {
        let data: Vec<&Map<String, Value>> = replies
            .iter()
            .filter(|r| r.statuscode.is_ok())
            .filter_map(|r| r.data.as_object())
            .collect();
        self.plugins
            .aggregates(self.action(), data.iter().copied())
            .await
    }
}

impl Ddls {
    /// DDLs from `dirs` (searched first) and the built-in ones.
    pub fn new(dirs: Vec<PathBuf>) -> Ddls {
        Ddls {
            dirs,
            read: Mutex::default(),
            plugins: Arc::default(),
        }
    }

    /// With the validator and aggregate `plugins` of the machine.
    pub fn with_plugins(mut self, plugins: Plugins) -> Ddls {
        self.plugins = Arc::new(plugins);
        self
    }

    /// The directories searched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The agents with a DDL (in the directories and built in), sorted.
    pub fn names(&self) -> Vec<String> {
        mco_ddl::builtin::all_names(&self.dirs)
    }

    /// The DDL of `agent`, if there is one; an error when its file is unreadable or invalid.
    pub fn agent(&self, agent: &str) -> Result<Option<Arc<AgentDdl>>, CallError> {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = read.get(agent) {
            return Ok(known.clone());
        }
        let found = mco_ddl::builtin::find(agent, &self.dirs)
            .map_err(|e| CallError::from_source(CallErrorKind::Ddl, e))?
            .map(Arc::new);
        read.insert(agent.to_string(), found.clone());
        Ok(found)
    }

    /// The DDL of `agent`'s `action`: `None` when the agent has no DDL, an error when its
    /// DDL has no such action.
    pub fn action(&self, agent: &str, action: &str) -> Result<Option<ActionDdl>, CallError> {
        let Some(ddl) = self.agent(agent)? else {
            return Ok(None);
        };
        match ddl.actions.iter().position(|a| a.action == action) {
            Some(index) => Ok(Some(ActionDdl {
                ddl,
                index,
                plugins: self.plugins.clone(),
            })),
            None => {
                let known: Vec<&str> = ddl.action_names().collect();
                Err(invalid(format!(
                    "agent {agent} has no action {action} (actions: {})",
                    known.join(", ")
                )))
            }
        }
    }

    /// The inputs of a call: `text` (`key=value` as typed) converted by the action's declared
    /// types and merged into `data`, then validated as the node will; without a DDL, `text`
    /// values are strings and nothing is checked. Validator plugins are checked too.
    pub async fn inputs(
        &self,
        action: Option<&ActionDdl>,
        mut data: Map<String, Value>,
        text: &[(String, String)],
    ) -> Result<Map<String, Value>, CallError> {
        let Some(action) = action else {
            for (k, v) in text {
                data.insert(k.clone(), Value::String(v.clone()));
            }
            return Ok(data);
        };
        let spec = action.action();
        let converted = spec
            .convert_cli_args(text.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| CallError::from_source(CallErrorKind::InvalidInput, e))?;
        data.extend(converted);
        self.plugins
            .validate_inputs(spec, &mut data)
            .await
            .map_err(|e| CallError::from_source(CallErrorKind::InvalidInput, e))?;
        Ok(data)
    }

    /// Checks that every data plugin `filter`'s `-S` expressions call is one the nodes
    /// answer: a typo is an error here, never an empty result.
    pub fn check_filter(&self, filter: &Filter) -> Result<(), CallError> {
        let compiled = filter.compile()?;
        let plugins = compiled.data_plugins();
        if plugins.is_empty() {
            return Ok(());
        }
        let mut known: Vec<String> = BUILTIN_DATA_PLUGINS.iter().map(|s| s.to_string()).collect();
        known.extend(mco_ddl::builtin::all_names(&self.dirs));
        known.sort();
        match plugins.into_iter().find(|p| !known.iter().any(|k| k == p)) {
            Some(unknown) => Err(invalid(format!(
                "unknown data plugin {unknown:?} in -S (known: {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn inputs_are_converted_and_checked_before_sending() {
        let ddls = Ddls::default();
        let puppet = ddls.action("puppet", "runonce").unwrap();
        let data = ddls
            .inputs(
                puppet.as_ref(),
                Map::new(),
                &text(&[("noop", "yes"), ("splaylimit", "30")]),
            )
            .await
            .unwrap();
        assert_eq!(
            Value::Object(data),
            serde_json::json!({"noop": true, "splaylimit": 30})
        );
        let restart = ddls.action("service", "restart").unwrap();
        let err = ddls
            .inputs(restart.as_ref(), Map::new(), &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CallErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "action restart needs a service argument");
        let err = ddls
            .inputs(
                restart.as_ref(),
                Map::new(),
                &text(&[("service", "x;reboot")]),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid input service"), "{err}");
        let err = ddls.action("service", "explode").unwrap_err();
        assert!(
            err.to_string()
                .contains("has no action explode (actions: restart, start, status, stop)"),
            "{err}"
        );
        assert!(ddls.action("custom", "go").unwrap().is_none());
        let plain = ddls
            .inputs(None, Map::new(), &text(&[("n", "5")]))
            .await
            .unwrap();
        assert_eq!(plain["n"], "5");
    }

    #[test]
    fn unknown_data_plugins_are_refused() {
        let ddls = Ddls::default();
        let mut filter = Filter::default();
        filter
            .add_compound("fstat('/etc/hosts').size>1 and service('x').status=running")
            .unwrap();
        assert!(ddls.check_filter(&filter).is_ok());
        filter.add_compound("nope('x').a=1").unwrap();
        let err = ddls.check_filter(&filter).unwrap_err();
        assert!(
            err.to_string().contains("unknown data plugin \"nope\""),
            "{err}"
        );
    }
}
