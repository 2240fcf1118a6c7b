//! Bad input and failures: a dead broker, a broker restart, malformed messages, invalid
//! configuration, SIGTERM, facts changing under a running daemon.

use std::time::{Duration, Instant};

use mco_testsupport::{bin_path, free_port, mco, Fleet, NodeSpec};
use serde_json::json;

use crate::five_nodes;

#[test]
fn a_dead_broker_is_one_line_and_exit_1_quickly() {
    let dir = std::env::temp_dir().join(format!("mco-e2e-dead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("client.toml");
    std::fs::write(
        &config,
        format!(
            "brokers = [\"nats://127.0.0.1:{}\"]\nconnect_timeout = 2\ninsecure = true\n",
            free_port()
        ),
    )
    .unwrap();
    let run = mco(&config, &["ping"], Duration::from_secs(20));
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("mco: cannot connect to the broker at nats://127.0.0.1:"),
        "{}",
        run.stderr
    );
    // Within the connect timeout, with room for process start-up on a loaded machine.
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_fleet_survives_a_broker_restart() {
    let mut fleet = Fleet::start(vec![
        NodeSpec::new("a1", json!({"n": 1}), &[]),
        NodeSpec::new("a2", json!({"n": 2}), &[]),
    ]);
    fleet.nats.stop();
    std::thread::sleep(Duration::from_millis(500));
    fleet.nats.start_again();
    let started = Instant::now();
    // Daemons reconnect by themselves (backoff capped at 2 s): no restart of mcod.
    fleet.wait_for_all(Duration::from_secs(15));
    assert!(fleet.nodes.iter_mut().all(|n| n.is_running()));
    eprintln!(
        "fleet answered again {:?} after the broker came back",
        started.elapsed()
    );
}

#[test]
fn malformed_messages_are_counted_and_ignored() {
    let fleet = Fleet::start(vec![NodeSpec::new("n1", json!({}), &[])]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        for junk in [
            &b"{nope"[..],
            b"",
            b"[1,2]",
            br#"{"protocol":"mco.request.v1","request":{"id":"x"}}"#,
            &[0xff, 0xfe, 0x00],
        ] {
            nats.publish("mco.broadcast.agent.rpcutil", junk.to_vec().into())
                .await
                .unwrap();
            nats.publish("mco.node.n1", junk.to_vec().into())
                .await
                .unwrap();
        }
        // Nearly NATS's 1 MiB limit: a big but well-formed-looking message.
        nats.publish("mco.node.n1", vec![b'{'; 1_000_000].into())
            .await
            .unwrap();
        nats.flush().await.unwrap();
    });
    // The daemon handles each message in its own task, so the stats request can overtake the
    // last junk messages: ask until all eleven are counted, then check none was counted twice.
    let mut data = serde_json::Value::Null;
    crate::wait_until("11 unvalidated messages", Duration::from_secs(20), || {
        let stats = fleet.mco(&["rpc", "rpcutil", "daemon_stats", "-I", "n1", "-j"]);
        assert_eq!(stats.code, Some(0), "{stats:?}");
        data = stats.json()[0]["data"].clone();
        data["unvalidated"].as_u64().unwrap_or(0) >= 11
    });
    assert_eq!(data["unvalidated"], 11, "{data}");
    assert!(
        fleet.nodes[0].log().contains("refused a message of"),
        "{}",
        fleet.nodes[0].log()
    );
}

#[test]
fn invalid_config_is_one_line_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("mco-e2e-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (text, needle) in [
        (
            "identity = \"x\"\nfacts_file = [\"a\"]\n",
            "unknown field `facts_file`",
        ),
        ("identity = \"bad name\"\n", "identity:"),
        (
            "identity = \"x\"\nmain_collective = \"other\"\n",
            "main_collective:",
        ),
        ("identity = \"x\"\n", "insecure: requests must be signed"),
    ] {
        let path = dir.join("mcod.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(bin_path("mcod"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    let good = dir.join("good.toml");
    std::fs::write(&good, "identity = \"x\"\ninsecure = true\n").unwrap();
    let check = std::process::Command::new(bin_path("mcod"))
        .args(["--check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let mut fleet = Fleet::start(vec![NodeSpec::new("t1", json!({}), &[])]);
    let status = fleet.nodes[0]
        .terminate(Duration::from_secs(10))
        .expect("mcod did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", fleet.nodes[0].log());
    assert!(fleet.nodes[0].log().contains("mcod stopped"));
    let none = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "t1", "-t", "1"]);
    assert_eq!(none.code, Some(4));
}

#[test]
fn facts_files_are_reloaded_when_they_change() {
    let mut fleet = five_nodes();
    assert_eq!(fleet.mco(&["find", "-F", "country=es"]).code, Some(1));
    let path = fleet.node("web2").facts_path();
    std::fs::write(&path, json!({"country": "es", "cpus": 2}).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = fleet.mco(&["find", "-F", "country=es"]);
        if found.stdout == "web2\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web2's new facts were not picked up: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
