//! The `puppet` agent: the actions, inputs and outputs of Choria's puppet agent DDL
//! (shipped by `mco_ddl::builtin`) on the node's own Puppet: runonce, status,
//! last_run_summary, enable, disable and resource.
//!
//! Puppet's state is read where Puppet keeps it, as `puppet config print` reports it with
//! the configured arguments: `last_run_summary.yaml`, `last_run_report.yaml`,
//! `agent_disabled.lock` (written in Puppet's own format, so `puppet agent --disable` and
//! this agent see each other's locks), the catalog run lock and the daemon's pidfile.
//!
//! `runonce` starts Puppet in the background and answers at once, as Choria's agent does:
//! `puppet agent --onetime` against a server, or `puppet apply MANIFEST` (run mode `apply`)
//! for fleets without one; an idling Puppet daemon is woken with SIGUSR1 instead. One run at
//! a time: a runonce or resource while Puppet applies a catalog is refused with Choria's
//! message, and a disabled Puppet is never run.
//!
//! Not here: file formats and argv ([`crate::providers::puppet`]), running commands
//! ([`crate::providers::command`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use async_trait::async_trait;
use mco_ddl::AgentDdl;
use mco_spec::message::now_millis;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::agent::{outputs, shipped_ddl, ActionContext, Agent, Outcome};
use crate::providers::command::{find_program, run_until, spawn_detached, Deadline};
use crate::providers::puppet::{
    capitalise_type, check_resource_type, config_print_argv, disable_lock_contents,
    disable_message, format_utc, last_run_summary, managed_resources, parse_config_print,
    parse_puppet_yaml, report_logs, resource_argv, resource_manifest, resource_outcome,
    runonce_argv, status, type_distribution, Observed, PuppetPaths, RunMode, RunOptions,
};
use crate::registry::{InvalidSetting, Unavailable};

/// How `runonce` runs Puppet, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunModeName {
    /// `puppet agent --onetime` against a Puppet server.
    Agent,
    /// `puppet apply` of `manifest`.
    Apply,
}

/// The `[agents.puppet]` table of mcod's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PuppetSettings {
    /// The puppet program, a name on `PATH` or a path (default `puppet`).
    #[serde(default)]
    pub command: Option<String>,
    /// Arguments given to every puppet command after its subcommand, such as
    /// `["--confdir", "/etc/puppet", "--vardir", "/var/cache/puppet"]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// `agent` (default) or `apply`.
    #[serde(default)]
    pub run_mode: Option<RunModeName>,
    /// The manifest `puppet apply` applies (run mode `apply` only).
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// Whether runs sleep a random time first unless the request says otherwise (default
    /// true, as in Choria, so a fleet-wide runonce does not hit the server all at once).
    #[serde(default)]
    pub splay: Option<bool>,
    /// The longest splay, seconds (default 30).
    #[serde(default)]
    pub splaylimit: Option<u64>,
    /// Whether runonce wakes an idling Puppet daemon with SIGUSR1 (default true).
    #[serde(default)]
    pub signal_daemon: Option<bool>,
    /// Whether runonce may name another Puppet server (default false).
    #[serde(default)]
    pub allow_server_override: bool,
    /// Resource types the `resource` action may manage; none by default.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Whether `resource` may touch resources Puppet's last run managed (default false).
    #[serde(default)]
    pub resource_allow_managed: bool,
}

impl PuppetSettings {
    /// Checks what a type cannot: apply mode needs a manifest, resource types are names.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        match (self.run_mode, &self.manifest) {
            (Some(RunModeName::Apply), None) => {
                return Err(InvalidSetting::new(
                    "agents.puppet.manifest",
                    "run_mode = \"apply\" needs the manifest to apply",
                ))
            }
            (Some(RunModeName::Agent) | None, Some(_)) => {
                return Err(InvalidSetting::new(
                    "agents.puppet.manifest",
                    "a manifest is only applied with run_mode = \"apply\"",
                ))
            }
            _ => {}
        }
        for kind in &self.resource_types {
            check_resource_type(kind)
                .map_err(|e| InvalidSetting::new("agents.puppet.resource_types", e))?;
        }
        Ok(())
    }
}

