//! External agents: any executable implements an agent, speaking Choria's external agent
//! protocol, so agents written for Choria (for example with PyPI's `py-mco-agent`) run
//! unmodified.
//!
//! For each call the executable is run as `<exe> <request-file> <reply-file> <protocol>` in a
//! fresh temporary directory, with only these environment variables: `PATH`,
//! `CHORIA_EXTERNAL_REQUEST`, `CHORIA_EXTERNAL_REPLY`, `CHORIA_EXTERNAL_PROTOCOL`,
//! `CHORIA_EXTERNAL_CONFIG` and `CHORIA_EXTERNAL_FACTS`. The request file holds
//! `io.choria.mcorpc.external.v1.rpc_request` JSON; the executable writes
//! `{statuscode, statusmsg, data}` to the reply file. At load an activation request
//! (`io.choria.mcorpc.external.v1.activation_request`) asks whether the agent should be
//! active on this node (`{"activate": true|false}`).
//!
//! The executable runs through [`mco_runner`] (its own process group, terminated then killed
//! at the time limit and when the call is abandoned, its leftovers killed when it exits) with
//! the protocol's files in a private directory ([`mco_runner::external::Exchange`]). A
//! non-zero exit, a missing, malformed or oversized reply, or a timeout is an
//! [`ExternalError`], which the caller turns into status 1 with the reason. stdout goes to the
//! log at INFO, stderr at WARN, each capped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mco_runner::external::{Exchange, ExchangeError};
use mco_runner::RunError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol name of an action request.
pub const RPC_REQUEST_PROTOCOL: &str = "io.choria.mcorpc.external.v1.rpc_request";
/// The protocol name of an activation check.
pub const ACTIVATION_PROTOCOL: &str = "io.choria.mcorpc.external.v1.activation_request";
const RPC_REQUEST_SCHEMA: &str = "https://choria.io/schemas/mcorpc/external/v1/rpc_request.json";
const ACTIVATION_SCHEMA: &str =
    "https://choria.io/schemas/mcorpc/external/v1/activation_request.json";

/// The largest reply file read, in bytes; a larger one is an error, not an allocation.
const MAX_REPLY_BYTES: u64 = 1024 * 1024;
/// How much of each of stdout and stderr is kept for the log; the rest is dropped.
const MAX_LOGGED_BYTES: usize = 64 * 1024;

/// Why an external agent call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalError {
    /// The executable could not be started.
    #[error("could not run {path}: {source}")]
    Spawn {
        /// The executable.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Preparing the request files failed.
    #[error("{0}")]
    Files(#[from] ExchangeError),
    /// The run failed otherwise (its output was too large, waiting for it failed).
    #[error("{0}")]
    Run(RunError),
    /// The executable ran longer than allowed and was killed.
    #[error("timed out after {0:?} and was killed")]
    Timeout(Duration),
    /// The executable exited unsuccessfully.
    #[error("exited with {status}{}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Exit {
        /// The exit status.
        status: String,
        /// The last line it wrote to stderr, if any.
        stderr: String,
    },
    /// The reply file is missing, too large or not the expected JSON.
    #[error("invalid reply: {0}")]
    BadReply(String),
}

/// Everything an external action needs besides the executable.
#[derive(Debug, Clone, Serialize)]
pub struct RpcRequest {
    /// The agent name.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The request id.
    pub requestid: String,
    /// The identity of the sending host.
    pub senderid: String,
    /// The (verified) caller.
    pub callerid: String,
    /// The collective.
    pub collective: String,
    /// The request's TTL, seconds.
    pub ttl: u64,
    /// The request's time, Unix seconds.
    pub msgtime: u64,
    /// The validated inputs.
    pub data: Map<String, Value>,
}

/// The executable's reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RpcReply {
    /// 0–5.
    pub statuscode: u8,
    /// The status message.
    #[serde(default)]
    pub statusmsg: String,
    /// The outputs.
    #[serde(default)]
    pub data: Map<String, Value>,
}

#[derive(Deserialize)]
struct ActivationReply {
    activate: bool,
}

/// How to run one external agent's executable.
#[derive(Debug, Clone)]
pub struct ExternalCommand {
    /// The agent name.
    pub agent: String,
    /// The executable.
    pub executable: PathBuf,
    /// Passed as `CHORIA_EXTERNAL_CONFIG` (the agent's plugin config file; may not exist).
    pub config_file: PathBuf,
}

