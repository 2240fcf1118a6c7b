//! The agent interface: [`Agent`], what an action sees ([`ActionContext`], [`NodeInfo`]) and
//! what it returns ([`Outcome`]).

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use mco_ddl::AgentDdl;
use mco_spec::{Request, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::data::DataTask;
use crate::fstat::FstatPolicy;

/// A named set of actions served by a node.
#[async_trait]
pub trait Agent: Send + Sync {
    /// The agent's DDL: its name, metadata, timeout and actions.
    fn ddl(&self) -> &AgentDdl;

    /// Runs `action` with inputs already validated against the DDL.
    ///
    /// The caller has checked that the DDL declares `action`; an agent that declares an
    /// action it does not implement answers [`Outcome::unknown_action`].
    async fn call(
        &self,
        ctx: &ActionContext<'_>,
        action: &str,
        data: &Map<String, Value>,
    ) -> Outcome;

    /// The agent's data plugin, named after the agent (`service('nginx').status`): answers a
    /// query with a JSON object of outputs. Used by `-S` filters and `rpcutil get_data`,
    /// which call it on a blocking thread; it must still be bounded (a short time limit on
    /// any command it runs), since a blocking thread cannot be stopped. `None` means the
    /// agent provides no data plugin.
    fn data_query(&self, _query: Option<&str>) -> Option<Result<Value, String>> {
        None
    }
}

/// What an action may know about the request and the node.
pub struct ActionContext<'a> {
    /// The request being served (id, caller, sender, collective...).
    pub request: &'a Request<'a>,
    /// The node.
    pub node: &'a dyn NodeInfo,
}

/// An agent as listed by `agent_inventory`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSummary {
    /// The agent name.
    pub agent: String,
    /// Same as `agent` (MCollective lists both).
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its version.
    pub version: String,
    /// Its author.
    pub author: String,
    /// Its licence.
    pub license: String,
    /// Its action timeout, seconds.
    pub timeout: u64,
    /// Where to read more.
    pub url: String,
}

impl AgentSummary {
    /// The summary of an agent's DDL.
    pub fn of(ddl: &AgentDdl) -> AgentSummary {
        let m = &ddl.metadata;
        AgentSummary {
            agent: m.name.clone(),
            name: m.name.clone(),
            description: m.description.clone(),
            version: m.version.clone(),
            author: m.author.clone(),
            license: m.license.clone(),
            timeout: m.timeout,
            url: m.url.clone(),
        }
    }
}

/// The node as agents see it. The server implements it; tests implement it with fixed data.
pub trait NodeInfo: Send + Sync {
    /// The node's identity.
    fn identity(&self) -> &str;
    /// The node's facts (a JSON object).
    fn facts(&self) -> Arc<Value>;
    /// The node's classes.
    fn classes(&self) -> Arc<Vec<String>>;
    /// Every collective the node is in.
    fn collectives(&self) -> Vec<String>;
    /// The node's main collective.
    fn main_collective(&self) -> String;
    /// The agents the node serves.
    fn agents(&self) -> Vec<AgentSummary>;
    /// Daemon statistics (counters, pid, start time, ...).
    fn stats(&self) -> Map<String, Value>;
    /// A configuration setting by name, if there is one.
    fn config_item(&self, item: &str) -> Option<Value>;
    /// Where the `fstat` data plugin may look (the node's `[data] fstat_paths`).
    fn fstat_policy(&self) -> Arc<FstatPolicy>;
    /// Prepares data plugin `plugin` (built-in or provided by an agent) for `query` as a
    /// task that owns what it needs, so that an async caller can run it off the runtime
    /// ([`crate::data::run_off_runtime`]): a query may block for as long as its plugin's
    /// own bound.
    fn data_task(&self, plugin: &str, query: Option<&str>) -> DataTask;
    /// Answers data plugin `plugin` for `query` on the calling thread, which it may block
    /// for as long as the plugin's own bound: call it from blocking threads only.
    fn data(&self, plugin: &str, query: Option<&str>) -> Result<Value, String> {
        self.data_task(plugin, query)()
    }
    /// The daemon's version.
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    /// Where an agent says what happened after its action answered (a background Puppet
    /// run that ended); `None` where nobody listens.
    fn events(&self) -> Option<Arc<dyn EventEmitter>> {
        None
    }
}

/// Says a node's events (the server's event sink): never waits, drops what it cannot take.
pub trait EventEmitter: Send + Sync {
    /// Says an event of type `kind` (`<category>.<name>`) with `data` (a JSON object).
    fn emit(&self, kind: &str, severity: mco_spec::event::Severity, data: Value);
}

/// The result of an action: a status code, a message and outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// 0 for success, see [`StatusCode`].
    pub statuscode: StatusCode,
    /// `OK` or why not (borrowed when it is a constant: most actions answer `OK`, and every
    /// node of a broadcast answers at once).
    pub statusmsg: Cow<'static, str>,
    /// The outputs.
    pub data: Map<String, Value>,
}

impl Outcome {
    /// Success with outputs.
    pub fn ok(data: Map<String, Value>) -> Outcome {
        Outcome {
            statuscode: StatusCode::Ok,
            statusmsg: Cow::Borrowed("OK"),
            data,
        }
    }

    /// A failure with `status` and a message, and no outputs.
    pub fn fail(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Outcome {
        Outcome {
            statuscode: status,
            statusmsg: message.into(),
            data: Map::new(),
        }
    }

    /// The action ran but did not succeed (status 1).
    pub fn aborted(message: impl Into<Cow<'static, str>>) -> Outcome {
        Outcome::fail(StatusCode::Aborted, message)
    }

    /// An input was unacceptable (status 4).
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Outcome {
        Outcome::fail(StatusCode::InvalidData, message)
    }

    /// The agent has no such action (status 2).
    pub fn unknown_action(agent: &str, action: &str) -> Outcome {
        Outcome::fail(
            StatusCode::UnknownAction,
            format!("Unknown action '{action}' for agent '{agent}'"),
        )
    }

    /// Sets the outputs, keeping the status (a failure may still report outputs).
    pub fn with_data(mut self, data: Map<String, Value>) -> Outcome {
        self.data = data;
        self
    }
}

/// Builds a JSON object from pairs; a small helper for agents' outputs.
pub fn outputs<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    // Inserted one by one: collecting would gather the pairs in a vector and sort it first,
    // an allocation more for each of a broadcast's pings.
    let mut map = Map::new();
    for (key, value) in pairs {
        map.insert(key.to_string(), value);
    }
    map
}

/// The DDL mco-ddl ships for the built-in agent `name` (the upstream plugins' own files).
/// They are compiled in and covered by mco-ddl's tests, so a missing one is a build defect.
pub(crate) fn shipped_ddl(name: &str) -> AgentDdl {
    match mco_ddl::builtin::ddl(name) {
        Some(ddl) => ddl,
        None => panic!("mco-ddl ships no {name} DDL"),
    }
}

/// Loads an embedded DDL. Built-in DDLs are compiled in and checked against the DDL schema
/// by the tests, so a failure here is a build defect.
pub(crate) fn builtin_ddl(json: &str, file: &str) -> AgentDdl {
    match AgentDdl::from_embedded_json(json, file) {
        Ok(ddl) => ddl,
        Err(e) => panic!("built-in DDL {file} is invalid: {e}"),
    }
}