/// The puppet agent.
pub struct PuppetAgent {
    ddl: AgentDdl,
    command: String,
    args: Vec<String>,
    mode: RunMode,
    splay: bool,
    splaylimit: u64,
    signal_daemon: bool,
    allow_server_override: bool,
    resource_types: Vec<String>,
    resource_allow_managed: bool,
    /// Puppet's files, asked from Puppet once, when first needed (a second or so).
    paths: tokio::sync::OnceCell<PuppetPaths>,
    /// The run this agent started (or the resource it applies), while it lasts: shared with
    /// the task that waits for a background run to end.
    run: Arc<StdMutex<Option<ActiveRun>>>,
}

#[derive(Debug, Clone)]
struct ActiveRun {
    what: String,
    since: Instant,
}

impl PuppetAgent {
    /// The agent for the configured Puppet; `Err` when the puppet command is not found (the
    /// agent is then not served).
    pub fn activate(settings: &PuppetSettings) -> Result<PuppetAgent, Unavailable> {
        let name = settings.command.clone().unwrap_or_else(|| "puppet".into());
        let command = find_program(&name)
            .ok_or_else(|| Unavailable(format!("the puppet command {name:?} was not found")))?
            .display()
            .to_string();
        let mode = match (&settings.run_mode, &settings.manifest) {
            (Some(RunModeName::Apply), Some(manifest)) => RunMode::Apply {
                manifest: manifest.clone(),
            },
            (Some(RunModeName::Apply), None) => {
                return Err(Unavailable("run_mode = \"apply\" needs a manifest".into()))
            }
            _ => RunMode::Agent,
        };
        Ok(PuppetAgent {
            ddl: shipped_ddl("puppet"),
            command,
            args: settings.args.clone(),
            mode,
            splay: settings.splay.unwrap_or(true),
            splaylimit: settings.splaylimit.unwrap_or(30),
            signal_daemon: settings.signal_daemon.unwrap_or(true),
            allow_server_override: settings.allow_server_override,
            resource_types: settings.resource_types.clone(),
            resource_allow_managed: settings.resource_allow_managed,
            paths: tokio::sync::OnceCell::new(),
            run: Arc::new(StdMutex::new(None)),
        })
    }

    /// Where Puppet keeps its state; asked from `puppet config print` the first time.
    async fn paths(&self, deadline: Deadline) -> Result<&PuppetPaths, String> {
        self.paths
            .get_or_try_init(|| async {
                let argv = config_print_argv(&self.command, &self.args);
                let out = run_until(&argv, deadline)
                    .await
                    .map_err(|e| format!("cannot ask Puppet where its state is: {e}"))?;
                if !out.success() {
                    return Err(format!(
                        "cannot ask Puppet where its state is: puppet config print failed: {}",
                        out.combined()
                    ));
                }
                parse_config_print(&out.stdout)
            })
            .await
    }

    fn observe(&self, paths: &PuppetPaths) -> Observed {
        let ours = self.run.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        let disabled = paths.agent_disabled_lockfile.exists().then(|| {
            disable_message(
                &std::fs::read_to_string(&paths.agent_disabled_lockfile).unwrap_or_default(),
            )
        });
        Observed {
            applying: ours || pid_file_alive(&paths.agent_catalog_run_lockfile).is_some(),
            disabled,
            daemon_present: pid_file_alive(&paths.pidfile).is_some(),
            lastrun: read_yaml(&paths.lastrunfile)
                .ok()
                .flatten()
                .and_then(|s| s.get("time")?.get("last_run")?.as_f64())
                .map_or(0, |t| t as u64),
        }
    }

    /// Claims the one run this agent allows at a time.
    fn claim(&self, what: &str) -> Result<(), String> {
        let mut run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        match run.as_ref() {
            Some(active) => {
                tracing::debug!(
                    "refusing {what}: {} running for {} s",
                    active.what,
                    active.since.elapsed().as_secs()
                );
                Err(APPLYING.into())
            }
            None => {
                *run = Some(ActiveRun {
                    what: what.to_string(),
                    since: Instant::now(),
                });
                Ok(())
            }
        }
    }

