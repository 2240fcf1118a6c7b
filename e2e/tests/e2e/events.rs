//! Events through real mcod and mco: a service restarted through mco says
//! `service.state_changed` (and `agent.action`) the moment it happens, to a tail that was
//! already running; `mco events --since` replays the history kept in the broker's stream
//! for a tail started afterwards; `-W` chooses nodes; a node's start and stop are events;
//! forged events (unsigned, signed by another node, on another node's subject) are dropped
//! and counted, never shown.

use std::process::Child;
use std::time::{Duration, Instant};

use mco_spec::event::{Event, EventEnvelope, Severity};
use mco_testsupport::{mco_command, Fleet, NodeSpec};
use serde_json::{json, Value};

use crate::agents_service::{InitDir, SERVICE};

fn fleet(init: &InitDir) -> Fleet {
    let node = |id: &str, role: &str| {
        let mut spec = NodeSpec::new(id, json!({"role": role}), &[]);
        spec.extra_config = format!(
            "[agents.service]\nprovider = \"sysv\"\ninit_dir = {:?}\n",
            init.path().display().to_string()
        );
        spec
    };
    Fleet::start(vec![node("web1", "web"), node("db1", "db")])
}

/// `mco events ARGS` running in the background.
fn tail(fleet: &Fleet, args: &[&str]) -> Child {
    mco_command(&fleet.client_config(), &[&["events"], args].concat())
        .spawn()
        .unwrap()
}

