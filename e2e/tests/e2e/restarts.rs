//! Restarts and a broker that goes away: a call in flight when the broker dies ends at its
//! timeout, `mcod` stopped mid-request (SIGTERM) does not run the request twice, SIGTERM
//! with the broker unreachable exits within the grace period, and clients interrupted
//! mid-call leave nothing on the broker that grows.
//!
//! Not for: queued requests across a daemon kill or a broker restart (`direct.rs`), or
//! network cuts (`partitions.rs`).

use std::time::{Duration, Instant};

use mco_testsupport::{finish, mco_command, Fleet, NatsServer, NodeSpec};
use serde_json::{json, Value};

use crate::direct::{runs, stop_mid_action, tally_fleet, tally_node, when_stderr_says};
use crate::wait_until;

/// Room for process start-up and exit on a loaded two-core machine, beyond a bound the code
/// promises.
pub(crate) const MARGIN: Duration = Duration::from_secs(3);

#[test]
fn a_call_in_flight_when_the_broker_dies_ends_at_its_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = tally_fleet(&["f1"], tmp.path());
    let started = Instant::now();
    let child = mco_command(
        &fleet.client_config(),
        &["rpc", "tally", "run", "seconds=10", "-I", "f1", "-t", "4"],
    )
    .spawn()
    .unwrap();
    wait_until("the action to start", Duration::from_secs(10), || {
        runs(tmp.path(), "f1").len() == 1
    });
    fleet.nats.stop();
    let run = finish(child, started, Duration::from_secs(30));
    // Named with -I and nobody answered: 4, at the call's timeout, not when the broker returns.
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.elapsed < Duration::from_secs(4) + MARGIN, "{run:?}");
    assert!(run.stdout.contains("No response from:"), "{run:?}");
    assert!(run.stdout.contains("f1"), "{run:?}");
}

#[test]
fn a_slice_sent_after_the_broker_died_ends_the_call_at_its_timeout() {
    // Without JetStream a slice is published and flushed; async-nats holds the flush until
    // it reconnects, which, with the broker gone, was never.
    let mut fleet = Fleet::start_on(
        NatsServer::start_with(false),
        vec![
            NodeSpec::new("s1", json!({}), &[]),
            NodeSpec::new("s2", json!({}), &[]),
        ],
        "",
    );
    let started = Instant::now();
    let child = mco_command(
        &fleet.client_config(),
        &[
            "rpc",
            "rpcutil",
            "ping",
            "-I",
            "s1",
            "-I",
            "s2",
            "--batch",
            "1",
            "--batch-sleep",
            "2",
            "-t",
            "3",
        ],
    )
    .spawn()
    .unwrap();
    let mut stopped = None;
    let (run, stderr) = when_stderr_says(child, started, "Sleeping", || {
        fleet.nats.stop();
        stopped = Some(Instant::now());
    });
    let stopped = stopped.unwrap();
    // The sleep, then at most the slice's timeout to send it.
    assert!(
        stopped.elapsed() < Duration::from_secs(2 + 3) + MARGIN,
        "{run:?} {stderr}"
    );
    // s1 answered, s2 was never reached: some nodes did not answer, 2.
    assert_eq!(run.code, Some(2), "{run:?} {stderr}");
    let stopped_line: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mco: warning: stopped:"))
        .collect();
    assert_eq!(stopped_line.len(), 1, "{stderr}");
    assert!(
        stopped_line[0].contains("the connection to the broker is lost"),
        "{stderr}"
    );
    assert!(run.stdout.contains("Not contacted"), "{run:?}");
}

#[test]
fn a_request_is_never_run_twice_across_a_sigterm_mid_action() {
    // The action takes longer than the grace period (5 s in tests): mcod exits with it
    // unfinished, so the request is not acknowledged and JetStream hands it out again.
    stop_mid_action("t1", |node| {
        let status = node
            .terminate(Duration::from_secs(5) + MARGIN)
            .expect("mcod did not exit within its grace period after SIGTERM");
        assert_eq!(status.code(), Some(0), "{}", node.log());
    });
}

#[test]
fn sigterm_with_the_broker_unreachable_exits_within_the_grace_period() {
    let mut fleet = Fleet::start(vec![NodeSpec::new("u1", json!({}), &[])]);
    fleet.nats.stop();
    wait_until(
        "mcod to notice the broker is gone",
        Duration::from_secs(10),
        || {
            fleet.nodes[0]
                .log()
                .contains("disconnected from the broker")
        },
    );
    let started = Instant::now();
    // The nodes of the tests have `shutdown_grace_seconds = 5`.
    let status = fleet.nodes[0].terminate(Duration::from_secs(5) + MARGIN);
    let log = fleet.nodes[0].log();
    assert!(
        status.is_some(),
        "mcod still ran {:?} after SIGTERM with the broker gone:\n{log}",
        started.elapsed()
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(log.contains("mcod stopped"), "{log}");
}

/// What the broker holds for its clients, from its monitoring port: connections,
/// subscriptions, JetStream streams and consumers.
fn broker_holdings(runtime: &tokio::runtime::Runtime, monitor: u16) -> [u64; 4] {
    let get = |path: &str| -> Value {
        runtime.block_on(async {
            reqwest::get(format!("http://127.0.0.1:{monitor}{path}"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    };
    let number =
        |v: &Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"));
    let jsz = get("/jsz");
    [
        number(&get("/connz"), "num_connections"),
        number(&get("/subsz"), "num_subscriptions"),
        number(&jsz, "streams"),
        number(&jsz, "consumers"),
    ]
}

#[test]
fn clients_interrupted_mid_call_leave_nothing_behind_on_the_broker() {
    let monitor = mco_testsupport::free_port();
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_on(
        NatsServer::start_with_args(true, &["-m".into(), monitor.to_string()]),
        vec![tally_node("i1", tmp.path())],
        &format!(
            "ddl_dirs = [{:?}]",
            crate::direct::agents_dir().display().to_string()
        ),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // One call first, so the stream and the node's consumer exist before counting.
    assert_eq!(
        fleet.mco(&["rpc", "tally", "run", "-I", "i1"]).code,
        Some(0)
    );
    let before = broker_holdings(&runtime, monitor);
    const CALLS: usize = 12;
    for i in 0..CALLS {
        // Direct calls mid-action, and broadcast ones mid-discovery or mid-reply.
        let args: &[&str] = if i % 3 == 2 {
            &["rpc", "rpcutil", "ping", "--dt", "3"]
        } else {
            &["rpc", "tally", "run", "seconds=1", "-I", "i1", "-t", "10"]
        };
        let mut child = mco_command(&fleet.client_config(), args).spawn().unwrap();
        if i % 3 == 2 {
            std::thread::sleep(Duration::from_millis(700));
        } else {
            wait_until("the action to start", Duration::from_secs(10), || {
                runs(tmp.path(), "i1").len() >= 2 + i - i / 3
            });
        }
        let signal = if i % 2 == 0 {
            libc::SIGINT
        } else {
            libc::SIGKILL
        };
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let _ = child.wait();
    }
    // A client that stayed would have connected by now: the counts must come back to
    // where they were, not merely pass through it.
    std::thread::sleep(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = broker_holdings(&runtime, monitor);
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = broker_holdings(&runtime, monitor);
    }
    assert_eq!(
        after, before,
        "[connections, subscriptions, streams, consumers] after {CALLS} interrupted calls"
    );
    eprintln!("[connections, subscriptions, streams, consumers] before and after {CALLS} interrupted calls: {after:?}");
}