    async fn disable(
        &self,
        caller: &str,
        message: Option<&str>,
        deadline: Deadline,
    ) -> Result<Outcome, String> {
        let paths = self.paths(deadline).await?;
        if self.observe(paths).disabled.is_some() {
            let why = "Could not disable Puppet: Already disabled";
            return Ok(Outcome::aborted(why)
                .with_data(outputs([("status", json!(why)), ("enabled", json!(false))])));
        }
        let message = match message {
            Some(m) => m.to_string(),
            None => format!(
                "Disabled via mco by {caller} at {}",
                format_utc((now_millis() / 1000) as i64)
            ),
        };
        write_atomically(
            &paths.agent_disabled_lockfile,
            &disable_lock_contents(&message),
        )
        .map_err(|e| format!("Could not disable Puppet: {e}"))?;
        Ok(Outcome::ok(outputs([
            (
                "status",
                json!(format!("Successfully locked the Puppet agent: {message}")),
            ),
            ("enabled", json!(false)),
        ])))
    }

    async fn enable(&self, deadline: Deadline) -> Result<Outcome, String> {
        let paths = self.paths(deadline).await?;
        if self.observe(paths).disabled.is_none() {
            let why = "Could not enable Puppet: Already enabled";
            return Ok(Outcome::aborted(why)
                .with_data(outputs([("status", json!(why)), ("enabled", json!(true))])));
        }
        std::fs::remove_file(&paths.agent_disabled_lockfile)
            .map_err(|e| format!("Could not enable Puppet: {e}"))?;
        Ok(Outcome::ok(outputs([
            ("status", json!("Successfully enabled the Puppet agent")),
            ("enabled", json!(true)),
        ])))
    }

    async fn last_run_summary(&self, logs: bool, deadline: Deadline) -> Result<Outcome, String> {
        let paths = self.paths(deadline).await?;
        let Some(summary) = read_yaml(&paths.lastrunfile)? else {
            // Puppet never ran here: the DDL's defaults say "unknown".
            return Ok(Outcome::ok(Map::new()));
        };
        let resources_txt = std::fs::read_to_string(&paths.resourcefile).ok();
        let report = if logs || resources_txt.is_none() {
            match read_yaml(&paths.lastrunreport) {
                Ok(report) => report,
                Err(e) if logs => return Err(e),
                Err(_) => None,
            }
        } else {
            None
        };
        let managed = managed_resources(resources_txt.as_deref(), report.as_ref());
        let mut out = last_run_summary(&summary, type_distribution(&managed), now_millis() / 1000);
        let lines = match (&report, logs) {
            (Some(report), true) => report_logs(report),
            _ => Vec::new(),
        };
        out.insert("logs".into(), json!(lines));
        Ok(Outcome::ok(out))
    }