/// What a background `mco events` printed once it ended (at its --count or --for); it is
/// killed after `limit`, and its code is then `None`.
fn finish(child: Child, limit: Duration) -> (Option<i32>, String, String) {
    let run = mco_testsupport::finish(child, Instant::now(), limit);
    (run.code, run.stdout, run.stderr)
}

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn events_are_said_live_kept_for_since_and_forgeries_dropped() {
    let init = InitDir::new();
    let fleet = fleet(&init);

    // A tail that is running before anything happens.
    let live = tail(
        &fleet,
        &["--type", "service.*", "--count", "1", "--for", "30", "-j"],
    );
    // The node started: a tail from the history sees both nodes say so.
    let started = fleet.mco(&[
        "events",
        "--since",
        "5m",
        "--type",
        "node.started",
        "--count",
        "2",
        "--for",
        "10",
        "-j",
    ]);
    assert_eq!(started.code, Some(0), "{started:?}");
    let mut who: Vec<String> = lines(&started.stdout)
        .iter()
        .map(|e| e["identity"].as_str().unwrap().to_string())
        .collect();
    who.sort();
    assert_eq!(who, ["db1", "web1"], "{started:?}");

    // The live tail subscribed while the history was read; a moment more for a slow start.
    std::thread::sleep(Duration::from_millis(500));
    let restart = fleet.mco(&["service", SERVICE, "restart", "-W", "role=web"]);
    assert_eq!(restart.code, Some(0), "{restart:?}");
    let (code, out, err) = finish(live, Duration::from_secs(40));
    assert_eq!(code, Some(0), "{err}");
    let seen = lines(&out);
    assert_eq!(seen.len(), 1, "{out}");
    assert_eq!(seen[0]["type"], "service.state_changed");
    assert_eq!(seen[0]["identity"], "web1");
    assert_eq!(
        seen[0]["data"],
        json!({"service": SERVICE, "state": "running", "action": "restart"})
    );

    // Started afterwards, --since replays the restart from the history, and -W keeps the
    // nodes it discovers.
    let replay = fleet.mco(&[
        "events",
        "--since",
        "5m",
        "--type",
        "agent.action",
        "-W",
        "role=web",
        "--for",
        "3",
        "-j",
    ]);
    assert_eq!(replay.code, Some(0), "{replay:?}");
    let actions = lines(&replay.stdout);
    assert_eq!(actions.len(), 1, "{replay:?}");
    assert_eq!(actions[0]["data"]["agent"], "service");
    assert_eq!(actions[0]["data"]["action"], "restart");
    assert_eq!(actions[0]["data"]["inputs"]["service"], SERVICE);
    assert!(actions[0]["sequence"].as_u64().is_some(), "{replay:?}");
    let text = fleet.mco(&[
        "events",
        "--since",
        "5m",
        "--type",
        "service.*",
        "--for",
        "2",
    ]);
    assert!(
        text.stdout.contains(
            " web1 service.state_changed info action=restart service=mco-e2e-svc state=running"
        ),
        "{text:?}"
    );

    let table = fleet.mco(&[
        "events",
        "--since",
        "5m",
        "--type",
        "service.*",
        "--for",
        "2",
        "--table",
    ]);
    assert!(
        table.stdout.contains("Severity")
            && table.stdout.contains("│ web1 ")
            && table.stdout.contains("state=running"),
        "{table:?}"
    );
    let unbounded = fleet.mco(&["events", "--table"]);
    assert_eq!(unbounded.code, Some(64), "{unbounded:?}");

    // Forgeries: unsigned; signed by another node for web1; web1's event on db1's subject.
    let forged = tail(&fleet, &["--type", "service.*", "--for", "4", "-j"]);
    std::thread::sleep(Duration::from_millis(1500));
    let event = |identity: &str| Event {
        id: mco_spec::message::new_request_id(),
        kind: "service.state_changed".into(),
        identity: identity.into(),
        collective: "mco".into(),
        time: mco_spec::message::now_millis(),
        severity: Severity::Info,
        data: json!({"service": SERVICE, "state": "stopped"}),
    };
    let intruder = crate::raw::credentials(&fleet, "server", "intruder", &[]);
    // db1's own key and token, as db1 holds them.
    let (key, token) = fleet.keys.issued("server", "db1");
    let db1 = mco_keys::read_credentials(&key, &token).unwrap();
    let unsigned = EventEnvelope::unsigned(&event("web1"))
        .unwrap()
        .to_bytes()
        .unwrap();
    let impostor = EventEnvelope::signed(&event("web1"), &intruder)
        .unwrap()
        .to_bytes()
        .unwrap();
    let misplaced = EventEnvelope::signed(&event("db1"), &db1)
        .unwrap()
        .to_bytes()
        .unwrap();
    let subject = mco_spec::subjects::event("mco", "service.state_changed", "web1");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        for payload in [unsigned, impostor, misplaced] {
            nats.publish(subject.clone(), payload.into()).await.unwrap();
        }
        nats.flush().await.unwrap();
    });
    let (code, out, err) = finish(forged, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "", "a forged event was shown: {err}");
    assert_eq!(err.matches("dropped forged event").count(), 3, "{err}");
    assert!(err.contains("3 event(s) dropped"), "{err}");

    // A tool on the node says an event through mcod, signed as the node; it may not say
    // mcod's own.
    let config = fleet.nodes[0].config_path().display().to_string();
    let socket = fleet.nodes[0].dir().join("state/events.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", socket.display());
    let said = mco_testsupport::mcod(
        &[
            "-c",
            &config,
            "event",
            "emit",
            "check.disk_full",
            "mount=/",
            "--data",
            r#"{"used": 97}"#,
            "--severity",
            "warning",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(said.code, Some(0), "{said:?}");
    let refused = mco_testsupport::mcod(
        &["-c", &config, "event", "emit", "node.stopping"],
        Duration::from_secs(10),
    );
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("node.* events are mcod's own"),
        "{refused:?}"
    );
    let local = fleet.mco(&[
        "events", "--since", "1m", "--type", "check.*", "--count", "1", "--for", "10", "-j",
    ]);
    let local = lines(&local.stdout);
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(local[0]["identity"], fleet.nodes[0].identity());
    assert_eq!(local[0]["severity"], "warning");
    assert_eq!(local[0]["data"], json!({"mount": "/", "used": 97}));
    // A node's data cannot send escape sequences to the operator's terminal.
    let hostile = mco_testsupport::mcod(
        &[
            "-c",
            &config,
            "event",
            "emit",
            "check.hostile",
            "msg=\u{1b}]0;pwned\u{7}\u{1b}[2J",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(hostile.code, Some(0), "{hostile:?}");
    let shown = fleet.mco(&[
        "events",
        "--since",
        "1m",
        "--type",
        "check.hostile",
        "--count",
        "1",
        "--for",
        "10",
    ]);
    assert!(
        shown.stdout.contains("msg=\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"),
        "{shown:?}"
    );
    assert!(!shown.stdout.contains('\u{1b}'), "{shown:?}");

    // Stopping says so.
    let mut fleet = fleet;
    let stopping = tail(
        &fleet,
        &[
            "--type",
            "node.stopping",
            "--count",
            "1",
            "--for",
            "30",
            "-j",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(fleet
        .node("db1")
        .terminate(Duration::from_secs(10))
        .is_some());
    let (code, out, err) = finish(stopping, Duration::from_secs(40));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines(&out)[0]["identity"], "db1", "{out}");
}

/// The seed's example: when the service starts on a `roles::frontend_web` node, run Puppet
/// on every `roles::frontend_lb` node through mco. Runs once for the one event that matches,
/// not for the same change on another class of node nor for a stop; Puppet runs on exactly
/// the load-balancer nodes.
#[test]
fn a_callback_runs_puppet_on_the_load_balancers_once_per_event() {
    mco_testsupport::require_program("puppet", "apt-get install puppet");
    let init = InitDir::new();
    let service = format!(
        "[agents.service]\nprovider = \"sysv\"\ninit_dir = {:?}\n",
        init.path().display().to_string()
    );
    let puppets: Vec<(String, crate::agents_puppet::PuppetDirs)> = ["lb1", "lb2", "db1"]
        .iter()
        .map(|id| (id.to_string(), crate::agents_puppet::PuppetDirs::new()))
        .collect();
    let puppet_config = |dirs: &crate::agents_puppet::PuppetDirs| {
        let args: Vec<String> = dirs.args().iter().map(|a| format!("{a:?}")).collect();
        format!(
            "[agents.puppet]\nrun_mode = \"apply\"\nmanifest = {:?}\nargs = [{}]\n",
            dirs.path("site.pp").display().to_string(),
            args.join(", ")
        )
    };
    let mut specs = Vec::new();
    for id in ["web1", "web2"] {
        let mut spec = NodeSpec::new(id, json!({}), &["roles::frontend_web"]);
        spec.extra_config = service.clone();
        specs.push(spec);
    }
    for (id, dirs) in &puppets {
        let class = if id == "db1" {
            "roles::db"
        } else {
            "roles::frontend_lb"
        };
        let mut spec = NodeSpec::new(id, json!({}), &[class]);
        // db1 runs the service too: the same change on a node of another class.
        spec.extra_config = format!("{}{service}", puppet_config(dirs));
        specs.push(spec);
    }
    let fleet = Fleet::start(specs);
    let callback = format!(
        "{} rpc puppet runonce -C roles::frontend_lb -j",
        mco_testsupport::bin_path("mco").display()
    );

    let watch = tail(
        &fleet,
        &[
            "--on",
            "service.state_changed",
            "--where",
            &format!("service={SERVICE}"),
            "--where",
            "state=running",
            "-C",
            "roles::frontend_web",
            "--run",
            &callback,
            "--count",
            "1",
            "--for",
            "90",
            "-j",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    // Neither of these is the event the callback is for.
    let other = fleet.mco(&["service", SERVICE, "restart", "-I", "db1"]);
    assert_eq!(other.code, Some(0), "{other:?}");
    let stop = fleet.mco(&["service", SERVICE, "stop", "-I", "web2"]);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    // This one is.
    let start = fleet.mco(&["service", SERVICE, "start", "-I", "web1"]);
    assert_eq!(start.code, Some(0), "{start:?}");
    let (code, out, err) = finish(watch, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    let shown = lines(&out);
    assert_eq!(shown.len(), 1, "{out}\n{err}");
    assert_eq!(shown[0]["identity"], "web1");
    assert_eq!(shown[0]["data"]["state"], "running");
    assert!(
        err.contains("callback for service.state_changed from web1: exit 0"),
        "{err}"
    );

    let runonce = |id: &str| {
        fleet
            .nodes
            .iter()
            .find(|n| n.identity() == id)
            .unwrap()
            .audit()
            .iter()
            .filter(|a| {
                a["agent"] == "puppet" && a["action"] == "runonce" && a["decision"] == "accepted"
            })
            .count()
    };
    for (id, want) in [("lb1", 1), ("lb2", 1), ("db1", 0), ("web1", 0), ("web2", 0)] {
        assert_eq!(runonce(id), want, "{id}: {err}");
    }
    // And Puppet really ran there: the default manifest writes its file.
    for (id, dirs) in &puppets {
        let managed = dirs.path("managed.txt");
        let deadline = Instant::now() + Duration::from_secs(60);
        while id != "db1" && !managed.exists() {
            assert!(Instant::now() < deadline, "{id}: Puppet did not run");
            std::thread::sleep(Duration::from_millis(200));
        }
        if id == "db1" {
            assert!(!managed.exists(), "db1 ran Puppet");
        }
    }
}
