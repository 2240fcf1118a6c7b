//! Direct addressing end to end: requests queued in JetStream for a node that is down, TTLs,
//! no double execution across a daemon kill, a broker restart losing nothing, batches and
//! their interruption, replies read by another process, and the fallback for a broker
//! without JetStream.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mco_client::{Call, Client, NodeOutcome};
use mco_testsupport::{finish, mco_command, Broker, Fleet, Mcod, NatsServer, NodeSpec};
use serde_json::{json, Value};

use crate::wait_until;

pub(crate) fn agents_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/agents")
}

/// A node with the tally agent, recording its runs in `<dir>/<id>.tally`, and a short ack wait
/// so a request held by a killed daemon comes back within seconds.
pub(crate) fn tally_node(id: &str, dir: &Path) -> NodeSpec {
    let mut spec = NodeSpec::new(
        id,
        json!({"tally_file": dir.join(format!("{id}.tally")).display().to_string()}),
        &[],
    );
    spec.extra_config = format!(
        "agent_dirs = [{:?}]\n[direct_queue]\nack_wait_seconds = 3\n",
        agents_dir().display().to_string()
    );
    spec
}

pub(crate) fn tally_fleet(ids: &[&str], dir: &Path) -> Fleet {
    Fleet::start_with_client_config(
        ids.iter().map(|id| tally_node(id, dir)).collect(),
        &format!("ddl_dirs = [{:?}]", agents_dir().display().to_string()),
    )
}