    async fn runonce(
        &self,
        data: &Map<String, Value>,
        deadline: Deadline,
        events: Option<Arc<dyn crate::EventEmitter>>,
    ) -> Result<Outcome, String> {
        let paths = self.paths(deadline).await?;
        let observed = self.observe(paths);
        let refuse = |summary: String| {
            Ok(Outcome::aborted(summary.clone()).with_data(outputs([("summary", json!(summary))])))
        };
        if let Some(message) = &observed.disabled {
            return refuse(if message.is_empty() {
                "Puppet is disabled".into()
            } else {
                format!("Puppet is disabled: '{message}'")
            });
        }
        if observed.applying {
            return refuse(APPLYING.into());
        }
        let flag = |name: &str| data.get(name).and_then(Value::as_bool);
        let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_string);
        let mut options = RunOptions {
            noop: flag("noop"),
            tags: text("tags"),
            skip_tags: text("skip_tags"),
            environment: text("environment"),
            server: text("server"),
            use_cached_catalog: flag("use_cached_catalog"),
            splay: None,
            splaylimit: None,
        };
        if options.server.is_some() && !self.allow_server_override {
            return refuse(
                "Passing 'server' is not allowed by this node's configuration (agents.puppet.allow_server_override)".into(),
            );
        }
        let initiated_at = now_millis() / 1000;
        let idling = observed.daemon_present && !observed.applying;
        if self.mode == RunMode::Agent && idling && self.signal_daemon {
            if options != RunOptions::default() {
                return refuse(
                    "Cannot specify any custom puppet options when the daemon is running".into(),
                );
            }
            let Some(pid) = pid_file_alive(&paths.pidfile) else {
                return refuse("The Puppet daemon went away; try again".into());
            };
            // SAFETY: kill(2) with a pid read from Puppet's own pidfile; no memory is shared.
            if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
                return refuse(format!(
                    "Failed to signal the puppet agent at pid {pid}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            return Ok(Outcome::ok(outputs([
                ("summary", json!("Signalled the running Puppet Daemon")),
                ("initiated_at", json!(initiated_at)),
            ])));
        }
        let splay = if flag("force") == Some(true) {
            false
        } else {
            flag("splay").unwrap_or(self.splay)
        };
        let splaylimit = data
            .get("splaylimit")
            .and_then(Value::as_f64)
            .map_or(self.splaylimit, |l| l.max(0.0) as u64);
        let mut delay = 0;
        match self.mode {
            RunMode::Agent => {
                options.splay = Some(splay);
                options.splaylimit = splay.then_some(splaylimit);
            }
            // puppet apply has no splay of its own.
            RunMode::Apply { .. } if splay => delay = random_below(splaylimit + 1),
            RunMode::Apply { .. } => {}
        }
        let argv = match runonce_argv(&self.command, &self.args, &self.mode, &options) {
            Ok(argv) => argv,
            Err(e) => return refuse(e),
        };
        let command_line = argv.join(" ");
        if let Err(busy) = self.claim("a Puppet run") {
            return refuse(busy);
        }
        let finished = events.map(|events| RunFinished {
            events,
            report: paths.lastrunreport.clone(),
            summary: paths.lastrunfile.clone(),
        });
        if let Err(e) = self.start_run(argv, delay, finished) {
            self.run.lock().unwrap_or_else(|p| p.into_inner()).take();
            return refuse(format!("Could not start Puppet: {e}"));
        }
        let mut summary = format!("Started a Puppet run using the '{command_line}' command");
        if delay > 0 {
            summary.push_str(&format!(" after a splay of {delay} seconds"));
        }
        Ok(Outcome::ok(outputs([
            ("summary", json!(summary)),
            ("initiated_at", json!(initiated_at)),
        ])))
    }

    /// Starts `argv` in the background after `delay` seconds; the claimed run slot is freed
    /// when it ends. Without a delay it is started here, so that failing to start is the
    /// caller's answer.
    fn start_run(
        &self,
        argv: Vec<String>,
        delay: u64,
        finished: Option<RunFinished>,
    ) -> Result<(), String> {
        let spawn = |argv: &[String]| {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            spawn_detached(&argv, &[]).map_err(|e| e.to_string())
        };
        let started = if delay == 0 {
            Some(spawn(&argv)?)
        } else {
            None
        };
        let run = self.run.clone();
        tokio::spawn(async move {
            let child = match started {
                Some(child) => Ok(child),
                None => {
                    tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
                    spawn(&argv)
                }
            };
            let exit_code = match child {
                Ok(mut child) => match child.wait().await {
                    Ok(status) => {
                        tracing::info!("puppet run ended: {status}");
                        status.code()
                    }
                    Err(e) => {
                        tracing::warn!("waiting for the puppet run: {e}");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!("could not start the puppet run: {e}");
                    None
                }
            };
            if let Some(finished) = finished {
                finished.say(exit_code).await;
            }
            run.lock().unwrap_or_else(|p| p.into_inner()).take();
        });
        Ok(())
    }

    async fn resource(
        &self,
        data: &Map<String, Value>,
        deadline: Deadline,
    ) -> Result<Outcome, String> {
        let text = |name: &str| data.get(name).and_then(Value::as_str).unwrap_or_default();
        let kind = text("type").to_ascii_lowercase();
        if let Err(e) = check_resource_type(&kind) {
            return Ok(Outcome::invalid(e));
        }
        let name = text("name");
        let reference = format!("{}[{name}]", capitalise_type(&kind));
        if !self.resource_types.contains(&kind) {
            return Ok(Outcome::aborted(format!(
                "The {kind} type is not listed in this node's agents.puppet.resource_types"
            )));
        }
        let paths = self.paths(deadline).await?;
        if !self.resource_allow_managed {
            let resources_txt = std::fs::read_to_string(&paths.resourcefile).ok();
            let report = match resources_txt {
                Some(_) => None,
                None => read_yaml(&paths.lastrunreport).ok().flatten(),
            };
            let managed = managed_resources(resources_txt.as_deref(), report.as_ref());
            if managed.contains(&format!("{kind}[{name}]")) {
                return Ok(Outcome::aborted(format!(
                    "Puppet is managing the resource '{reference}', refusing to create conflicting states"
                )));
            }
        }
        self.claim(&format!("resource {reference}"))?;
        let _release = ReleaseRun(&self.run);
        let scratch = tempfile::tempdir().map_err(|e| format!("no scratch directory: {e}"))?;
        let environment = data.get("environment").and_then(Value::as_str);
        let manifest = resource_manifest(&kind, name);
        let argv = resource_argv(
            &self.command,
            &self.args,
            &manifest,
            environment,
            scratch.path(),
        );
        let out = run_until(&argv, deadline)
            .await
            .map_err(|e| e.to_string())?;
        let said = out.combined();
        let result = if said.is_empty() {
            "no output produced".to_string()
        } else {
            said
        };
        Ok(match resource_outcome(out.code) {
            Ok(changed) => Outcome::ok(outputs([
                ("result", json!(result)),
                ("changed", json!(changed)),
            ])),
            Err(e) => {
                Outcome::aborted(format!("Failed to apply {reference}: {e}")).with_data(outputs([
                    ("result", json!(result)),
                    ("changed", json!(false)),
                ]))
            }
        })
    }
}

