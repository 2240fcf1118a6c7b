//! Network partitions: a real cut of a veth link to a network namespace ([`Netns`]), where
//! packets are lost and nobody is told, unlike a killed process. A node cut off keeps
//! running and, once the link is back, runs the requests queued for it within their TTL and
//! none after; a client cut off mid-call reports the silent nodes and exits with its code at
//! its timeout.
//!
//! Not for: processes that die or restart (`restarts.rs`, `direct.rs`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use mco_testsupport::{bin_path, finish, Fleet, Mcod, NatsServer, Netns};

use crate::direct::{agents_dir, decisions, runs, send_no_wait, tally_node};
use crate::wait_until;

/// A fleet whose broker the namespace can reach, with the tally agent's DDL for the client
/// and no node yet.
fn fleet_for(ns: &Netns) -> Fleet {
    // The namespace reaches the host only through its veth link.
    assert!(!ns.host_ip().starts_with("127."));
    Fleet::start_on(
        NatsServer::start_listening_on_all_addresses(),
        Vec::new(),
        &format!("ddl_dirs = [{:?}]", agents_dir().display().to_string()),
    )
}

#[test]
fn a_node_cut_off_runs_what_was_queued_within_its_ttl_once_the_link_returns() {
    let ns = Netns::create();
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = fleet_for(&ns);
    let mut spec = tally_node("n1", tmp.path());
    spec.command_prefix = ns.prefix();
    let node = Mcod::start(spec, &fleet.nats.url_at(ns.host_ip()), Some(&fleet.keys));
    fleet.nodes.push(node);
    fleet.wait_for_all(Duration::from_secs(15));

    ns.cut();
    // Sending returns once the broker has queued them; the node hears nothing.
    let long = send_no_wait(&fleet, &["tally", "run", "-I", "n1", "--ttl", "120"]);
    let short = send_no_wait(&fleet, &["tally", "run", "-I", "n1", "--ttl", "2"]);
    std::thread::sleep(Duration::from_secs(5));
    assert!(runs(tmp.path(), "n1").is_empty(), "ran through a cut link");
    assert!(fleet.node("n1").is_running(), "{}", fleet.node("n1").log());

    ns.restore();
    let restored = Instant::now();
    wait_until(
        "the long-TTL request to run after the link returned",
        Duration::from_secs(60),
        || runs(tmp.path(), "n1").contains(&long),
    );
    let back = restored.elapsed();
    let node = fleet.node("n1");
    wait_until(
        "the expired request to be refused",
        Duration::from_secs(30),
        || !decisions(node, &short).is_empty(),
    );
    let (decision, reason) = &decisions(node, &short)[0];
    assert_eq!(decision, "rejected", "{reason}");
    assert!(reason.contains("expired"), "{reason}");
    // Once each: nothing runs twice when a link comes back.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(runs(tmp.path(), "n1"), vec![long.clone()]);
    // And the node answers calls again.
    let after = fleet.mco(&["rpc", "tally", "run", "-I", "n1", "-t", "10", "-j"]);
    assert_eq!(after.code, Some(0), "{after:?}");
    // The cut was shorter than any ping timeout: TCP retransmits, and the same connection
    // carries on, with no reconnect.
    let log = fleet.node("n1").log();
    eprintln!(
        "the cut-off node ran its queued request {back:?} after the link returned (reconnected: {})",
        log.contains("disconnected from the broker")
    );
}

#[test]
fn a_client_cut_off_mid_call_reports_the_silent_nodes_and_exits_at_its_timeout() {
    let ns = Netns::create();
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = fleet_for(&ns);
    let node = Mcod::start(
        tally_node("c1", tmp.path()),
        &fleet.nats.url(),
        Some(&fleet.keys),
    );
    fleet.nodes.push(node);
    fleet.wait_for_all(Duration::from_secs(15));

    // mco in the namespace, through the link; the action answers in 2 s, well within 5 s.
    let mut command = ns.command(bin_path("mco"));
    command
        .args(["rpc", "tally", "run", "seconds=2", "-I", "c1", "-t", "5"])
        .args(["--broker", &fleet.nats.url_at(ns.host_ip())])
        .env("MCO_CONFIG", fleet.client_config())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = command.spawn().unwrap();
    wait_until("the action to start", Duration::from_secs(10), || {
        runs(tmp.path(), "c1").len() == 1
    });
    ns.cut();
    let run = finish(child, started, Duration::from_secs(30));
    // Named with -I and nobody answered: 4, at the timeout.
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(
        run.elapsed < Duration::from_secs(5) + crate::restarts::MARGIN,
        "{run:?}"
    );
    assert!(run.stdout.contains("No response from:"), "{run:?}");
    assert!(run.stdout.contains("c1"), "{run:?}");
    // The node did run it: the reply was lost on the way, not the request.
    assert_eq!(runs(tmp.path(), "c1").len(), 1);
}