impl ExternalCommand {
    /// Asks the executable whether the agent should be active here. Any failure means no.
    pub async fn activation_check(
        &self,
        facts: &Value,
        limit: Duration,
    ) -> Result<bool, ExternalError> {
        let request = serde_json::json!({
            "$schema": ACTIVATION_SCHEMA,
            "protocol": ACTIVATION_PROTOCOL,
            "agent": self.agent,
        });
        let reply = self
            .run(ACTIVATION_PROTOCOL, &request, facts, limit)
            .await?;
        let reply: ActivationReply =
            serde_json::from_slice(&reply).map_err(|e| ExternalError::BadReply(e.to_string()))?;
        Ok(reply.activate)
    }

    /// Runs one action, killing the process group after `limit`.
    pub async fn call(
        &self,
        request: &RpcRequest,
        facts: &Value,
        limit: Duration,
    ) -> Result<RpcReply, ExternalError> {
        let mut body =
            serde_json::to_value(request).map_err(|e| ExternalError::BadReply(e.to_string()))?;
        if let Value::Object(map) = &mut body {
            map.insert("$schema".into(), RPC_REQUEST_SCHEMA.into());
            map.insert("protocol".into(), RPC_REQUEST_PROTOCOL.into());
        }
        let reply = self.run(RPC_REQUEST_PROTOCOL, &body, facts, limit).await?;
        let reply: RpcReply =
            serde_json::from_slice(&reply).map_err(|e| ExternalError::BadReply(e.to_string()))?;
        if reply.statuscode > 5 {
            return Err(ExternalError::BadReply(format!(
                "statuscode {} is not between 0 and 5",
                reply.statuscode
            )));
        }
        Ok(reply)
    }

    async fn run(
        &self,
        protocol: &str,
        request: &Value,
        facts: &Value,
        limit: Duration,
    ) -> Result<Vec<u8>, ExternalError> {
        let exchange = Exchange::new(protocol, &serde_json::to_vec(request).unwrap_or_default())?;
        let facts_file =
            exchange.write_file("facts.json", &serde_json::to_vec(facts).unwrap_or_default())?;
        let command = exchange
            .apply(mco_runner::Command::new(&self.executable))
            .env("CHORIA_EXTERNAL_CONFIG", &self.config_file)
            .env("CHORIA_EXTERNAL_FACTS", &facts_file)
            .stdout_limit(MAX_LOGGED_BYTES)
            .stderr_limit(MAX_LOGGED_BYTES)
            .deadline(limit);
        let output = command.run().await.map_err(|e| match e {
            RunError::Spawn { source, .. } => ExternalError::Spawn {
                path: self.executable.display().to_string(),
                source,
            },
            RunError::Timeout { limit, .. } => ExternalError::Timeout(limit),
            other => ExternalError::Run(other),
        })?;
        log_lines(&self.agent, &output.stdout, false);
        let last_stderr = log_lines(&self.agent, &output.stderr, true);
        if !output.success() {
            return Err(ExternalError::Exit {
                status: output.status.to_string(),
                stderr: last_stderr,
            });
        }
        exchange
            .read_reply(MAX_REPLY_BYTES)
            .map_err(|e| ExternalError::BadReply(e.to_string()))
    }
}

/// Logs each line the agent wrote; returns the last stderr line for error messages.
fn log_lines(agent: &str, output: &[u8], is_stderr: bool) -> String {
    let mut last = String::new();
    for line in String::from_utf8_lossy(output).lines() {
        let line: String = line.chars().take(2000).collect();
        if is_stderr {
            tracing::warn!(agent = %agent, "external agent stderr: {line}");
            last = line;
        } else {
            tracing::info!(agent = %agent, "external agent stdout: {line}");
        }
    }
    last
}

/// An agent implemented by an executable, described by its DDL.
pub struct ExternalAgent {
    ddl: mco_ddl::AgentDdl,
    command: ExternalCommand,
}

impl ExternalAgent {
    /// The executable that implements it.
    pub fn executable(&self) -> &Path {
        &self.command.executable
    }
}

