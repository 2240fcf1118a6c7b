//! Clock trouble, with real clocks set off by libfaketime: a node 10 minutes ahead and one 10
//! minutes behind refuse requests with a warning in their log, a `clockskew` count in
//! `daemon_stats` and, to the caller, a refusal naming the difference, which `mco ping` and
//! `mco rpc` turn into a line naming the nodes; healthy nodes keep answering. A client whose
//! own clock is off is refused by healthy nodes the same way.
//!
//! Not for: the rule itself (`pipeline::timeliness`, unit-tested) or refusals of other kinds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mco_testsupport::{finish, mco_command, Fleet, Mcod, NodeSpec, Run};
use serde_json::json;

use crate::attacks::daemon_stats;

const SKEW_WARNING: &str = "their clocks differ from this machine's by more than they allow";

/// Debian's libfaketime, which `LD_PRELOAD` puts between a process and the clock; the test
/// fails saying how to install it when it is missing.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("libfaketime is needed by this test and was not found: apt-get install faketime (or run scripts/install-deps.sh)")
    })
}

/// The environment that runs a process with its clock `offset` off (`+10m`, `-10m`).
/// Monotonic time stays real, so tokio's timers and the broker's pings behave.
fn faketime(offset: &str) -> [(String, String); 3] {
    [
        ("LD_PRELOAD".into(), libfaketime().display().to_string()),
        ("FAKETIME".into(), offset.into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

fn spec(identity: &str) -> NodeSpec {
    NodeSpec::new(identity, json!({"country": "uk"}), &[])
}

fn skewed(identity: &str, offset: &str) -> NodeSpec {
    faketime(offset)
        .iter()
        .fold(spec(identity), |spec, (k, v)| spec.env(k, v))
}

/// Runs `mco` with the client configuration `config` and `env` in its environment.
fn mco_with(config: &Path, env: &[(String, String)], args: &[&str]) -> Run {
    let started = Instant::now();
    let child = mco_command(config, args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mco: {e}"));
    finish(child, started, Duration::from_secs(30))
}

/// Listed `mco ping` senders, from its output lines.
fn pinged(run: &Run) -> Vec<&str> {
    let mut nodes: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("time="))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn nodes_whose_clocks_are_off_refuse_with_the_reason_and_are_named() {
    libfaketime();
    let mut fleet = Fleet::start(vec![spec("ok1"), spec("ok2")]);
    // The client's token becomes valid when it is issued; the node 10 minutes behind would
    // read it as not yet valid (an unverified request, which gets no answer), as a real
    // fleet's year-long tokens never are. Issued again in place, valid since an hour ago.
    let (key, token) = fleet.client_credentials();
    for file in [&key, &token] {
        std::fs::remove_file(file).unwrap();
    }
    fleet.keys.issue("client", "e2e", &["--starts-in", "-3600"]);
    let broker = fleet.nats.url();
    for (identity, offset) in [("ahead", "+10m"), ("behind", "-10m")] {
        let node = Mcod::start(skewed(identity, offset), &broker, Some(&fleet.keys));
        fleet.nodes.push(node);
    }
    let refused = format!("2 nodes refused: {SKEW_WARNING}: ahead, behind");

    // mco ping: the healthy nodes answer; the others are named with the reason.
    let mut ping = fleet.mco(&["ping", "--dt", "1"]);
    crate::wait_until(
        "the skewed nodes to refuse mco ping",
        Duration::from_secs(20),
        || {
            ping = fleet.mco(&["ping", "--dt", "1"]);
            ping.stderr.contains(&refused)
        },
    );
    assert_eq!(pinged(&ping), ["ok1", "ok2"], "{ping:?}");
    assert_eq!(ping.code, Some(0), "{ping:?}");

    // mco rpc, as configured (discovery, then direct requests): the healthy nodes answer,
    // the refusals are named, and the exit code says not everything went well.
    let rpc = fleet.mco(&["rpc", "rpcutil", "ping"]);
    assert_eq!(rpc.code, Some(2), "{rpc:?}");
    assert!(
        rpc.stdout.contains("Finished processing 2 / 2 hosts"),
        "{rpc:?}"
    );
    assert!(rpc.stderr.contains(&refused), "{rpc:?}");

    // By broadcast each refusal is that node's failure, with the node's reason.
    let config = fleet.client_config().with_file_name("broadcast.toml");
    let text = std::fs::read_to_string(fleet.client_config()).unwrap();
    std::fs::write(
        &config,
        format!("{text}\ndirect_addressing_threshold = 0\n"),
    )
    .unwrap();
    // A broadcast call ends once the nodes discovery found have answered; the refusals of
    // the skewed nodes (which discovery names but does not count) race with that end, so
    // the call is repeated until one has heard both.
    let mut replies = serde_json::Value::Null;
    for _ in 0..10 {
        let json = mco_with(&config, &[], &["rpc", "rpcutil", "ping", "-j"]);
        assert_eq!(json.code, Some(2), "{json:?}");
        assert!(json.stderr.contains(&refused), "{json:?}");
        replies = json.json();
        let senders: Vec<&str> = replies
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["sender"].as_str()).collect())
            .unwrap_or_default();
        if senders.contains(&"ahead") && senders.contains(&"behind") {
            break;
        }
    }
    let by_node = |name: &str| {
        replies
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["sender"] == name)
            .unwrap_or_else(|| panic!("no reply from {name}: {replies}"))
            .clone()
    };
    for name in ["ok1", "ok2"] {
        assert_eq!(by_node(name)["statuscode"], 0, "{replies}");
    }
    for (name, way, sign) in [("ahead", "ahead of", 1), ("behind", "behind", -1)] {
        let reply = by_node(name);
        assert_eq!(reply["statuscode"], 1, "{reply}");
        let message = reply["statusmsg"].as_str().unwrap();
        assert!(
            message.contains(&format!("s {way} the request's time"))
                && message.contains("clock_skew_seconds (30 s)"),
            "{message}"
        );
        let offset = reply["data"]["clock_offset_seconds"].as_i64().unwrap() * sign;
        assert!((590..=610).contains(&offset), "{reply}");
    }
    let human = mco_with(&config, &[], &["rpc", "rpcutil", "ping"]);
    assert!(
        human.stdout.contains("this node's clock is") && !human.stdout.contains("Unexpected"),
        "{human:?}"
    );

    // The node's log says why, as a warning naming the difference and the setting.
    let log = fleet.node("ahead").log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("s ahead of the request's time")
            && l.contains("clock_skew_seconds (30 s)")),
        "{log}"
    );

    // A client whose own clock is off: healthy nodes refuse it and count it; from there,
    // the node that is just as far ahead is the healthy one.
    let before = daemon_stats(&fleet, "ok1")["clockskew"].as_u64().unwrap();
    assert_eq!(before, 0);
    let ahead = faketime("+10m");
    let ahead_client = mco_with(&fleet.client_config(), &ahead, &["ping", "--dt", "1"]);
    assert_eq!(pinged(&ahead_client), ["ahead"], "{ahead_client:?}");
    assert!(
        ahead_client.stderr.contains(&format!(
            "3 nodes refused: {SKEW_WARNING}: behind, ok1, ok2"
        )),
        "{ahead_client:?}"
    );
    let direct = mco_with(
        &fleet.client_config(),
        &ahead,
        &["rpc", "rpcutil", "ping", "-I", "ok1", "-j"],
    );
    assert_eq!(direct.code, Some(2), "{direct:?}");
    assert!(
        direct.json()[0]["statusmsg"]
            .as_str()
            .is_some_and(|m| m.contains("s behind the request's time")),
        "{direct:?}"
    );
    assert!(direct.stderr.contains("1 node refused"), "{direct:?}");
    let stats = daemon_stats(&fleet, "ok1");
    assert_eq!(stats["clockskew"], 2, "{stats}");
    assert_eq!(stats["ttlexpired"], 0, "{stats}");
}
