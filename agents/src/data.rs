//! Data plugins: small named queries a node answers about itself, used by compound filters
//! (`fstat('/etc/hosts').size>=100`) and by `rpcutil get_data`.
//!
//! Built in: `fstat(path)` (see [`crate::fstat`]), `fact(path)` → `{value}`, `agent(name)` →
//! `{present}` plus the agent's metadata, `collective(name)` → `{member}`. Agents add their
//! own through [`crate::Agent::data_query`]; the node ([`NodeInfo::data_task`]) tries the
//! built-in plugins first, then the agent of that name.
//!
//! A query may block (fstat reads a file, `service('x')` runs a status command), so the node
//! prepares it as a [`DataTask`] that owns what it needs, and async callers run it with
//! [`run_off_runtime`]: on a blocking thread, within a time limit. Each plugin bounds its own
//! work too, since a blocking thread that overran its caller's limit cannot be stopped.
//!
//! Not for: deciding whether a filter matches (`mco_spec`'s evaluator does, through
//! [`NodeData`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mco_spec::compound::{DataError, DataSource};
use mco_spec::filter::lookup;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::agent::NodeInfo;
use crate::fstat::{FstatPolicy, DEFAULT_FSTAT_PATHS, NEVER_PERMITTED};
use crate::registry::InvalidSetting;

/// The names of the built-in data plugins.
pub const PLUGINS: [&str; 4] = ["agent", "collective", "fact", "fstat"];

/// Whether `name` is a data plugin this version knows (clients check `-S` filters with it).
pub fn is_known(name: &str) -> bool {
    PLUGINS.contains(&name)
}

/// The `[data]` table of mcod's configuration: what data plugins may look at, and how long
/// and how many at once the data-plugin calls of filters and policies may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Directories (and files) `fstat` may describe, with everything under them; checked
    /// after a path is resolved. Empty: fstat answers nothing.
    #[serde(default = "default_fstat_paths")]
    pub fstat_paths: Vec<PathBuf>,
    /// How long one filter's or policy's data-plugin calls may take, seconds; they run off
    /// the daemon's async threads, and a call that runs out of time counts as failed.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Most such evaluations running at once; a request needing another waits for one
    /// within `timeout_seconds`.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// The data plugins callers' filters may call (`-S "fstat('/x').present=true"`);
    /// `None` (the default) is all of them. A call to another is unknown, so the filter does
    /// not match. The node's own action policies are not limited by it.
    #[serde(default)]
    pub filter_plugins: Option<Vec<String>>,
}

fn default_fstat_paths() -> Vec<PathBuf> {
    DEFAULT_FSTAT_PATHS.iter().map(PathBuf::from).collect()
}

fn default_timeout_seconds() -> u64 {
    5
}

fn default_max_concurrent() -> usize {
    4
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            fstat_paths: default_fstat_paths(),
            timeout_seconds: default_timeout_seconds(),
            max_concurrent: default_max_concurrent(),
            filter_plugins: None,
        }
    }
}

