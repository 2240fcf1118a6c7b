//! The `service` agent: start, stop, restart and status of Choria's service agent DDL
//! (shipped by `mco_ddl::builtin`) through systemd (`systemctl`) or SysV init scripts,
//! chosen by what runs the node or by the `[agents.service]` configuration; and the
//! `service('name').status` data plugin for `-S` filters.
//!
//! Actions on one service are serialised (two restarts of httpd run one after the other,
//! never interleaved); actions on different services run at once. As in Choria's agent,
//! starting a running service or stopping a stopped one is refused (status 1) with the
//! current status, and every action answers with the status it left the service in.
//!
//! Not here: the argv and status rules of each provider ([`crate::providers::service`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use globset::{Glob, GlobSet, GlobSetBuilder};
use mco_ddl::AgentDdl;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::agent::{outputs, shipped_ddl, ActionContext, Agent, Outcome};
use crate::providers::command::{find_program, run_blocking, run_until, Deadline};
use crate::providers::service::{
    ProviderName, ServiceAction, ServiceName, ServiceProvider, ServiceStatus,
};
use crate::registry::{InvalidSetting, Unavailable};

/// The `[agents.service]` table of mcod's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// `systemd` or `sysv`; when not given, systemd if it runs the node, else SysV.
    #[serde(default)]
    pub provider: Option<ProviderName>,
    /// Where SysV init scripts are (default `/etc/init.d`).
    #[serde(default)]
    pub init_dir: Option<PathBuf>,
    /// Glob patterns (`*`, `?`, `[...]`) of the services the agent may act on, matched
    /// against the name without `.service`; empty: every service not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Glob patterns of services the agent refuses; a name both allowed and denied is denied.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl ServiceSettings {
    /// Checks values a type cannot: the allow and deny patterns.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        ServiceRules::new(self).map(|_| ())
    }
}

/// The configured allow and deny lists, compiled.
struct ServiceRules {
    /// `None`: every service is allowed (unless denied).
    allow: Option<GlobSet>,
    deny: GlobSet,
}

impl ServiceRules {
    fn new(settings: &ServiceSettings) -> Result<ServiceRules, InvalidSetting> {
        let compile = |key: &'static str, patterns: &[String]| {
            let mut set = GlobSetBuilder::new();
            for pattern in patterns {
                let glob = Glob::new(pattern).map_err(|e| {
                    InvalidSetting::new(key, format!("{pattern:?} is not a glob pattern: {e}"))
                })?;
                set.add(glob);
            }
            set.build()
                .map_err(|e| InvalidSetting::new(key, e.to_string()))
        };
        let allow = compile("agents.service.allow", &settings.allow)?;
        Ok(ServiceRules {
            allow: (!settings.allow.is_empty()).then_some(allow),
            deny: compile("agents.service.deny", &settings.deny)?,
        })
    }

    /// Refuses a service this node's lists do not let the agent act on.
    fn admit(&self, service: &ServiceName) -> Result<(), String> {
        let name = &service.name;
        if self.deny.is_match(name) {
            return Err(format!(
                "service {name:?} is denied by this node's [agents.service] deny list"
            ));
        }
        match &self.allow {
            Some(allow) if !allow.is_match(name) => Err(format!(
                "service {name:?} is not in this node's [agents.service] allow list"
            )),
            _ => Ok(()),
        }
    }
}

/// The default SysV init script directory.
pub const DEFAULT_INIT_DIR: &str = "/etc/init.d";

/// How long the data plugin's status command may take before it is killed: filters and
/// `rpcutil get_data` wait for it, on a blocking thread that cannot be stopped otherwise.
pub const DATA_PLUGIN_LIMIT: Duration = Duration::from_secs(3);

/// How long a service is given to settle after an action before its status is read, as
/// Choria's agent does.
const SETTLE: Duration = Duration::from_millis(500);