pub(crate) fn runs(dir: &Path, id: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{id}.tally")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The audit decisions a node recorded for `request_id`, as (decision, reason).
pub(crate) fn decisions(node: &Mcod, request_id: &str) -> Vec<(String, String)> {
    node.audit()
        .iter()
        .filter(|a| a["request_id"] == request_id)
        .map(|a| {
            (
                a["decision"].as_str().unwrap_or("").to_string(),
                a["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `mco rpc ... --nr`: the request id it prints.
pub(crate) fn send_no_wait<B: Broker>(fleet: &Fleet<B>, args: &[&str]) -> String {
    let mut all = vec!["rpc"];
    all.extend_from_slice(args);
    all.push("--nr");
    let run = fleet.mco(&all);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.stdout
        .trim()
        .strip_prefix("Request sent with id: ")
        .unwrap_or_else(|| panic!("no request id in {run:?}"))
        .to_string()
}

#[test]
fn a_queued_request_runs_when_its_node_starts_within_the_ttl_and_not_after() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = tally_fleet(&["q1", "q2"], tmp.path());
    fleet.node("q2").kill();

    // The caller hears "no response" at its own timeout...
    let waited = fleet.mco(&["rpc", "tally", "run", "-I", "q2", "--ttl", "60", "-t", "1"]);
    assert_eq!(waited.code, Some(4), "{waited:?}");
    assert!(
        waited.stdout.contains("No response from:"),
        "{}",
        waited.stdout
    );
    // ...and two more are queued: one that will still be valid, one whose TTL runs out first.
    let valid = send_no_wait(&fleet, &["tally", "run", "-I", "q2", "--ttl", "60"]);
    let expiring = send_no_wait(&fleet, &["tally", "run", "-I", "q2", "--ttl", "1"]);
    std::thread::sleep(Duration::from_secs(3));

    fleet.node("q2").start_again();
    let node = fleet.node("q2");
    wait_until(
        "the queued requests to be handled",
        Duration::from_secs(20),
        || !decisions(node, &valid).is_empty() && !decisions(node, &expiring).is_empty(),
    );
    assert_eq!(decisions(node, &valid)[0].0, "accepted");
    // Accepted is audited before the action runs; the queued call of the timed-out command
    // runs too (it was queued like the others).
    wait_until(
        "both valid requests to run",
        Duration::from_secs(20),
        || runs(tmp.path(), "q2").len() >= 2,
    );
    let (decision, reason) = &decisions(node, &expiring)[0];
    assert_eq!(decision, "rejected");
    assert!(reason.contains("expired"), "{reason}");
    let ran = runs(tmp.path(), "q2");
    assert!(ran.contains(&valid), "{ran:?}");
    assert!(!ran.contains(&expiring), "{ran:?}");
    assert_eq!(ran.len(), 2, "{ran:?}");
    // The node that was up all along got none of this.
    assert!(runs(tmp.path(), "q1").is_empty());

    let stats = fleet.mco(&["rpc", "rpcutil", "daemon_stats", "-I", "q2", "-j"]);
    assert_eq!(stats.json()[0]["data"]["ttlexpired"], 1, "{}", stats.stdout);
}

/// Sends a node an 8 s action, stops its daemon mid-action with `stop`, starts it again and
/// checks that the redelivered request is recognised as a replay and the action ran once;
/// returns the fleet, the tally directory and the request id.
pub(crate) fn stop_mid_action(
    id: &str,
    stop: impl FnOnce(&mut Mcod),
) -> (Fleet, tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = tally_fleet(&[id], tmp.path());
    let request = send_no_wait(
        &fleet,
        &["tally", "run", "seconds=8", "-I", id, "--ttl", "120"],
    );
    wait_until("the action to start", Duration::from_secs(10), || {
        runs(tmp.path(), id).contains(&request)
    });
    stop(fleet.node(id));
    fleet.node(id).start_again();
    let node = fleet.node(id);
    wait_until(
        "the redelivered request to be recognised",
        Duration::from_secs(30),
        || {
            decisions(node, &request)
                .iter()
                .any(|(d, r)| d == "rejected" && r.contains("replayed"))
        },
    );
    assert_eq!(
        runs(tmp.path(), id),
        vec![request.clone()],
        "ran more than once"
    );
    (fleet, tmp, request)
}

#[test]
fn a_request_is_never_run_twice_across_a_daemon_kill_mid_action() {
    // Killed mid-action: the request is not acknowledged, so JetStream hands it out again
    // after the ack wait, to the restarted daemon.
    let (mut fleet, tmp, id) = stop_mid_action("k1", Mcod::kill);
    let node = fleet.node("k1");
    assert_eq!(
        decisions(node, &id)
            .iter()
            .filter(|(d, _)| d == "accepted")
            .count(),
        1
    );
    // And the queue is empty: the redelivered copy was acknowledged.
    let after = fleet.mco(&["rpc", "tally", "run", "-I", "k1", "-j"]);
    assert_eq!(after.code, Some(0), "{after:?}");
    assert_eq!(runs(tmp.path(), "k1").len(), 2);
}

#[test]
fn a_broker_restart_loses_no_queued_request() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = tally_fleet(&["b1", "b2"], tmp.path());
    fleet.node("b2").kill();
    let id = send_no_wait(&fleet, &["tally", "run", "-I", "b2", "--ttl", "300"]);

    fleet.nats.stop_gracefully();
    fleet.nats.start_again();
    fleet.node("b2").start_again();
    let node = fleet.node("b2");
    wait_until(
        "the queued request after the broker restart",
        Duration::from_secs(30),
        || runs(tmp.path(), "b2").contains(&id),
    );
    assert_eq!(decisions(node, &id)[0].0, "accepted");
    // b1 reconnected by itself and answers again.
    fleet.wait_for_all(Duration::from_secs(15));
}

#[test]
fn batches_visit_every_node_in_slices_with_the_sleep_between_them() {
    let fleet = crate::five_nodes();
    let run = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "--batch",
        "2",
        "--batch-sleep",
        "1",
        "-v",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for line in [
        "Batch 1/3: sent to 2 node(s)",
        "Sleeping 1.0 s before batch 2",
        "Batch 2/3: sent to 2 node(s)",
        "Batch 3/3: sent to 1 node(s)",
        "Mode: direct requests, queued in JetStream (",
    ] {
        assert!(run.stderr.contains(line), "{line:?} not in {}", run.stderr);
    }
    assert!(
        run.stdout.contains("Finished processing 5 / 5 hosts"),
        "{}",
        run.stdout
    );
    // Each slice was accepted at least the sleep after the one before (nodes sorted by name).
    let accepted: Vec<u64> = ["db1", "db2", "web1", "web2", "web3"]
        .iter()
        .map(|id| {
            let node = fleet.nodes.iter().find(|n| n.identity() == *id).unwrap();
            node.audit()
                .iter()
                .rev()
                .find(|a| a["agent"] == "rpcutil" && a["action"] == "ping")
                .and_then(|a| a["time"].as_u64())
                .unwrap()
        })
        .collect();
    assert!(accepted[2] >= accepted[1] + 900, "{accepted:?}");
    assert!(accepted[4] >= accepted[3] + 900, "{accepted:?}");
}

/// Reads the stderr of `child` (an `mco` started at `started`) until a line starting with
/// `prefix`, then does `then` (an interrupt, a broker stop) and waits up to 30 s for it to
/// end; returns how it ended and all it wrote on stderr.
pub(crate) fn when_stderr_says(
    mut child: std::process::Child,
    started: Instant,
    prefix: &str,
    then: impl FnOnce(),
) -> (mco_testsupport::Run, String) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "mco ended early: {seen}"
        );
        seen.push_str(&line);
        if line.starts_with(prefix) {
            break;
        }
    }
    then();
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let run = finish(child, started, Duration::from_secs(30));
    (run, seen + &rest.join().unwrap())
}

#[test]
fn an_interrupt_stops_a_batched_run_before_the_next_slice() {
    let fleet = crate::five_nodes();
    let started = Instant::now();
    let child = mco_command(
        &fleet.client_config(),
        &[
            "rpc",
            "rpcutil",
            "ping",
            "--batch",
            "1",
            "--batch-sleep",
            "3",
        ],
    )
    .spawn()
    .unwrap();
    let pid = child.id();
    // Read stderr until the first slice is out, then press Ctrl-C.
    let (run, stderr) = when_stderr_says(child, started, "Sleeping", || {
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGINT);
        }
    });
    assert_eq!(run.code, Some(2), "{run:?} {stderr}");
    assert!(
        stderr.contains("Interrupted: no further batches"),
        "{stderr}"
    );
    assert!(!stderr.contains("Batch 2/5"), "{stderr}");
    assert!(
        run.stdout.contains("Finished processing 1 / 5 hosts"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Not contacted"), "{}", run.stdout);
    // Only the first node (db1) was ever asked.
    for node in &fleet.nodes {
        let pinged = node
            .audit()
            .iter()
            .any(|a| a["agent"] == "rpcutil" && a["action"] == "ping");
        assert_eq!(pinged, node.identity() == "db1", "{}", node.identity());
    }
}

#[test]
fn replies_sent_elsewhere_are_read_by_a_second_process() {
    let fleet = crate::five_nodes();
    let subject = "elsewhere.e2e";
    let id = mco_spec::message::new_request_id();
    let started = Instant::now();
    let mut listener = mco_command(
        &fleet.client_config(),
        &[
            "replies", subject, "--id", &id, "--count", "3", "-t", "20", "-j",
        ],
    )
    .spawn()
    .unwrap();
    let mut stderr = BufReader::new(listener.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("Listening for replies"), "{line}");

    let sent = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "-W",
        "country=uk",
        "--reply-to",
        subject,
        "--request-id",
        &id,
    ]);
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let printed = sent
        .stdout
        .trim()
        .strip_prefix("Request sent with id: ")
        .and_then(|rest| rest.split_once(" replies to "))
        .unwrap_or_else(|| panic!("{sent:?}"));
    assert_eq!(printed.0, id);
    assert!(
        printed.1.starts_with("mco.reply.") && printed.1.ends_with(".elsewhere.e2e"),
        "{sent:?}"
    );

    let run = finish(listener, started, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{run:?}");
    let replies: Value = serde_json::from_str(&run.stdout).unwrap();
    let mut senders: Vec<&str> = replies
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sender"].as_str().unwrap())
        .collect();
    senders.sort();
    assert_eq!(senders, ["db2", "web1", "web2"]);
    for node in &fleet.nodes {
        let asked = node.audit().iter().any(|a| a["request_id"] == id.as_str());
        assert_eq!(asked, ["db2", "web1", "web2"].contains(&node.identity()));
    }
}

