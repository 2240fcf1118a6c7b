//! Events through real mcod and mco: a service restarted through mco says
//! `service.state_changed` (and `agent.action`) the moment it happens, to a tail that was
//! already running; `mco events --since` replays the history kept in the broker's stream
//! for a tail started afterwards; `-W` chooses nodes; a node's start and stop are events;
//! forged events (unsigned, signed by another node, on another node's subject) are dropped
//! and counted, never shown.

use std::io::Read;
use std::process::{Child, Stdio};
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What a background `mco events` printed once it ended (at its --count or --for).
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mco events did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
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