/// The service agent.
pub struct ServiceAgent {
    ddl: AgentDdl,
    provider: ServiceProvider,
    rules: ServiceRules,
    /// One lock per service name with an action in progress or waiting; entries are removed
    /// when no action holds them, so the map stays as small as the work in flight.
    locks: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ServiceAgent {
    /// The agent with the configured provider, or systemd when it runs the node, or SysV
    /// when the node has init scripts or `service`; `Err` says why it has none.
    pub fn activate(settings: &ServiceSettings) -> Result<ServiceAgent, Unavailable> {
        let rules = ServiceRules::new(settings).map_err(|e| Unavailable(e.to_string()))?;
        let init_dir = settings
            .init_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_INIT_DIR));
        let provider = match settings.provider {
            Some(name) => ServiceProvider::named(name, &init_dir),
            None => {
                let systemd = ServiceProvider::systemd_running();
                if !systemd && !init_dir.is_dir() && find_program("service").is_none() {
                    return Err(Unavailable(format!(
                        "neither systemd nor init scripts ({}) nor `service` found",
                        init_dir.display()
                    )));
                }
                ServiceProvider::detect(systemd, &init_dir)
            }
        };
        Ok(ServiceAgent {
            ddl: shipped_ddl("service"),
            provider,
            rules,
            locks: StdMutex::new(HashMap::new()),
        })
    }

    /// The provider in use.
    pub fn provider(&self) -> &ServiceProvider {
        &self.provider
    }

    /// The service a request names, or why the agent will not act on it: before any
    /// command runs, every action and the data plugin go through here.
    fn admit(&self, requested: &str) -> Result<ServiceName, String> {
        let service = self.provider.service_name(requested)?;
        self.rules.admit(&service)?;
        Ok(service)
    }

    fn lock_for(&self, service: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(service.to_string()).or_default().clone()
    }

    fn forget_idle_locks(&self) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    }

    async fn status(
        &self,
        service: &str,
        unit: &str,
        deadline: Deadline,
    ) -> Result<ServiceStatus, String> {
        let argv = self.provider.argv(ServiceAction::Status, unit);
        let out = run_until(&argv, deadline)
            .await
            .map_err(|e| format!("Could not determine the status of '{service}': {e}"))?;
        self.provider
            .parse_status(out.code, &out.combined())
            .map_err(|e| format!("Could not determine the status of '{service}': {e}"))
    }

    /// `action` on the service requested as `service`, which the provider calls `unit`.
    async fn act(
        &self,
        action: ServiceAction,
        service: &str,
        unit: &str,
        deadline: Deadline,
    ) -> Outcome {
        let reply = |status: ServiceStatus| outputs([("status", json!(status.as_str()))]);
        if action == ServiceAction::Status {
            return match self.status(service, unit, deadline).await {
                Ok(status) => Outcome::ok(reply(status)),
                Err(e) => Outcome::aborted(e),
            };
        }
        let already = match action {
            ServiceAction::Start => Some((ServiceStatus::Running, "running")),
            ServiceAction::Stop => Some((ServiceStatus::Stopped, "stopped")),
            _ => None,
        };
        if let Some((state, word)) = already {
            match self.status(service, unit, deadline).await {
                Ok(now) if now == state => {
                    return Outcome::aborted(format!(
                        "Could not {} '{service}': Service is already {word}",
                        action.verb()
                    ))
                    .with_data(reply(now));
                }
                Ok(_) => {}
                Err(e) => return Outcome::aborted(e),
            }
        }
        let argv = self.provider.argv(action, unit);
        let out = match run_until(&argv, deadline).await {
            Ok(out) => out,
            Err(e) => {
                return Outcome::aborted(format!("Could not {} '{service}': {e}", action.verb()))
            }
        };
        tokio::time::sleep(SETTLE.min(deadline.remaining())).await;
        let after = self.status(service, unit, deadline).await;
        if !out.success() {
            let said = out.combined();
            let why = match said.lines().rev().find(|l| !l.trim().is_empty()) {
                Some(line) => line.trim().to_string(),
                None => format!("exit code {}", out.code.unwrap_or(-1)),
            };
            let failed =
                Outcome::aborted(format!("Could not {} '{service}': {why}", action.verb()));
            return match after {
                Ok(status) => failed.with_data(reply(status)),
                Err(_) => failed,
            };
        }
        match after {
            Ok(status) => Outcome::ok(reply(status)),
            Err(e) => Outcome::aborted(e),
        }
    }
}

