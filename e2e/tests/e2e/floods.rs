//! Floods and slow consumers: a thousand requests in flight to one node are each answered or
//! refused with a reason, never lost; a saturated slow agent does not stop the node answering
//! `rpcutil ping`; a client that stops reading its replies hurts neither the node nor the
//! broker nor other clients. The node's memory is sampled throughout.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mco_client::{Call, Client, NodeOutcome};
use mco_testsupport::{mco_command, Fleet, Mcod, NatsServer, NodeSpec};
use serde_json::json;

/// The slow agent (`slow nap seconds=N`), kept apart from `agents/` whose agents other tests
/// list.
fn slow_agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/agents/floods")
}

/// The slow agent's bounds on the node: two naps at once, eight waiting.
const SLOW_LIMITS: &str = "[concurrency.agents.slow]\nmax_concurrent = 2\nmax_waiting = 8\n";

/// What a busy refusal of the slow agent says while it is saturated.
const BUSY: &str =
    "busy: agent slow is running 2 actions and has 8 waiting (max_concurrent 2, max_waiting 8)";

fn slow_node(id: &str, facts: serde_json::Value) -> NodeSpec {
    let mut spec = NodeSpec::new(id, facts, &[]);
    spec.extra_config = format!(
        "agent_dirs = [{:?}]\n{SLOW_LIMITS}",
        slow_agent_dir().display().to_string()
    );
    spec
}

fn client_extra() -> String {
    format!("ddl_dirs = [{:?}]", slow_agent_dir().display().to_string())
}

async fn client(fleet: &Fleet) -> Client {
    crate::signed_client(fleet, Client::builder().ddl_dirs([slow_agent_dir()])).await
}

/// Samples `node`'s resident memory every 100 ms while `work` runs; returns what `work`
/// returned and the largest sample, in KiB.
fn with_peak_rss<T>(node: &Mcod, work: impl FnOnce() -> T) -> (T, u64) {
    let done = AtomicBool::new(false);
    let peak = AtomicU64::new(node.rss_kb().unwrap_or(0));
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = node.rss_kb() {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let out = work();
        done.store(true, Ordering::Relaxed);
        out
    });
    (out, peak.load(Ordering::Relaxed))
}

/// How the calls of a flood ended, each counted once.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    /// Answered OK.
    answered: usize,
    /// Answered with a busy refusal from the node.
    busy: usize,
    /// Refused before the node: the broker would not queue it, said so.
    not_queued: usize,
    /// Answered with another status (should not happen).
    other: Vec<String>,
    /// No reply and no refusal: lost.
    lost: usize,
}

/// Sends `count` `slow nap seconds=<nap>` calls to `node` at once, each its own request, and
/// counts how each ended.
async fn flood(client: &Client, node: &str, count: usize, nap: u64) -> Tally {
    let calls = (0..count).map(|_| async {
        let call = Call::new("slow", "nap")
            .arg("seconds", nap)
            .nodes([node])
            .timeout(Duration::from_secs(20));
        match client.call(call).await {
            Ok(replies) => Some(replies.collect().await),
            Err(e) => panic!("call: {e}"),
        }
    });
    let mut tally = Tally::default();
    for result in futures::future::join_all(calls).await.into_iter().flatten() {
        if !result.stats.send_failures.is_empty() {
            tally.not_queued += 1;
            continue;
        }
        match result.by_node().get(node) {
            Some(NodeOutcome::Replied(r)) if r.statuscode.is_ok() => tally.answered += 1,
            Some(NodeOutcome::Replied(r)) if r.statusmsg.starts_with("busy: ") => tally.busy += 1,
            Some(NodeOutcome::Replied(r)) => tally.other.push(r.statusmsg.clone()),
            _ => tally.lost += 1,
        }
    }
    tally
}

fn daemon_stat(fleet: &Fleet, node: &str, counter: &str) -> u64 {
    let reply = crate::single_reply(fleet, &["rpc", "rpcutil", "daemon_stats", "-I", node, "-j"]);
    reply["data"][counter]
        .as_u64()
        .unwrap_or_else(|| panic!("{reply}"))
}

#[test]
fn a_thousand_requests_in_flight_are_each_answered_or_refused() {
    let fleet =
        Fleet::start_with_client_config(vec![slow_node("web1", json!({}))], &client_extra());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tally, peak_kb) = with_peak_rss(&fleet.nodes[0], || {
        runtime.block_on(async {
            let client = client(&fleet).await;
            flood(&client, "web1", 1000, 1).await
        })
    });
    println!("1,000 naps of 1 s at once: {tally:?}; node RSS peak {peak_kb} KiB");
    // Every request is accounted for: nothing waits in silence until its caller gives up.
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert!(tally.other.is_empty(), "{tally:?}");
    assert_eq!(
        tally.answered + tally.busy + tally.not_queued,
        1000,
        "{tally:?}"
    );
    // The slow agent ran what its slots and queue hold; the rest was refused as busy, and
    // counted so.
    assert!(tally.answered >= 10, "{tally:?}");
    assert!(tally.busy >= 900, "{tally:?}");
    assert_eq!(daemon_stat(&fleet, "web1", "busy"), tally.busy as u64);
    // The node holds a bounded number of messages (2 x 64 + its agents' queues); these are
    // about a KiB each, so 256 MiB is far above what it needs (an idle mcod uses ~15 MiB)
    // and far below what a thousand piled-up actions with their processes would cost.
    assert!(peak_kb < 256 * 1024, "node RSS peaked at {peak_kb} KiB");
}