#[test]
fn without_jetstream_direct_requests_use_plain_subjects_with_a_warning() {
    let fleet = Fleet::start_on(
        NatsServer::start_with(false),
        vec![
            NodeSpec::new("p1", json!({}), &[]),
            NodeSpec::new("p2", json!({}), &[]),
        ],
        "",
    );
    let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "p1", "-I", "p2", "-j"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.senders(), ["p1", "p2"]);
    assert!(
        run.stderr
            .contains("warning: direct requests are not queued"),
        "{}",
        run.stderr
    );
    assert!(
        fleet.nodes[0].log().contains("are not queued"),
        "{}",
        fleet.nodes[0].log()
    );
}

#[test]
fn the_library_names_every_node_it_was_given() {
    let fleet = crate::five_nodes();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = crate::signed_client(&fleet, Client::builder()).await;
        let result = client
            .call(
                Call::new("rpcutil", "ping")
                    .nodes(["web1", "db1", "gone.example.net"])
                    .timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap()
            .collect()
            .await;
        let by_node = result.by_node();
        assert_eq!(by_node.len(), 3);
        assert!(matches!(by_node["web1"], NodeOutcome::Replied(r) if r.statuscode.is_ok()));
        assert!(matches!(by_node["db1"], NodeOutcome::Replied(_)));
        assert_eq!(by_node["gone.example.net"], NodeOutcome::NoResponse);
        assert_eq!(result.stats.queued, Some(true));

        // Sending now and reading the replies in another task, as a web application does.
        let subject = client.reply_subject(None, "webapp.jobs").unwrap();
        let id = mco_spec::message::new_request_id();
        let mut listener = client.listen(&subject, &id).await.unwrap();
        let sent = client
            .send(
                Call::new("rpcutil", "ping")
                    .nodes(["web2", "web3"])
                    .reply_to(&subject)
                    .request_id(&id),
            )
            .await
            .unwrap();
        assert_eq!(sent.request_id, id);
        let reader = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut got = Vec::new();
            while got.len() < 2 {
                match listener.next_before(deadline).await {
                    Some(r) => got.push((r.sender, r.request_id)),
                    None => break,
                }
            }
            got.sort();
            got
        });
        let got = reader.await.unwrap();
        assert_eq!(
            got,
            [
                ("web2".to_string(), sent.request_id.clone()),
                ("web3".to_string(), sent.request_id.clone())
            ]
        );
    });
}