#[async_trait]
impl Agent for ServiceAgent {
    fn ddl(&self) -> &AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        _ctx: &ActionContext<'_>,
        action: &str,
        data: &Map<String, Value>,
    ) -> Outcome {
        let deadline = Deadline::for_timeout(self.ddl.metadata.timeout);
        let Some(action) = ServiceAction::from_name(action) else {
            return Outcome::unknown_action("service", action);
        };
        // The node validated inputs against the DDL (service_name), so the name is here.
        let service = data
            .get("service")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let admitted = match self.admit(service) {
            Ok(admitted) => admitted,
            Err(e) => return Outcome::invalid(e),
        };
        let lock = self.lock_for(&admitted.name);
        let outcome = match tokio::time::timeout(deadline.remaining(), lock.lock()).await {
            Ok(_held) => self.act(action, service, &admitted.unit, deadline).await,
            Err(_) => Outcome::aborted(format!(
                "another action on service '{service}' did not finish in time; try again later"
            )),
        };
        drop(lock);
        self.forget_idle_locks();
        outcome
    }

    /// `service('httpd').status` → `{"status": "running"}` or `stopped`. Runs the status
    /// command on the calling thread (a blocking one), killed after [`DATA_PLUGIN_LIMIT`].
    fn data_query(&self, query: Option<&str>) -> Option<Result<Value, String>> {
        let answer = (|| {
            let service = query.ok_or("the service data plugin needs a service name")?;
            let service = self.admit(service)?;
            let argv = self.provider.argv(ServiceAction::Status, &service.unit);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = run_blocking(&argv, DATA_PLUGIN_LIMIT, &[]).map_err(|e| e.to_string())?;
            let status = self.provider.parse_status(out.code, &out.combined())?;
            Ok(json!({ "status": status.as_str() }))
        })();
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{call, TestNode};
    use mco_spec::StatusCode;
    use std::os::unix::fs::PermissionsExt;

    /// An LSB-style init script for a small daemon with a pidfile, in a temporary init
    /// directory; every call of the script is logged so tests can see the order of actions.
    struct TestService {
        dir: tempfile::TempDir,
    }

    impl TestService {
        fn new() -> TestService {
            let dir = tempfile::tempdir().unwrap();
            let pidfile = dir.path().join("daemon.pid");
            let log = dir.path().join("calls.log");
            let script = format!(
                r#"#!/bin/sh
PIDFILE={pid}
running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
echo "begin $1" >> {log}
case "$1" in
  start) running || {{ sleep 1000 >/dev/null 2>&1 & echo $! > "$PIDFILE"; }} ;;
  stop) running && kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE" ;;
  restart) "$0" stop; sleep 0.2; "$0" start ;;
  status) running; rc=$?; echo "end $1" >> {log}; [ $rc -eq 0 ] && exit 0 || exit 3 ;;
  *) echo "Usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
