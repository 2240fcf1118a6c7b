//! Puppet state for the puppet agent: reading `last_run_summary.yaml` and the disable lock,
//! deriving `status`, and building the `puppet agent --onetime` / `puppet apply` argv for
//! `runonce`. Pure functions over file contents and options; the agent does the I/O.

use serde_json::{json, Map, Value};

/// The figures of `last_run_summary.yaml`, as the puppet DDL's `last_run_summary` outputs.
pub fn parse_last_run_summary(yaml: &str, now_secs: u64) -> Result<Map<String, Value>, String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(yaml).map_err(|e| format!("last_run_summary.yaml: {e}"))?;
    let doc: Value = serde_json::to_value(doc).map_err(|e| e.to_string())?;
    let int = |section: &str, key: &str| {
        doc.get(section)
            .and_then(|s| s.get(key))
            .and_then(Value::as_f64)
    };
    let resources =
        |key: &str, default: i64| int("resources", key).map(|v| v as i64).unwrap_or(default);
    let mut out = Map::new();
    out.insert(
        "out_of_sync_resources".into(),
        json!(resources("out_of_sync", -1)),
    );
    out.insert("failed_resources".into(), json!(resources("failed", -1)));
    out.insert(
        "corrected_resources".into(),
        json!(resources("corrective_change", 0)),
    );
    out.insert("changed_resources".into(), json!(resources("changed", -1)));
    out.insert("total_resources".into(), json!(resources("total", 0)));
    out.insert(
        "config_retrieval_time".into(),
        json!(int("time", "config_retrieval").unwrap_or(-1.0)),
    );
    out.insert(
        "total_time".into(),
        json!(int("time", "total").unwrap_or(0.0)),
    );
    let last_run = int("time", "last_run").map(|v| v as u64).unwrap_or(0);
    out.insert("lastrun".into(), json!(last_run));
    out.insert(
        "since_lastrun".into(),
        if last_run > 0 {
            json!(now_secs.saturating_sub(last_run))
        } else {
            json!("Unknown")
        },
    );
    let config_version = doc
        .get("version")
        .and_then(|v| v.get("config"))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    out.insert(
        "config_version".into(),
        json!(config_version.unwrap_or_default()),
    );
    // Per-type timings: everything in `time` that is not a summary figure.
    let mut types = Map::new();
    if let Some(time) = doc.get("time").and_then(Value::as_object) {
        for (k, v) in time {
            if !matches!(
                k.as_str(),
                "config_retrieval"
                    | "total"
                    | "last_run"
                    | "transaction_evaluation"
                    | "catalog_application"
                    | "node_retrieval"
                    | "plugin_sync"
                    | "fact_generation"
                    | "convert_catalog"
            ) {
                types.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert("type_distribution".into(), Value::Object(types));
    out.insert("summary".into(), doc);
    Ok(out)
}

/// The message in Puppet's `agent_disabled.lock` (JSON `{"disabled_message": ...}`).
pub fn disable_message(lock_contents: &str) -> String {
    serde_json::from_str::<Value>(lock_contents)
        .ok()
        .and_then(|v| {
            v.get("disabled_message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The lock file Puppet itself writes for `puppet agent --disable MESSAGE`.
pub fn disable_lock_contents(message: &str) -> String {
    json!({ "disabled_message": message }).to_string()
}

/// What the agent observed about Puppet on this node.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// A catalog run is in progress (`agent_catalog_run.lock` exists).
    pub applying: bool,
    /// `agent_disabled.lock` exists; its message.
    pub disabled: Option<String>,
    /// The Puppet daemon is running.
    pub daemon_present: bool,
    /// Unix seconds of the last run, 0 if never.
    pub lastrun: u64,
}

/// The puppet DDL's `status` outputs from observations.
pub fn status(observed: &Observed, now_secs: u64) -> Map<String, Value> {
    let enabled = observed.disabled.is_none();
    let status = if observed.applying {
        "applying a catalog"
    } else if !enabled {
        "disabled"
    } else if observed.daemon_present {
        "idling"
    } else {
        "stopped"
    };
    let since = if observed.lastrun > 0 {
        json!(now_secs.saturating_sub(observed.lastrun))
    } else {
        json!("Unknown")
    };
    let message = match &observed.disabled {
        Some(m) => format!("Currently disabled: {m}"),
        None => format!(
            "Currently {status}; last completed run {} seconds ago",
            since
        ),
    };
    let mut out = Map::new();
    out.insert("applying".into(), json!(observed.applying));
    out.insert(
        "idling".into(),
        json!(observed.daemon_present && !observed.applying),
    );
    out.insert("enabled".into(), json!(enabled));
    out.insert("daemon_present".into(), json!(observed.daemon_present));
    out.insert("lastrun".into(), json!(observed.lastrun));
    out.insert("since_lastrun".into(), since);
    out.insert("status".into(), json!(status));
    out.insert(
        "disable_message".into(),
        json!(observed.disabled.clone().unwrap_or_default()),
    );
    out.insert("message".into(), json!(message));
    out
}

/// How runonce runs Puppet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    /// `puppet agent --onetime` against a Puppet server.
    Agent,
    /// `puppet apply MANIFEST` for fleets without a server.
    Apply {
        /// The manifest (file or directory) to apply.
        manifest: String,
    },
}

/// `runonce` options, already validated by the DDL.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run even when a splay would delay it.
    pub force: bool,
    /// Do not change anything.
    pub noop: bool,
    /// Only these tags (comma separated).
    pub tags: Option<String>,
    /// Skip these tags.
    pub skip_tags: Option<String>,
    /// The environment.
    pub environment: Option<String>,
    /// The Puppet server (agent mode).
    pub server: Option<String>,
    /// Sleep a random time first.
    pub splay: Option<bool>,
    /// The longest splay, seconds.
    pub splaylimit: Option<u64>,
    /// Use the cached catalog.
    pub use_cached_catalog: Option<bool>,
}

/// The argv for a run.
pub fn runonce_argv(puppet: &str, mode: &RunMode, options: &RunOptions) -> Vec<String> {
    let mut argv = vec![puppet.to_string()];
    match mode {
        RunMode::Agent => {
            argv.extend(
                [
                    "agent",
                    "--onetime",
                    "--no-daemonize",
                    "--color=false",
                    "--verbose",
                ]
                .map(String::from),
            );
            if let Some(server) = &options.server {
                argv.push(format!("--server={server}"));
            }
            match options.splay {
                Some(true) if !options.force => {
                    argv.push("--splay".into());
                    if let Some(limit) = options.splaylimit {
                        argv.push(format!("--splaylimit={limit}"));
                    }
                }
                Some(false) | Some(true) => argv.push("--no-splay".into()),
                None if options.force => argv.push("--no-splay".into()),
                None => {}
            }
            match options.use_cached_catalog {
                Some(true) => argv.push("--use_cached_catalog".into()),
                Some(false) => argv.push("--no-use_cached_catalog".into()),
                None => {}
            }
        }
        RunMode::Apply { manifest } => {
            argv.extend(["apply", "--color=false", "--verbose"].map(String::from));
            argv.push(manifest.clone());
        }
    }
    if options.noop {
        argv.push("--noop".into());
    }
    if let Some(tags) = &options.tags {
        argv.push(format!("--tags={tags}"));
    }
    if let Some(skip) = &options.skip_tags {
        argv.push(format!("--skip_tags={skip}"));
    }
    if let Some(env) = &options.environment {
        argv.push(format!("--environment={env}"));
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "---
version:
  config: 1700000000
  puppet: 7.23.0
resources:
  changed: 1
  corrective_change: 0
  failed: 0
  failed_to_restart: 0
  out_of_sync: 1
  restarted: 0
  scheduled: 0
  skipped: 0
  total: 8
time:
  file: 0.002
  notify: 0.0004
  config_retrieval: 0.25
  total: 0.61
  last_run: 1700000100
changes:
  total: 1
events:
  failure: 0
  success: 1
  total: 1
";

    #[test]
    fn last_run_summary_figures() {
        let s = parse_last_run_summary(SUMMARY, 1700000160).unwrap();
        assert_eq!(s["changed_resources"], 1);
        assert_eq!(s["total_resources"], 8);
        assert_eq!(s["failed_resources"], 0);
        assert_eq!(s["config_retrieval_time"], 0.25);
        assert_eq!(s["lastrun"], 1700000100);
        assert_eq!(s["since_lastrun"], 60);
        assert_eq!(s["config_version"], "1700000000");
        assert_eq!(s["type_distribution"]["file"], 0.002);
        assert!(s["type_distribution"].get("total").is_none());
        assert!(parse_last_run_summary(": : :", 0).is_err());
        let empty = parse_last_run_summary("--- {}\n", 5).unwrap();
        assert_eq!(empty["since_lastrun"], "Unknown");
    }

    #[test]
    fn status_from_observations() {
        let idle = status(
            &Observed {
                daemon_present: true,
                lastrun: 100,
                ..Default::default()
            },
            160,
        );
        assert_eq!(idle["status"], "idling");
        assert_eq!(idle["enabled"], true);
        assert_eq!(idle["since_lastrun"], 60);
        let disabled = status(
            &Observed {
                disabled: Some("maintenance".into()),
                ..Default::default()
            },
            0,
        );
        assert_eq!(disabled["status"], "disabled");
        assert_eq!(disabled["enabled"], false);
        assert_eq!(disabled["disable_message"], "maintenance");
        assert_eq!(
            status(
                &Observed {
                    applying: true,
                    ..Default::default()
                },
                0
            )["status"],
            "applying a catalog"
        );
        assert_eq!(status(&Observed::default(), 0)["status"], "stopped");
        assert_eq!(
            disable_message(&disable_lock_contents("a \"quoted\" reason")),
            "a \"quoted\" reason"
        );
        assert_eq!(disable_message("garbage"), "");
    }

    #[test]
    fn runonce_argv_per_mode() {
        let opts = RunOptions {
            noop: true,
            tags: Some("a,b".into()),
            environment: Some("prod".into()),
            ..Default::default()
        };
        assert_eq!(
            runonce_argv(
                "puppet",
                &RunMode::Apply {
                    manifest: "/etc/site.pp".into()
                },
                &opts
            ),
            [
                "puppet",
                "apply",
                "--color=false",
                "--verbose",
                "/etc/site.pp",
                "--noop",
                "--tags=a,b",
                "--environment=prod"
            ]
        );
        let agent = runonce_argv(
            "/opt/puppet",
            &RunMode::Agent,
            &RunOptions {
                force: true,
                server: Some("p:8140".into()),
                ..Default::default()
            },
        );
        assert!(agent.contains(&"--onetime".to_string()));
        assert!(agent.contains(&"--no-splay".to_string()));
        assert!(agent.contains(&"--server=p:8140".to_string()));
        let splay = runonce_argv(
            "puppet",
            &RunMode::Agent,
            &RunOptions {
                splay: Some(true),
                splaylimit: Some(30),
                ..Default::default()
            },
        );
        assert!(splay.contains(&"--splaylimit=30".to_string()));
    }
}