#[async_trait::async_trait]
impl crate::Agent for ExternalAgent {
    fn ddl(&self) -> &mco_ddl::AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        ctx: &crate::ActionContext<'_>,
        action: &str,
        data: &Map<String, Value>,
    ) -> crate::Outcome {
        let request = RpcRequest {
            agent: self.ddl.metadata.name.clone(),
            action: action.to_string(),
            requestid: ctx.request.id.to_string(),
            senderid: ctx.request.sender.to_string(),
            callerid: ctx.request.caller.to_string(),
            collective: ctx.request.collective.to_string(),
            ttl: ctx.request.ttl,
            msgtime: ctx.request.time / 1000,
            data: data.clone(),
        };
        let limit = Duration::from_secs(self.ddl.metadata.timeout);
        match self.command.call(&request, &ctx.node.facts(), limit).await {
            Ok(reply) => crate::Outcome {
                statuscode: mco_spec::StatusCode::from_code(u64::from(reply.statuscode))
                    .unwrap_or(mco_spec::StatusCode::UnknownError),
                statusmsg: if reply.statusmsg.is_empty() && reply.statuscode == 0 {
                    "OK".into()
                } else {
                    reply.statusmsg.into()
                },
                data: reply.data,
            },
            Err(e) => {
                tracing::warn!(agent = %self.ddl.metadata.name, "external agent failed: {e}");
                crate::Outcome::aborted(format!(
                    "external agent {} failed: {e}",
                    self.ddl.metadata.name
                ))
            }
        }
    }
}

/// How long an activation check may take.
pub const ACTIVATION_LIMIT: Duration = Duration::from_secs(2);

