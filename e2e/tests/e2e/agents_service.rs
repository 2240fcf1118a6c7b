//! The service agent through real mcod and mco on a real SysV init script: a small daemon
//! with a pidfile, written by the test into a temporary init directory that the nodes are
//! configured with, is started, reported running (per node and in the summary, and by the
//! `service('x').status` data plugin in `-S` filters), restarted, stopped and reported
//! stopped; two restarts at once run one after the other.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mco_testsupport::{Fleet, NodeSpec};
use serde_json::json;

pub(crate) const SERVICE: &str = "mco-e2e-svc";

/// The init directory with the service's init script and daemon; the daemon is stopped
/// when this is dropped, even if the test failed half-way.
pub(crate) struct InitDir {
    dir: tempfile::TempDir,
}

impl InitDir {
    pub(crate) fn new() -> InitDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let daemon = "#!/bin/sh\n\
             # A tiny daemon: records its pid, removes it when told to stop.\n\
             echo $$ > \"$1\"\n\
             trap 'rm -f \"$1\"; exit 0' TERM\n\
             while :; do sleep 1; done\n"
            .to_string();
        let init = format!(
            r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          {SERVICE}
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: mco end-to-end test daemon
### END INIT INFO
STATE={root}/state
PIDFILE=$STATE/daemon.pid
mkdir -p "$STATE"
running() {{ [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
log() {{ echo "$1 $2" >> "$STATE/calls.log"; }}
case "$1" in
  start)
    log begin start
    if ! running; then
      nohup {root}/daemon.sh "$PIDFILE" >/dev/null 2>&1 &
      i=0; while [ $i -lt 100 ] && ! running; do sleep 0.05; i=$((i+1)); done
    fi
    log end start
    running ;;
  stop)
    log begin stop
    if running; then
      kill "$(cat "$PIDFILE")"
      i=0; while [ $i -lt 100 ] && running; do sleep 0.05; i=$((i+1)); done
    fi
    rm -f "$PIDFILE"
    log end stop ;;
  restart)
    log begin restart
    "$0" stop
    "$0" start
    log end restart ;;
  status)
    if running; then echo "{SERVICE} is running"; exit 0; fi
    echo "{SERVICE} is not running"; exit 3 ;;
  *)
    echo "Usage: $0 {{start|stop|restart|status}}" >&2; exit 2 ;;
esac
"#
        );
        for (name, text) in [("daemon.sh", daemon), (SERVICE, init)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        InitDir { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.path().join("state/daemon.pid"))
            .ok()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("state/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn script(&self) -> PathBuf {
        self.path().join(SERVICE)
    }
}

impl Drop for InitDir {
    fn drop(&mut self) {
        let _ = std::process::Command::new(self.script())
            .arg("stop")
            .status();
    }
}

fn fleet(init: &InitDir) -> Fleet {
    let node = |id: &str| {
        let mut spec = NodeSpec::new(id, json!({"role": "web"}), &[]);
        spec.extra_config = format!(
            "[agents.service]\nprovider = \"sysv\"\ninit_dir = {:?}\n",
            init.path().display().to_string()
        );
        spec
    };
    Fleet::start(vec![node("svc1"), node("svc2"), node("svc3")])
}

/// A script in the test's init directory that only logs that it ran: were a refusal ever
/// missing, this harmless script would run, never the machine's own `halt`.
fn decoy(init: &InitDir, name: &str) {
    let path = init.path().join(name);
    let log = init.path().join("decoys.log");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"{name} $1\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn decoys_run(init: &InitDir) -> String {
    std::fs::read_to_string(init.path().join("decoys.log")).unwrap_or_default()
}

/// `service start service=reboot.target` rebooted a node: the agent took any unit, and any
/// init script, for a service. Now only services are, a node's deny list is obeyed, and
/// the refusal comes before any command runs (SysV here, and systemd's rules too).
#[test]
fn only_services_the_node_allows_are_started_or_stopped() {
    let init = InitDir::new();
    for name in [
        "halt",
        "reboot",
        "reboot.target",
        "sendsigs",
        "mco-e2e-denied",
    ] {
        decoy(&init, name);
    }
    let sysv = {
        let mut spec = NodeSpec::new("sysv1", json!({}), &[]);
        spec.extra_config = format!(
            "[agents.service]\nprovider = \"sysv\"\ninit_dir = {:?}\ndeny = [\"mco-e2e-denied*\"]\n",
            init.path().display().to_string()
        );
        spec
    };
    // systemd's rules apply before systemctl runs; run only where systemd is not the
    // init, so that a missing refusal could never reach a real systemd.
    let systemd_runs = Path::new("/run/systemd/system").is_dir();
    let mut specs = vec![sysv];
    if !systemd_runs {
        let mut spec = NodeSpec::new("systemd1", json!({}), &[]);
        spec.extra_config = "[agents.service]\nprovider = \"systemd\"\n".into();
        specs.push(spec);
    }
    let fleet = Fleet::start(specs);
    let on = |node: &str, action: &str, service: &str| {
        let service = format!("service={service}");
        crate::single_reply(
            &fleet,
            &["rpc", "service", action, &service, "-I", node, "-j"],
        )
    };
    let not_a_service = "halts, reboots or is a step of booting or shutting down";
    let mut attempts = vec![
        ("sysv1", "start", "halt", not_a_service),
        ("sysv1", "stop", "reboot", not_a_service),
        ("sysv1", "restart", "sendsigs", not_a_service),
        ("sysv1", "start", "halt.service", not_a_service),
        ("sysv1", "start", "reboot.target", "not .target units"),
        (
            "sysv1",
            "start",
            "mco-e2e-denied",
            "is denied by this node's [agents.service] deny list",
        ),
    ];
    if !systemd_runs {
        attempts.extend([
            ("systemd1", "start", "reboot.target", "not .target units"),
            ("systemd1", "start", "poweroff.target", "not .target units"),
            ("systemd1", "start", "systemd-reboot.service", not_a_service),
            ("systemd1", "stop", "dbus.socket", "not .socket units"),
        ]);
    }
    for (node, action, service, why) in attempts {
        let refused = on(node, action, service);
        assert_eq!(
            refused["statuscode"], 4,
            "{node} {action} {service}: {refused}"
        );
        let message = refused["statusmsg"].as_str().unwrap_or_default();
        assert!(
            message.contains(why),
            "{node} {action} {service}: {message:?}"
        );
    }
    assert_eq!(decoys_run(&init), "", "a refused script ran");

    // An allowed service still works.
    let start = on("sysv1", "start", SERVICE);
    assert_eq!(
        (&start["statuscode"], &start["data"]["status"]),
        (&json!(0), &json!("running")),
        "{start}"
    );
    let stop = on("sysv1", "stop", &format!("{SERVICE}.service"));
    assert_eq!(stop["data"]["status"], "stopped", "{stop}");
}