echo "end $1" >> {log}
exit 0
"#,
                pid = pidfile.display(),
                log = log.display()
            );
            let path = dir.path().join("mco-unit-svc");
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            TestService { dir }
        }

        fn agent(&self) -> ServiceAgent {
            ServiceAgent::activate(&ServiceSettings {
                provider: Some(ProviderName::Sysv),
                init_dir: Some(self.dir.path().to_path_buf()),
                ..Default::default()
            })
            .unwrap()
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("calls.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    impl Drop for TestService {
        fn drop(&mut self) {
            let script = self.dir.path().join("mco-unit-svc");
            let _ = std::process::Command::new(script).arg("stop").status();
        }
    }

    #[tokio::test]
    async fn a_sysv_service_is_started_restarted_and_stopped() {
        let svc = TestService::new();
        let agent = svc.agent();
        let node = TestNode;
        let args = json!({"service": "mco-unit-svc"});
        let status = |o: &Outcome| o.data["status"].as_str().unwrap_or_default().to_string();

        let before = call(&agent, &node, "status", args.clone()).await;
        assert_eq!(
            (before.statuscode, status(&before)),
            (StatusCode::Ok, "stopped".into())
        );
        let stop = call(&agent, &node, "stop", args.clone()).await;
        assert_eq!(stop.statuscode, StatusCode::Aborted);
        assert_eq!(
            stop.statusmsg,
            "Could not stop 'mco-unit-svc': Service is already stopped"
        );
        assert_eq!(status(&stop), "stopped");

        let start = call(&agent, &node, "start", args.clone()).await;
        assert_eq!(
            (start.statuscode, status(&start)),
            (StatusCode::Ok, "running".into())
        );
        assert_eq!(
            agent.data_query(Some("mco-unit-svc")),
            Some(Ok(json!({"status": "running"})))
        );
        let again = call(&agent, &node, "start", args.clone()).await;
        assert_eq!(
            again.statusmsg,
            "Could not start 'mco-unit-svc': Service is already running"
        );

        let restart = call(&agent, &node, "restart", args.clone()).await;
        assert_eq!(
            (restart.statuscode, status(&restart)),
            (StatusCode::Ok, "running".into())
        );
        let stop = call(&agent, &node, "stop", args.clone()).await;
        assert_eq!(
            (stop.statuscode, status(&stop)),
            (StatusCode::Ok, "stopped".into())
        );
        assert_eq!(
            agent.data_query(Some("mco-unit-svc")),
            Some(Ok(json!({"status": "stopped"})))
        );
    }

    #[tokio::test]
    async fn restarts_of_one_service_never_interleave() {
        let svc = TestService::new();
        let agent = svc.agent();
        let node = TestNode;
        let args = json!({"service": "mco-unit-svc"});
        let (a, b) = tokio::join!(
            call(&agent, &node, "restart", args.clone()),
            call(&agent, &node, "restart", args.clone())
        );
        assert_eq!(
            (a.statuscode, b.statuscode),
            (StatusCode::Ok, StatusCode::Ok)
        );
        // Each restart's begin is followed by its own end before the next restart begins.
        let restarts: Vec<String> = svc
            .calls()
            .into_iter()
            .filter(|l| l.ends_with(" restart"))
            .collect();
        assert_eq!(
            restarts,
            [
                "begin restart",
                "end restart",
                "begin restart",
                "end restart"
            ]
        );
        assert!(
            agent.locks.lock().unwrap().is_empty(),
            "idle locks are forgotten"
        );
        call(&agent, &node, "stop", args).await;
    }

    #[tokio::test]
    async fn unsafe_or_unknown_names_are_refused() {
        let svc = TestService::new();
        let agent = svc.agent();
        let node = TestNode;
        for name in ["--status-all", "..", "-h"] {
            let refused = call(&agent, &node, "status", json!({"service": name})).await;
            assert_eq!(refused.statuscode, StatusCode::InvalidData, "{name}");
        }
        // The DDL's own validator refuses shell syntax before the agent sees it.
        let shell = call(
            &agent,
            &node,
            "start",
            json!({"service": "x; touch /tmp/mco-pwned"}),
        )
        .await;
        assert_eq!(shell.statuscode, StatusCode::InvalidData);
        assert!(svc.calls().is_empty(), "no command ran");
        assert!(matches!(agent.data_query(Some("-h")), Some(Err(_))));
        assert!(matches!(agent.data_query(None), Some(Err(_))));
    }

    #[tokio::test]
    async fn non_services_and_denied_services_are_refused_before_any_command() {
        let svc = TestService::new();
        // Scripts that would only log, should the agent ever run them.
        for name in [
            "halt",
            "reboot",
            "reboot.target",
            "mco-unit-denied",
            "other",
        ] {
            let path = svc.dir.path().join(name);
            let log = svc.dir.path().join("calls.log");
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho \"{name} $1\" >> {}\n", log.display()),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let agent = ServiceAgent::activate(&ServiceSettings {
            provider: Some(ProviderName::Sysv),
            init_dir: Some(svc.dir.path().to_path_buf()),
            allow: vec!["mco-*".into(), "halt".into()],
            deny: vec!["mco-unit-denied*".into()],
        })
        .unwrap();
        let node = TestNode;
        let refusals = [
            (
                "halt",
                "it halts, reboots or is a step of booting or shutting down",
            ),
            (
                "reboot",
                "it halts, reboots or is a step of booting or shutting down",
            ),
            (
                "reboot.target",
                "manages .service units only, not .target units",
            ),
            (
                "mco-unit-denied",
                "is denied by this node's [agents.service] deny list",
            ),
            (
                "mco-unit-denied.service",
                "is denied by this node's [agents.service] deny list",
            ),
            ("other", "is not in this node's [agents.service] allow list"),
        ];
        for (name, why) in refusals {
            for action in ["start", "stop", "restart", "status"] {
                let refused = call(&agent, &node, action, json!({"service": name})).await;
                assert_eq!(
                    refused.statuscode,
                    StatusCode::InvalidData,
                    "{action} {name}"
                );
                assert!(
                    refused.statusmsg.contains(why),
                    "{action} {name}: {}",
                    refused.statusmsg
                );
            }
            assert!(
                matches!(agent.data_query(Some(name)), Some(Err(e)) if e.contains(why)),
                "{name}"
            );
        }
        assert!(svc.calls().is_empty(), "a command ran: {:?}", svc.calls());
        let allowed = call(
            &agent,
            &node,
            "status",
            json!({"service": "mco-unit-svc.service"}),
        )
        .await;
        assert_eq!(allowed.data["status"], "stopped", "{allowed:?}");
    }

    #[test]
    fn bad_patterns_are_refused_naming_the_key() {
        let bad = ServiceSettings {
            deny: vec!["[unclosed".into()],
            ..Default::default()
        };
        assert_eq!(bad.check().unwrap_err().key, "agents.service.deny");
        assert!(ServiceAgent::activate(&bad).is_err());
        assert!(ServiceSettings::default().check().is_ok());
    }

    #[test]
    fn the_data_plugin_is_bounded() {
        let svc = TestService::new();
        let hang = svc.dir.path().join("mco-unit-hang");
        std::fs::write(&hang, "#!/bin/sh\nsleep 60\n").unwrap();
        std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
        let answer = svc.agent().data_query(Some("mco-unit-hang"));
        let Some(Err(e)) = answer else {
            panic!("{answer:?}")
        };
        assert!(e.contains("did not finish within 3s and was killed"), "{e}");
    }

    #[test]
    fn providers_are_chosen_by_config_or_by_the_node() {
        let systemd = ServiceAgent::activate(&ServiceSettings {
            provider: Some(ProviderName::Systemd),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(systemd.provider(), &ServiceProvider::Systemd);
        let dir = tempfile::tempdir().unwrap();
        if !ServiceProvider::systemd_running() {
            let found = ServiceAgent::activate(&ServiceSettings {
                init_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(found.provider().name(), "sysv");
        }
    }
}