/// The queue limits of [`junk_for_a_node_that_is_down_leaves_the_queue_to_the_others`]: the
/// smallest total the daemon accepts (1 MiB), and ten requests per node.
const SMALL_QUEUE: &str = "[direct_queue]\nmax_bytes = 1048576\nmax_msgs_per_subject = 10\n";

/// Publishes `count` junk messages of `size` bytes to `subject` through JetStream, as anyone
/// who may publish there can; returns how many the broker queued.
async fn flood(
    js: &async_nats::jetstream::Context,
    subject: &str,
    count: usize,
    size: usize,
) -> usize {
    let junk = bytes::Bytes::from(vec![b'x'; size]);
    let mut queued = 0;
    for _ in 0..count {
        if let Ok(ack) = js.publish(subject.to_string(), junk.clone()).await {
            if ack.await.is_ok() {
                queued += 1;
            }
        }
    }
    queued
}

#[test]
fn junk_for_a_node_that_is_down_leaves_the_queue_to_the_others() {
    let spec = |id: &str| {
        let mut s = NodeSpec::new(id, json!({}), &[]);
        s.extra_config = SMALL_QUEUE.into();
        s
    };
    let mut fleet = Fleet::start(vec![spec("web1"), spec("web2")]);
    fleet.node("web2").kill();
    // 2,500 x 512 bytes for web2, which is down: more than the whole queue holds, in pieces
    // small enough to leave no room for anyone else's request.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let queued = runtime.block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        flood(
            &async_nats::jetstream::new(nats),
            "mco.node.web2",
            2500,
            512,
        )
        .await
    });
    // web1 still gets direct requests through the queue...
    let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "web1", "-j"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.senders(), ["web1"]);
    // ...because web2's share took ten and the rest was refused.
    assert_eq!(queued, 10);
    // ...and a request for web2 is refused with the reason, not lost in silence.
    let full = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "web2", "-t", "2"]);
    assert_eq!(full.code, Some(1), "{full:?}");
    assert_eq!(
        full.stderr.trim(),
        "mco: no request could be queued: web2: the direct queue for web2 is full (10 waiting)",
        "{full:?}"
    );
    // With another node in the call, web2's refusal is a line of the summary (exit code 2).
    let mixed = fleet.mco(&[
        "rpc", "rpcutil", "ping", "-I", "web1", "-I", "web2", "-t", "2",
    ]);
    assert_eq!(mixed.code, Some(2), "{mixed:?}");
    assert!(
        mixed
            .stdout
            .contains("web2: the direct queue for web2 is full (10 waiting)"),
        "{mixed:?}"
    );
    // Once web2 is back it works through its share, junk and all, and is reachable again.
    fleet.node("web2").start_again();
    crate::wait_until(
        "web2 to take direct requests again",
        Duration::from_secs(30),
        || {
            fleet
                .mco(&["rpc", "rpcutil", "ping", "-I", "web2", "-t", "2"])
                .code
                == Some(0)
        },
    );
}
