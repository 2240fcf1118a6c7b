//! A bounded soak: a fleet of real daemons and the registry service answering continuous
//! mixed requests (broadcast, direct, batched, registry-discovered) from one long-lived
//! library client, with every process's memory sampled each second. Nothing may fail, every
//! request must be accounted for, and memory must be flat once warm.
//!
//! The CI form runs `MCO_SOAK_SECONDS` (default 90) seconds; the long form is the same test
//! with a larger value (`MCO_SOAK_SECONDS=1800`, see RELIABILITY.md).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mco_client::{Call, Client, Discovery, NodeOutcome, Size};
use mco_testsupport::{rss_kb, RegistryService};

use crate::registry::{registry_config, wait_for_registry, FAST_REGISTRATION};

/// How long the soak runs: `MCO_SOAK_SECONDS`, or 90 s in CI.
fn soak_duration() -> Duration {
    Duration::from_secs(
        std::env::var("MCO_SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(90),
    )
}

/// Requests are short-lived so the replay memory reaches its steady state (ids expire as
/// fast as they come) early in the soak: what grows after that is a leak.
const TTL_SECONDS: u64 = 10;

/// How long memory may settle before it must be flat: the TTL twice over.
const WARM_UP: Duration = Duration::from_secs(2 * TTL_SECONDS);

/// How much a process's resident memory may rise between the first and the last third of
/// the soak after warm-up: allocator noise, not a per-request leak (each node takes about
/// 2,000 requests in the CI form, so a leak of 2 KiB per request shows; the long form finds
/// smaller ones).
const FLAT_KIB: u64 = 4 * 1024;

/// Per process: (time since the start, resident KiB), each second.
type Samples = BTreeMap<String, Vec<(Duration, u64)>>;

#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    answered: usize,
    failures: Vec<String>,
}

#[test]
fn a_fleet_under_continuous_mixed_load_stays_flat_and_answers_everything() {
    let duration = soak_duration();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("registry.sqlite").display().to_string();
    let fleet = crate::five_nodes_with(FAST_REGISTRATION, "");
    let config = registry_config(&fleet, tmp.path());
    let service = RegistryService::start(&config, &db, 60);
    let all = ["db1", "db2", "web1", "web2", "web3"];
    wait_for_registry(&fleet, &service, &all);

    // Memory of every daemon (and the registry service), sampled each second.
    let mut pids: Vec<(String, u32)> = fleet
        .nodes
        .iter()
        .map(|n| (n.identity().to_string(), n.pid().unwrap()))
        .collect();
    pids.push(("registry".into(), service.pid().unwrap()));
    let samples: Arc<Mutex<Samples>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let samples = samples.clone();
        let done = done.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for (name, pid) in &pids {
                    if let Some(kb) = rss_kb(*pid) {
                        let mut samples = samples.lock().unwrap();
                        samples
                            .entry(name.clone())
                            .or_default()
                            .push((started.elapsed(), kb));
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tallies = runtime.block_on(async {
        let client = crate::signed_client(&fleet, Client::builder()).await;
        let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
        let deadline = Instant::now() + duration;
        let mut round = 0usize;
        while Instant::now() < deadline {
            let target = all[round % all.len()];
            let calls: [(&str, Call, Vec<&str>); 4] = [
                ("broadcast", Call::new("rpcutil", "ping"), all.to_vec()),
                (
                    "direct",
                    Call::new("rpcutil", "ping").nodes([target]),
                    vec![target],
                ),
                (
                    "batched",
                    Call::new("rpcutil", "ping")
                        .nodes(all)
                        .batch(Size::Count(2), Duration::ZERO),
                    all.to_vec(),
                ),
                (
                    "registry",
                    Call::new("rpcutil", "ping").discovery(Discovery::Registry { url: db.clone() }),
                    all.to_vec(),
                ),
            ];
            for (kind, call, expected) in calls {
                let tally = tallies.entry(kind).or_default();
                let call = call.ttl(TTL_SECONDS).timeout(Duration::from_secs(5));
                tally.sent += expected.len();
                match client.call(call).await {
                    Ok(replies) => {
                        let result = replies.collect().await;
                        let by_node = result.by_node();
                        for node in &expected {
                            match by_node.get(*node) {
                                Some(NodeOutcome::Replied(r)) if r.statuscode.is_ok() => {
                                    tally.answered += 1
                                }
                                other => tally.failures.push(format!("{kind} {node}: {other:?}")),
                            }
                        }
                    }
                    Err(e) => tally.failures.push(format!("{kind}: {e}")),
                }
            }
            round += 1;
        }
        tallies
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let mut requests = 0;
    for (kind, tally) in &tallies {
        eprintln!(
            "figure: soak {kind}: {} sent, {} answered, {} failed",
            tally.sent,
            tally.answered,
            tally.failures.len()
        );
        requests += tally.sent;
        assert!(
            tally.failures.is_empty(),
            "{kind}: {} failures, first {:?}",
            tally.failures.len(),
            &tally.failures[..tally.failures.len().min(5)]
        );
        assert_eq!(
            tally.sent, tally.answered,
            "{kind}: every request accounted for"
        );
    }
    eprintln!(
        "figure: soak of {:?}: {requests} node-requests, 0 lost",
        duration
    );

    let samples = samples.lock().unwrap();
    for (name, series) in samples.iter() {
        let warm: Vec<u64> = series
            .iter()
            .filter(|(at, _)| *at >= WARM_UP)
            .map(|(_, kb)| *kb)
            .collect();
        assert!(
            warm.len() >= 6,
            "{name}: too few samples after warm-up: {series:?}"
        );
        let third = warm.len() / 3;
        let first = warm[..third].iter().max().copied().unwrap_or(0);
        let last = warm[warm.len() - third..]
            .iter()
            .max()
            .copied()
            .unwrap_or(0);
        let peak = series.iter().map(|(_, kb)| *kb).max().unwrap_or(0);
        eprintln!(
            "figure: soak memory {name}: first third max {first} KiB, last third max {last} KiB, peak {peak} KiB ({} samples)",
            series.len()
        );
        assert!(
            last <= first + FLAT_KIB,
            "{name} grew from {first} KiB to {last} KiB after warm-up: {series:?}"
        );
    }
}