#[test]
fn ping_answers_while_a_slow_agent_is_saturated() {
    let fleet =
        Fleet::start_with_client_config(vec![slow_node("web1", json!({}))], &client_extra());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A hundred naps of 8 s: more than the node's 64 action slots would hold.
    let saturating = runtime.spawn({
        let fleet_client = runtime.block_on(client(&fleet));
        async move { flood(&fleet_client, "web1", 100, 8).await }
    });
    crate::wait_until(
        "the slow agent to refuse requests as busy",
        Duration::from_secs(10),
        || daemon_stat(&fleet, "web1", "busy") > 0,
    );
    // Through the direct queue, as an operator would, within a bounded wait.
    let ping = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "web1", "-t", "5", "-j"]);
    assert_eq!(ping.code, Some(0), "{ping:?}");
    assert_eq!(ping.senders(), ["web1"], "{ping:?}");
    // A broadcast too.
    let broadcast = fleet.mco(&["ping", "-t", "5"]);
    assert!(broadcast.stdout.contains("web1"), "{broadcast:?}");
    // A further nap is refused at once, with the reason.
    let refused = fleet.mco(&["rpc", "slow", "nap", "seconds=1", "-I", "web1", "-j"]);
    let json = refused.json();
    assert_eq!(json[0]["statuscode"], 1, "aborted: {refused:?}");
    assert_eq!(json[0]["statusmsg"], BUSY, "{refused:?}");
    // Of the hundred, those that got a slot within half the agent's timeout (10 s) ran; the
    // rest were refused, none lost.
    let tally = runtime.block_on(saturating).unwrap();
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert!(tally.answered >= 2, "{tally:?}");
    assert_eq!(tally.answered + tally.busy, 100, "{tally:?}");
}

#[test]
fn a_client_that_stops_reading_hurts_neither_node_nor_broker_nor_others() {
    // A small outbound buffer per client and a short write deadline, so the broker cuts a
    // stuck reader within seconds. Until it does, it slows the publishers whose messages the
    // reader should get (with nats-server's default 10 s deadline, other clients' discovery
    // then finds nothing for up to 10 s): a broker setting, which RELIABILITY.md names.
    let nats = NatsServer::start_with_config("max_pending: 2MB\nwrite_deadline: \"2s\"\n");
    // Facts of ~50 KiB make every inventory reply that large.
    let facts = json!({"padding": "x".repeat(50 * 1024)});
    let fleet = Fleet::start_on(
        nats,
        vec![slow_node("web1", facts.clone()), slow_node("web2", facts)],
        &client_extra(),
    );
    // A subscriber to every subject that never reads its socket: a stuck pipe at the broker.
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", fleet.nats.port())).unwrap();
    stuck
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nPING\r\n")
        .unwrap();
    // And an `mco` whose output goes to a pipe nobody reads.
    let mut blocked = mco_command(
        &fleet.client_config(),
        &["rpc", "rpcutil", "inventory", "-t", "20"],
    )
    .spawn()
    .unwrap();
    let before_kb = fleet.nodes[0].rss_kb().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (complete, peak_kb) = with_peak_rss(&fleet.nodes[0], || {
        runtime.block_on(async {
            let client = client(&fleet).await;
            let mut complete = 0;
            // 200 broadcasts answered by two nodes with 50 KiB each: 20 MiB for the stuck
            // reader, ten times what the broker holds for it.
            for _ in 0..20 {
                let calls = (0..10).map(|_| async {
                    let result = client
                        .call(
                            Call::new("rpcutil", "inventory")
                                .timeout(Duration::from_secs(10))
                                .discovery_timeout(Duration::from_secs(5)),
                        )
                        .await
                        .unwrap()
                        .collect()
                        .await;
                    result.stats.ok
                });
                complete += futures::future::join_all(calls)
                    .await
                    .into_iter()
                    .filter(|ok| *ok == 2)
                    .count();
            }
            complete
        })
    });
    println!("node RSS {before_kb} KiB before, peak {peak_kb} KiB while 200 inventories went to a stuck reader");
    // Every call of the other client got both replies.
    assert_eq!(complete, 200);
    // The broker cut the stuck reader, not the nodes, and is still there.
    crate::wait_until(
        "the broker to cut the stuck reader",
        Duration::from_secs(10),
        || fleet.nats.log().contains("Slow Consumer Detected"),
    );
    let ping = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "web1", "-I", "web2", "-j"]);
    assert_eq!(ping.senders(), ["web1", "web2"], "{ping:?}");
    // The node does not keep what it could not deliver: a bounded rise at most.
    assert!(
        peak_kb < before_kb + 64 * 1024,
        "node RSS went from {before_kb} KiB to {peak_kb} KiB"
    );
    let _ = blocked.kill();
    let _ = blocked.wait();
}
