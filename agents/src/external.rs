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
//! The executable runs in its own process group; when the time limit passes the whole group
//! is killed, so a hung agent or its children cannot outlive the call. A non-zero exit, a
//! missing or malformed reply, or a timeout is an [`ExternalError`], which the caller turns
//! into status 1 with the reason. stdout goes to the log at INFO, stderr at WARN.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// The protocol name of an action request.
pub const RPC_REQUEST_PROTOCOL: &str = "io.choria.mcorpc.external.v1.rpc_request";
/// The protocol name of an activation check.
pub const ACTIVATION_PROTOCOL: &str = "io.choria.mcorpc.external.v1.activation_request";
const RPC_REQUEST_SCHEMA: &str = "https://choria.io/schemas/mcorpc/external/v1/rpc_request.json";
const ACTIVATION_SCHEMA: &str =
    "https://choria.io/schemas/mcorpc/external/v1/activation_request.json";

/// The largest reply file read, in bytes; a larger one is an error, not an allocation.
const MAX_REPLY_BYTES: u64 = 1024 * 1024;

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
    /// Preparing or reading the request/reply files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
        let dir = tempfile::Builder::new().prefix("mco-external-").tempdir()?;
        let request_file = dir.path().join("request.json");
        let reply_file = dir.path().join("reply.json");
        let facts_file = dir.path().join("facts.json");
        tokio::fs::write(
            &request_file,
            serde_json::to_vec(request).unwrap_or_default(),
        )
        .await?;
        tokio::fs::write(&facts_file, serde_json::to_vec(facts).unwrap_or_default()).await?;

        let mut command = Command::new(&self.executable);
        command
            .arg(&request_file)
            .arg(&reply_file)
            .arg(protocol)
            .current_dir(dir.path())
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("CHORIA_EXTERNAL_REQUEST", &request_file)
            .env("CHORIA_EXTERNAL_REPLY", &reply_file)
            .env("CHORIA_EXTERNAL_PROTOCOL", protocol)
            .env("CHORIA_EXTERNAL_CONFIG", &self.config_file)
            .env("CHORIA_EXTERNAL_FACTS", &facts_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills the agent and everything it started.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| ExternalError::Spawn {
            path: self.executable.display().to_string(),
            source,
        })?;
        let pid = child.id();
        // However this call ends (finished, timed out, or cancelled by the caller), the
        // agent's whole process group goes with it.
        let _group = GroupGuard(pid.and_then(|p| i32::try_from(p).ok()));
        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(log_lines(self.agent.clone(), s, false)));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(log_lines(self.agent.clone(), s, true)));

        let status = match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                _group.kill();
                let _ = child.wait().await;
                return Err(ExternalError::Timeout(limit));
            }
        };
        // The agent has exited; its children may hold the pipes open, so take the group down
        // before waiting for the log readers.
        _group.kill();
        if let Some(task) = stdout {
            let _ = task.await;
        }
        let last_stderr = match stderr {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        if !status.success() {
            return Err(ExternalError::Exit {
                status: status.to_string(),
                stderr: last_stderr,
            });
        }
        read_reply(&reply_file).await
    }
}

/// Kills a process group when dropped.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the process group created for the
            // child; it touches no memory of ours, and a group already gone is reported
            // harmlessly.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn read_reply(path: &Path) -> Result<Vec<u8>, ExternalError> {
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(|_| ExternalError::BadReply("the agent wrote no reply file".into()))?;
    if metadata.len() > MAX_REPLY_BYTES {
        return Err(ExternalError::BadReply(format!(
            "reply of {} bytes exceeds {MAX_REPLY_BYTES}",
            metadata.len()
        )));
    }
    Ok(tokio::fs::read(path).await?)
}

/// Logs each line the agent writes; returns the last stderr line for error messages.
async fn log_lines(agent: String, stream: impl AsyncRead + Unpin, is_stderr: bool) -> String {
    let mut lines = BufReader::new(stream).lines();
    let mut last = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
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
            requestid: ctx.request.id.clone(),
            senderid: ctx.request.sender.clone(),
            callerid: ctx.request.caller.clone(),
            collective: ctx.request.collective.clone(),
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
                    reply.statusmsg
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
/// why, and one per DDL warning (what mco does not enforce or skips).
pub async fn load_external_agents(
    dirs: &[PathBuf],
    plugin_config_dir: &Path,
    facts: &Value,
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
                    for warning in &loaded.warnings {
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