impl DataSettings {
    /// Checks values a type cannot: fstat paths are absolute and not where fstat never
    /// looks; the time limit and the concurrency are at least 1.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.timeout_seconds == 0 {
            return Err(InvalidSetting::new(
                "data.timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.max_concurrent == 0 {
            return Err(InvalidSetting::new(
                "data.max_concurrent",
                "must be at least 1",
            ));
        }
        let key = "data.fstat_paths";
        for path in &self.fstat_paths {
            if !path.is_absolute() {
                return Err(InvalidSetting::new(
                    key,
                    format!("{:?} is not an absolute path", path.display().to_string()),
                ));
            }
            if crate::fstat::is_never_permitted(path) {
                return Err(InvalidSetting::new(
                    key,
                    format!(
                        "{:?} is under {}, where fstat never looks",
                        path.display().to_string(),
                        NEVER_PERMITTED.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The fstat policy these settings describe (resolving the paths now).
    pub fn fstat_policy(&self) -> FstatPolicy {
        FstatPolicy::new(self.fstat_paths.iter().cloned())
    }
}

/// A data-plugin query ready to run: it owns what it needs, so it can run on a blocking
/// thread. Its answer is a JSON object of outputs, or why there is none.
pub type DataTask = Box<dyn FnOnce() -> Result<Value, String> + Send + 'static>;

/// A task that answers `answer`, for queries that need no work.
pub fn ready(answer: Result<Value, String>) -> DataTask {
    Box::new(move || answer)
}

/// Built-in plugin `plugin` for `query` on `node`, or `None` when `plugin` is not built in.
/// Only fstat does I/O; the others answer from memory at once.
pub fn builtin_task(plugin: &str, query: Option<&str>, node: &dyn NodeInfo) -> Option<DataTask> {
    if !is_known(plugin) {
        return None;
    }
    let Some(query) = query else {
        return Some(ready(Err(format!(
            "the {plugin} data plugin needs a query"
        ))));
    };
    let answer = match plugin {
        "fstat" => {
            let policy: Arc<FstatPolicy> = node.fstat_policy();
            let path = query.to_string();
            return Some(Box::new(move || {
                crate::fstat::fstat(&path, &policy).map_err(|e| e.to_string())
            }));
        }
        "fact" => {
            let facts = node.facts();
            json!({ "value": lookup(&facts, query).cloned().unwrap_or(Value::Null) })
        }
        "agent" => match node.agents().into_iter().find(|a| a.agent == query) {
            Some(a) => json!({"present": true, "version": a.version, "author": a.author,
                    "license": a.license, "timeout": a.timeout, "description": a.description}),
            None => json!({"present": false}),
        },
        _ => json!({ "member": node.collectives().iter().any(|c| c == query) }),
    };
    Some(ready(Ok(answer)))
}

/// Runs `task` on a blocking thread, so that the async runtime keeps serving other requests
/// while it works, and gives up waiting after `limit` (the task itself is bounded by its
/// plugin and ends on its own).
pub async fn run_off_runtime(task: DataTask, limit: Duration) -> Result<Value, String> {
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(task)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Err(format!("the data plugin failed: {e}")),
        Err(_) => Err(format!(
            "the data plugin did not answer within {} ms",
            limit.as_millis()
        )),
    }
}

/// A [`DataSource`] over a node, for evaluating compound filters. It runs each query on the
/// calling thread (bounded by the plugin), so callers evaluate filters that call data
/// plugins off the async runtime.
pub struct NodeData<'a>(pub &'a dyn NodeInfo);

impl DataSource for NodeData<'_> {
    fn query(&self, plugin: &str, q: Option<&str>) -> Result<Value, DataError> {
        self.0.data(plugin, q).map_err(|reason| DataError {
            plugin: plugin.to_string(),
            reason,
        })
    }
}

/// A [`DataSource`] that answers only the plugins a node lets callers' filters use
/// (`[data] filter_plugins`), so an operator decides what a caller can learn about a node
/// through discovery; any other call is unknown.
pub struct AllowedPlugins<'a> {
    /// What answers the allowed calls.
    pub inner: &'a dyn DataSource,
    /// The allowed plugin names; `None` allows all.
    pub allowed: Option<&'a [String]>,
}

impl DataSource for AllowedPlugins<'_> {
    fn query(&self, plugin: &str, q: Option<&str>) -> Result<Value, DataError> {
        match self.allowed {
            Some(allowed) if !allowed.iter().any(|a| a == plugin) => Err(DataError {
                plugin: plugin.to_string(),
                reason: "not allowed in filters on this node ([data] filter_plugins)".into(),
            }),
            _ => self.inner.query(plugin, q),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestNode;

    #[test]
    fn settings_default_to_configuration_places_and_refuse_kernel_ones() {
        let defaults = DataSettings::default();
        assert_eq!(
            defaults.fstat_paths,
            [
                PathBuf::from("/etc"),
                PathBuf::from("/opt"),
                PathBuf::from("/usr")
            ]
        );
        assert!(defaults.check().is_ok());
        let parsed: DataSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, defaults);
        for (bad, why) in [
            ("etc", "not an absolute path"),
            ("/proc", "where fstat never looks"),
            ("/dev/shm", "where fstat never looks"),
        ] {
            let settings = DataSettings {
                fstat_paths: vec![PathBuf::from(bad)],
                ..DataSettings::default()
            };
            let err = settings.check().unwrap_err();
            assert_eq!(err.key, "data.fstat_paths");
            assert!(err.reason.contains(why), "{err}");
        }
        assert!(serde_json::from_str::<DataSettings>(r#"{"fstat_path": []}"#).is_err());
    }

    #[test]
    fn builtin_plugins_answer_and_need_a_query() {
        let node = TestNode;
        let answer =
            |plugin: &str, query: Option<&str>| builtin_task(plugin, query, &node).map(|t| t());
        assert_eq!(
            answer("collective", Some("mco")),
            Some(Ok(json!({"member": true})))
        );
        assert_eq!(
            answer("agent", Some("nope")),
            Some(Ok(json!({"present": false})))
        );
        assert_eq!(answer("fact", Some("x")), Some(Ok(json!({"value": null}))));
        assert!(matches!(answer("fstat", None), Some(Err(e)) if e.contains("needs a query")));
        let refused = answer("fstat", Some("/proc/self/pagemap"));
        assert!(
            matches!(&refused, Some(Err(e)) if e.contains("not permitted")),
            "{refused:?}"
        );
        assert!(answer("service", Some("x")).is_none());
    }

    #[tokio::test]
    async fn tasks_run_off_the_runtime_within_a_limit() {
        // On a single-threaded runtime a task run on the runtime thread would starve the
        // sender below, and the task would give up waiting for it.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let task: DataTask = Box::new(move || match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(()) => Ok(json!({"ran": "off the runtime"})),
            Err(_) => Err("the runtime was blocked".into()),
        });
        let sender = tokio::spawn(async move { tx.send(()) });
        let answer = run_off_runtime(task, Duration::from_secs(30)).await;
        assert_eq!(answer, Ok(json!({"ran": "off the runtime"})));
        sender.await.unwrap().unwrap();
        let slow: DataTask = Box::new(|| {
            std::thread::sleep(Duration::from_millis(500));
            Ok(json!({}))
        });
        let late = run_off_runtime(slow, Duration::from_millis(10)).await;
        assert_eq!(
            late,
            Err("the data plugin did not answer within 10 ms".into())
        );
    }
}