/// Finds the external agents in `dirs` and keeps those whose activation check says yes.
///
/// An agent is a DDL `<dir>/<name>.json` (or `<dir>/<name>/<name>.json`) whose
/// `metadata.provider` is `external`, next to an executable named `<name>`. Its plugin config
/// file is `<plugin_config_dir>/<name>` (Choria's `plugin.d` convention). DDLs load as Choria
/// loads them. Returns the agents and the messages to log: one per agent that was skipped, and
/// why, and one per DDL warning (what mco does not enforce or skips: a validator or aggregate
/// that is neither built in nor one of `plugins`).
pub async fn load_external_agents(
    dirs: &[PathBuf],
    plugin_config_dir: &Path,
    facts: &Value,
    plugins: &mco_ddl::Plugins,
) -> (Vec<std::sync::Arc<dyn crate::Agent>>, Vec<String>) {
    let mut agents: Vec<std::sync::Arc<dyn crate::Agent>> = Vec::new();
    let mut skipped = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                skipped.push(format!("agent directory {}: {e}", dir.display()));
                continue;
            }
        };
        let mut candidates: Vec<(PathBuf, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    let ddl = path.join(format!("{name}.json"));
                    if ddl.is_file() {
                        candidates.push((ddl, path.join(name)));
                    }
                }
            } else if path.extension().is_some_and(|e| e == "json") {
                candidates.push((path.clone(), path.with_extension("")));
            }
        }
        candidates.sort();
        for (ddl_path, executable) in candidates {
            let ddl = match mco_ddl::AgentDdl::load(&ddl_path) {
                Ok(loaded) => {
                    if loaded.ddl.metadata.provider.as_deref() != Some("external") {
                        continue;
                    }
                    for warning in plugins.unresolved(&loaded.ddl, loaded.warnings.clone()) {
                        skipped.push(format!("{}: {warning}", ddl_path.display()));
                    }
                    loaded.ddl
                }
                Err(e) => {
                    skipped.push(e.to_string());
                    continue;
                }
            };
            let name = ddl.metadata.name.clone();
            if !executable.is_file() {
                skipped.push(format!(
                    "{}: no executable {} for external agent {name}",
                    ddl_path.display(),
                    executable.display()
                ));
                continue;
            }
            let command = ExternalCommand {
                agent: name.clone(),
                executable,
                config_file: plugin_config_dir.join(&name),
            };
            match command.activation_check(facts, ACTIVATION_LIMIT).await {
                Ok(true) => agents.push(std::sync::Arc::new(ExternalAgent { ddl, command })),
                Ok(false) => skipped.push(format!("external agent {name} is not active on this node (its activation check said no)")),
                Err(e) => skipped.push(format!("external agent {name} is not active: activation check failed: {e}")),
            }
        }
    }
    (agents, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> ExternalCommand {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        ExternalCommand {
            agent: name.into(),
            executable: path,
            config_file: dir.join("none.cfg"),
        }
    }

    fn request() -> RpcRequest {
        let mut data = Map::new();
        data.insert("message".into(), "hello".into());
        RpcRequest {
            agent: "echo".into(),
            action: "echo".into(),
            requestid: "r1".into(),
            senderid: "admin".into(),
            callerid: "alice".into(),
            collective: "mco".into(),
            ttl: 60,
            msgtime: 1,
            data,
        }
    }

    const PY_ECHO: &str = r#"#!/usr/bin/env python3
import json, os, sys
req = json.load(open(sys.argv[1]))
assert os.environ["CHORIA_EXTERNAL_PROTOCOL"] == sys.argv[3]
if req["protocol"].endswith("activation_request"):
    json.dump({"activate": True}, open(sys.argv[2], "w"))
else:
    json.dump({"statuscode": 0, "statusmsg": "OK", "data": {"message": req["data"]["message"], "caller": req["callerid"], "env": sorted(k for k in os.environ if k.startswith("CHORIA"))}}, open(sys.argv[2], "w"))
"#;

    #[tokio::test]
    async fn a_script_answers_by_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let echo = script(dir.path(), "echo", PY_ECHO);
        assert!(echo
            .activation_check(&serde_json::json!({}), Duration::from_secs(5))
            .await
            .unwrap());
        let reply = echo
            .call(&request(), &serde_json::json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply.statuscode, 0);
        assert_eq!(reply.data["message"], "hello");
        assert_eq!(reply.data["caller"], "alice");
        assert_eq!(
            reply.data["env"],
            serde_json::json!([
                "CHORIA_EXTERNAL_CONFIG",
                "CHORIA_EXTERNAL_FACTS",
                "CHORIA_EXTERNAL_PROTOCOL",
                "CHORIA_EXTERNAL_REPLY",
                "CHORIA_EXTERNAL_REQUEST"
            ])
        );
    }

    #[tokio::test]
    async fn failures_become_errors_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let exit = script(
            dir.path(),
            "exit",
            "#!/bin/sh\necho 'it broke' >&2\nexit 3\n",
        );
        let err = exit
            .call(&request(), &serde_json::json!({}), Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("it broke"),
            "{err}"
        );
        let bad = script(dir.path(), "bad", "#!/bin/sh\necho '{nope' > \"$2\"\n");
        assert!(matches!(
            bad.call(&request(), &serde_json::json!({}), Duration::from_secs(5))
                .await,
            Err(ExternalError::BadReply(_))
        ));
        let silent = script(dir.path(), "silent", "#!/bin/sh\nexit 0\n");
        let err = silent
            .call(&request(), &serde_json::json!({}), Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no reply file"), "{err}");
        let inactive = script(
            dir.path(),
            "inactive",
            "#!/bin/sh\necho '{\"activate\": false}' > \"$2\"\n",
        );
        assert!(!inactive
            .activation_check(&serde_json::json!({}), Duration::from_secs(5))
            .await
            .unwrap());
        let missing = ExternalCommand {
            executable: dir.path().join("nope"),
            ..exit
        };
        assert!(matches!(
            missing
                .call(&request(), &serde_json::json!({}), Duration::from_secs(5))
                .await,
            Err(ExternalError::Spawn { .. })
        ));
    }

    #[tokio::test]
    async fn a_hung_agent_and_its_children_are_killed_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-alive");
        let hang = script(
            dir.path(),
            "hang",
            &format!(
                "#!/bin/sh\n(sleep 3; touch {}) &\nsleep 30\n",
                marker.display()
            ),
        );
        let started = std::time::Instant::now();
        let err = hang
            .call(
                &request(),
                &serde_json::json!({}),
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ExternalError::Timeout(_)), "{err}");
        // Well under the script's 30 s sleep: the call did not wait for the agent to finish.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!marker.exists(), "the agent's child outlived the timeout");
    }

    #[tokio::test]
    async fn agents_load_from_a_directory_with_activation() {
        let dir = tempfile::tempdir().unwrap();
        let ddl = |name: &str| {
            format!(
                r#"{{"metadata":{{"name":"{name}","description":"d","author":"a","license":"l","version":"1.0.0","url":"u","timeout":5,"provider":"external"}},
              "actions":[{{"action":"echo","description":"d","input":{{}},"output":{{}}}}]}}"#
            )
        };
        std::fs::write(dir.path().join("echo.json"), ddl("echo")).unwrap();
        script(dir.path(), "echo", PY_ECHO);
        std::fs::write(dir.path().join("off.json"), ddl("off")).unwrap();
        script(
            dir.path(),
            "off",
            "#!/bin/sh\necho '{\"activate\": false}' > \"$2\"\n",
        );
        std::fs::write(dir.path().join("lonely.json"), ddl("lonely")).unwrap();
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        let (agents, skipped) = load_external_agents(
            &[dir.path().to_path_buf()],
            dir.path(),
            &serde_json::json!({}),
            &mco_ddl::Plugins::none(),
        )
        .await;
        let names: Vec<String> = agents
            .iter()
            .map(|a| a.ddl().metadata.name.clone())
            .collect();
        assert_eq!(names, ["echo"]);
        let text = skipped.join("\n");
        assert!(text.contains("off is not active"), "{text}");
        assert!(text.contains("no executable"), "{text}");
        assert!(text.contains("broken.json"), "{text}");
    }
}