/// Choria's words for a run refused because one is in progress.
const APPLYING: &str = "Puppet is currently applying a catalog, cannot run now";

/// What a run started by runonce says when it ends: its changed resources and its figures,
/// read from the report and summary Puppet wrote.
struct RunFinished {
    events: Arc<dyn crate::EventEmitter>,
    report: PathBuf,
    summary: PathBuf,
}

impl RunFinished {
    async fn say(self, exit_code: Option<i32>) {
        let (report, summary) = (self.report, self.summary);
        // Reading and parsing a report of thousands of resources stays off the async workers.
        let read = tokio::task::spawn_blocking(move || {
            (
                read_yaml(&report).ok().flatten(),
                read_yaml(&summary).ok().flatten(),
            )
        })
        .await;
        let (report, summary) = read.unwrap_or((None, None));
        for (kind, data) in
            crate::providers::puppet::run_events(report.as_ref(), summary.as_ref(), exit_code)
        {
            let severity = match data.get("status").and_then(Value::as_str) {
                Some("failed") => mco_spec::event::Severity::Error,
                _ => mco_spec::event::Severity::Info,
            };
            self.events.emit(kind, severity, data);
        }
    }
}

/// Frees the run slot when a synchronous use of it ends.
struct ReleaseRun<'a>(&'a StdMutex<Option<ActiveRun>>);

impl Drop for ReleaseRun<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// The pid in `path` when that process is alive.
fn pid_file_alive(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    if pid <= 0 {
        return None;
    }
    // SAFETY: signal 0 only asks whether the process exists; EPERM means it does.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive.then_some(pid)
}