fn status_of(fleet: &Fleet, node: &str) -> String {
    let json = fleet
        .mco(&[
            "rpc",
            "service",
            "status",
            &format!("service={SERVICE}"),
            "-I",
            node,
            "-j",
        ])
        .json();
    assert_eq!(json[0]["statuscode"], 0, "{json}");
    json[0]["data"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_sysv_service_is_started_restarted_and_stopped_through_mco() {
    let init = InitDir::new();
    let fleet = fleet(&init);
    let service = format!("service={SERVICE}");

    // Over the fleet: each node's status and the summary.
    let status = fleet.mco(&["rpc", "service", "status", &service]);
    assert_eq!(status.code, Some(0), "{status:?}");
    for node in ["svc1", "svc2", "svc3"] {
        assert!(status.stdout.contains(node), "{}", status.stdout);
    }
    assert_eq!(
        status.stdout.matches("Service Status: stopped").count(),
        3,
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("Summary of Service Status:\n\n   stopped = 3"),
        "{}",
        status.stdout
    );

    let start = fleet.mco(&["rpc", "service", "start", &service, "-I", "svc1", "-j"]);
    assert_eq!(start.json()[0]["statuscode"], 0, "{start:?}");
    assert_eq!(start.json()[0]["data"]["status"], "running");
    let first_pid = init.pid().expect("the daemon wrote its pidfile");

    let status = fleet.mco(&["rpc", "service", "status", &service]);
    assert!(
        status
            .stdout
            .contains("Summary of Service Status:\n\n   running = 3"),
        "{}",
        status.stdout
    );
    // The data plugin answers filters with the same status.
    let running = fleet.mco(&[
        "find",
        "-S",
        &format!("service('{SERVICE}').status=running"),
    ]);
    assert_eq!(running.stdout, "svc1\nsvc2\nsvc3\n", "{running:?}");

    // Starting what runs is refused with the status it has: status 1, exit code 2.
    let again = fleet.mco(&["rpc", "service", "start", &service, "-I", "svc1"]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(
        again.stdout.contains(&format!(
            "Could not start '{SERVICE}': Service is already running"
        )),
        "{}",
        again.stdout
    );

    let restart = fleet.mco(&["rpc", "service", "restart", &service, "-I", "svc1", "-j"]);
    assert_eq!(
        restart.json()[0]["data"]["status"],
        "running",
        "{restart:?}"
    );
    let second_pid = init.pid().expect("running after restart");
    assert_ne!(first_pid, second_pid, "restart started a new daemon");

    // Two restarts at once on one node: both succeed, one after the other.
    let config = fleet.client_config();
    let restarts: Vec<_> = (0..2)
        .map(|_| {
            let config = config.clone();
            let service = service.clone();
            std::thread::spawn(move || {
                mco_testsupport::mco(
                    &config,
                    &["rpc", "service", "restart", &service, "-I", "svc1", "-j"],
                    Duration::from_secs(60),
                )
            })
        })
        .collect();
    for restart in restarts {
        let run = restart.join().unwrap();
        assert_eq!(run.json()[0]["statuscode"], 0, "{run:?}");
    }
    let restarts: Vec<String> = init
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
            "end restart",
            "begin restart",
            "end restart"
        ],
        "restarts interleaved"
    );

    let stop = fleet.mco(&["rpc", "service", "stop", &service, "-I", "svc1", "-j"]);
    assert_eq!(stop.json()[0]["data"]["status"], "stopped", "{stop:?}");
    assert_eq!(init.pid(), None);
    assert_eq!(status_of(&fleet, "svc2"), "stopped");
    let none = fleet.mco(&[
        "find",
        "-S",
        &format!("service('{SERVICE}').status=running"),
    ]);
    assert_eq!((none.code, none.stdout.as_str()), (Some(1), ""), "{none:?}");

    let unknown = fleet.mco(&[
        "rpc",
        "service",
        "status",
        "service=mco-no-such-svc",
        "-I",
        "svc1",
    ]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(
        unknown
            .stdout
            .contains("Could not determine the status of 'mco-no-such-svc'"),
        "{}",
        unknown.stdout
    );
}