/// A YAML file Puppet wrote, as JSON; `None` when it does not exist.
fn read_yaml(path: &Path) -> Result<Option<Value>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_puppet_yaml(&text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `contents` to `path` through a temporary file in the same directory, so Puppet
/// never sees half a lock; readable by all, as Puppet writes it.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents.as_bytes())?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A number below `bound`, spread enough to stagger a fleet's runs (not for secrets).
fn random_below(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mixed = nanos ^ u64::from(std::process::id()).rotate_left(17);
    if bound == 0 {
        0
    } else {
        mixed % bound
    }
}

#[async_trait]
impl Agent for PuppetAgent {
    fn ddl(&self) -> &AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        ctx: &ActionContext<'_>,
        action: &str,
        data: &Map<String, Value>,
    ) -> Outcome {
        let deadline = Deadline::for_timeout(self.ddl.metadata.timeout);
        let answer = match action {
            "status" => match self.paths(deadline).await {
                Ok(paths) => Ok(Outcome::ok(status(
                    &self.observe(paths),
                    now_millis() / 1000,
                ))),
                Err(e) => Err(e),
            },
            "disable" => {
                let message = data.get("message").and_then(Value::as_str);
                self.disable(&ctx.request.caller, message, deadline).await
            }
            "enable" => self.enable(deadline).await,
            "last_run_summary" => {
                let logs = data.get("logs").and_then(Value::as_bool).unwrap_or(false);
                self.last_run_summary(logs, deadline).await
            }
            "runonce" => self.runonce(data, deadline, ctx.node.events()).await,
            "resource" => self.resource(data, deadline).await,
            other => return Outcome::unknown_action("puppet", other),
        };
        answer.unwrap_or_else(Outcome::aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{call, TestNode};
    use mco_spec::StatusCode;

    /// An agent whose Puppet paths are files in a temporary directory, so the file-based
    /// actions are tested without running Puppet.
    fn agent_on(dir: &Path) -> PuppetAgent {
        let agent = PuppetAgent::activate(&PuppetSettings {
            // Any program will do: these actions only read and write Puppet's files.
            command: Some("sh".into()),
            ..Default::default()
        })
        .unwrap();
        let paths = PuppetPaths {
            lastrunfile: dir.join("public/last_run_summary.yaml"),
            lastrunreport: dir.join("state/last_run_report.yaml"),
            agent_disabled_lockfile: dir.join("state/agent_disabled.lock"),
            agent_catalog_run_lockfile: dir.join("state/agent_catalog_run.lock"),
            pidfile: dir.join("run/agent.pid"),
            resourcefile: dir.join("state/resources.txt"),
        };
        agent.paths.set(paths).unwrap();
        agent
    }

    #[tokio::test]
    async fn disable_and_enable_use_puppets_lock() {
        let dir = tempfile::tempdir().unwrap();
        let agent = agent_on(dir.path());
        let node = TestNode;
        let lock = dir.path().join("state/agent_disabled.lock");

        let status = call(&agent, &node, "status", json!({})).await;
        assert_eq!(status.data["enabled"], true);
        assert_eq!(status.data["status"], "stopped");
        assert_eq!(status.data["since_lastrun"], "Unknown");

        let disable = call(&agent, &node, "disable", json!({"message": "maintenance"})).await;
        assert_eq!(disable.statuscode, StatusCode::Ok, "{disable:?}");
        assert_eq!(disable.data["enabled"], false);
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            r#"{"disabled_message":"maintenance"}"#
        );
        let status = call(&agent, &node, "status", json!({})).await;
        assert_eq!(
            (
                &status.data["enabled"],
                &status.data["status"],
                &status.data["disable_message"]
            ),
            (&json!(false), &json!("disabled"), &json!("maintenance"))
        );
        let twice = call(&agent, &node, "disable", json!({})).await;
        assert_eq!(
            twice.statusmsg,
            "Could not disable Puppet: Already disabled"
        );
        let run = call(&agent, &node, "runonce", json!({"force": true})).await;
        assert_eq!(run.statuscode, StatusCode::Aborted);
        assert_eq!(run.statusmsg, "Puppet is disabled: 'maintenance'");

        let enable = call(&agent, &node, "enable", json!({})).await;
        assert_eq!(
            (enable.statuscode, &enable.data["enabled"]),
            (StatusCode::Ok, &json!(true))
        );
        assert!(!lock.exists());
        let again = call(&agent, &node, "enable", json!({})).await;
        assert_eq!(again.statusmsg, "Could not enable Puppet: Already enabled");

        // A lock written by `puppet agent --disable` without a message, and the default one.
        std::fs::write(&lock, "{}").unwrap();
        let run = call(&agent, &node, "runonce", json!({})).await;
        assert_eq!(run.statusmsg, "Puppet is disabled");
        std::fs::remove_file(&lock).unwrap();
        call(&agent, &node, "disable", json!({})).await;
        assert!(disable_message(&std::fs::read_to_string(&lock).unwrap())
            .starts_with("Disabled via mco by alice at "));
    }

    #[tokio::test]
    async fn last_run_summary_and_status_read_puppets_files() {
        let dir = tempfile::tempdir().unwrap();
        let agent = agent_on(dir.path());
        let node = TestNode;
        let never = call(&agent, &node, "last_run_summary", json!({})).await;
        assert_eq!(never.statuscode, StatusCode::Ok);
        assert_eq!(never.data["since_lastrun"], "Unknown");
        assert_eq!(never.data["total_resources"], 0);
        assert_eq!(never.data["failed_resources"], -1);

        let now = now_millis() / 1000;
        std::fs::create_dir_all(dir.path().join("public")).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(
            dir.path().join("public/last_run_summary.yaml"),
            format!("---\nversion:\n  config: 42\nresources:\n  changed: 2\n  total: 9\n  failed: 1\ntime:\n  config_retrieval: 0.5\n  total: 1.5\n  last_run: {}\n", now - 10),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("state/last_run_report.yaml"),
            "--- !ruby/object:Puppet::Transaction::Report\nlogs:\n- level: notice\n  message: hello\n  source: Puppet\n  time: '2026-01-01T00:00:00+00:00'\nresource_statuses:\n  File[/tmp/x]: {}\n  Notify[hi]: {}\n",
        )
        .unwrap();
        let summary = call(&agent, &node, "last_run_summary", json!({"logs": true})).await;
        assert_eq!(summary.statuscode, StatusCode::Ok, "{summary:?}");
        assert_eq!(summary.data["changed_resources"], 2);
        assert_eq!(summary.data["failed_resources"], 1);
        assert_eq!(summary.data["total_resources"], 9);
        assert_eq!(summary.data["config_retrieval_time"], 0.5);
        assert_eq!(summary.data["config_version"], "42");
        assert!(summary.data["since_lastrun"].as_u64().unwrap() >= 10);
        assert_eq!(
            summary.data["type_distribution"],
            json!({"File": 1, "Notify": 1})
        );
        assert_eq!(summary.data["logs"][0]["msg"], "hello");
        let quiet = call(&agent, &node, "last_run_summary", json!({})).await;
        assert_eq!(quiet.data["logs"], json!([]));
        let status = call(&agent, &node, "status", json!({})).await;
        assert_eq!(status.data["lastrun"], now - 10);

        // A daemon whose pidfile names a live process (this test) is present and idling.
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(
            dir.path().join("run/agent.pid"),
            std::process::id().to_string(),
        )
        .unwrap();
        let status = call(&agent, &node, "status", json!({})).await;
        assert_eq!(
            (&status.data["daemon_present"], &status.data["status"]),
            (&json!(true), &json!("idling"))
        );
        // ...and a catalog run lock naming a live process means a catalog is being applied.
        std::fs::write(
            dir.path().join("state/agent_catalog_run.lock"),
            std::process::id().to_string(),
        )
        .unwrap();
        let status = call(&agent, &node, "status", json!({})).await;
        assert_eq!(status.data["status"], "applying a catalog");
        let run = call(&agent, &node, "runonce", json!({})).await;
        assert_eq!(run.statusmsg, APPLYING);
    }

    #[tokio::test]
    async fn resources_are_refused_unless_listed_and_unmanaged() {
        let dir = tempfile::tempdir().unwrap();
        let agent = agent_on(dir.path());
        let node = TestNode;
        let refused = call(
            &agent,
            &node,
            "resource",
            json!({"type": "exec", "name": "/bin/true"}),
        )
        .await;
        assert_eq!(refused.statuscode, StatusCode::Aborted);
        assert!(refused.statusmsg.contains("not listed"), "{refused:?}");
        let bad = call(
            &agent,
            &node,
            "resource",
            json!({"type": "exec{", "name": "x"}),
        )
        .await;
        assert_eq!(bad.statuscode, StatusCode::InvalidData);
    }

    #[test]
    fn settings_are_checked() {
        assert!(PuppetSettings::default().check().is_ok());
        let no_manifest = PuppetSettings {
            run_mode: Some(RunModeName::Apply),
            ..Default::default()
        };
        assert_eq!(
            no_manifest.check().unwrap_err().key,
            "agents.puppet.manifest"
        );
        assert!(PuppetAgent::activate(&no_manifest).is_err());
        let bad_type = PuppetSettings {
            resource_types: vec!["File".into()],
            ..Default::default()
        };
        assert_eq!(
            bad_type.check().unwrap_err().key,
            "agents.puppet.resource_types"
        );
        let missing = PuppetAgent::activate(&PuppetSettings {
            command: Some("no-such-puppet-mco".into()),
            ..Default::default()
        });
        assert!(missing.err().unwrap().0.contains("was not found"));
        assert!(random_below(10) < 10);
        assert_eq!(random_below(0), 0);
    }
}
