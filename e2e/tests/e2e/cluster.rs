//! A fleet on a three-server NATS cluster: the direct queue kept in three copies without the
//! operator asking, nodes moving to another server when theirs dies, broadcasts and queued
//! direct requests working throughout, no queued request lost or run twice while a server
//! dies and comes back, and the registry service carrying on.

use std::path::Path;
use std::time::{Duration, Instant};

use mco_client::{Call, Client, NodeOutcome};
use mco_testsupport::{Fleet, NatsCluster, NodeSpec, RegistryService, SimulatedFleet};

use crate::direct::{runs, send_no_wait, tally_node};
use crate::registry::{registry_config, wait_for_registry, FAST_REGISTRATION};
use crate::wait_until;

const NODES: [&str; 6] = ["c1", "c2", "c3", "c4", "c5", "c6"];

/// A tally node that registers every second.
fn registering_node(id: &str, dir: &Path) -> NodeSpec {
    let mut spec = tally_node(id, dir);
    spec.extra_config = format!("{}{FAST_REGISTRATION}", spec.extra_config);
    spec
}

fn cluster_fleet(dir: &Path) -> Fleet<NatsCluster> {
    let specs = NODES.iter().map(|id| registering_node(id, dir)).collect();
    Fleet::start_on(
        NatsCluster::start(3),
        specs,
        &format!(
            "ddl_dirs = [{:?}]",
            crate::direct::agents_dir().display().to_string()
        ),
    )
}

/// The direct-request stream's replica count and the server (index) leading it, as the
/// broker reports them, once it has a leader other than `not` (a server just killed).
fn stream_placement(fleet: &Fleet<NatsCluster>, not: Option<usize>) -> (usize, usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let urls = mco_testsupport::Broker::urls(&fleet.nats);
    runtime.block_on(async {
        // A stream just made may not have elected its leader yet.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            for url in &urls {
                let Ok(nats) = async_nats::connect(url.as_str()).await else {
                    continue;
                };
                let js = async_nats::jetstream::new(nats);
                match js.get_stream(mco_transport::stream_name("mco")).await {
                    Ok(mut stream) => match stream.info().await {
                        Ok(info) => {
                            let leader = info
                                .cluster
                                .as_ref()
                                .and_then(|c| c.leader.as_deref())
                                .and_then(|name| name.strip_prefix('n'))
                                .and_then(|n| n.parse::<usize>().ok());
                            match leader {
                                Some(leader) if Some(leader - 1) != not => {
                                    return (info.config.num_replicas, leader - 1)
                                }
                                _ => {}
                            }
                            last = format!("no stream leader yet in {:?}", info.cluster);
                        }
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the stream has no leader after 20 s: {last}")
    })
}

/// Sends `rounds` direct pings to every running node from one library client (one call per
/// node per round, all of a round at once); returns (sent, answered).
fn direct_pings(fleet: &Fleet<NatsCluster>, nodes: &[&str], rounds: usize) -> (usize, usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = crate::signed_client(fleet, Client::builder()).await;
        let mut sent = 0;
        let mut answered = 0;
        for _ in 0..rounds {
            let calls = nodes.iter().map(|node| {
                let client = &client;
                async move {
                    let call = Call::new("rpcutil", "ping")
                        .nodes([*node])
                        .timeout(Duration::from_secs(10));
                    match client.call(call).await {
                        Ok(replies) => {
                            let result = replies.collect().await;
                            matches!(result.by_node()[*node], NodeOutcome::Replied(r) if r.statuscode.is_ok())
                        }
                        Err(e) => {
                            eprintln!("direct ping to {node}: {e}");
                            false
                        }
                    }
                }
            });
            let outcomes = futures::future::join_all(calls).await;
            sent += outcomes.len();
            answered += outcomes.into_iter().filter(|ok| *ok).count();
        }
        (sent, answered)
    })
}

/// The registry service's connection name.
const REGISTRY: &str = "mcod registry registry";

/// Waits until every connection in `names` is on a server other than `dead`; returns how
/// long that took.
fn wait_for_failover(fleet: &Fleet<NatsCluster>, names: &[String], dead: usize) -> Duration {
    let started = Instant::now();
    wait_until(
        "the clients of the dead server to reconnect elsewhere",
        Duration::from_secs(20),
        || {
            names
                .iter()
                .all(|n| fleet.nats.server_of(n).is_some_and(|s| s != dead))
        },
    );
    started.elapsed()
}

/// The connection names of the daemons and the registry service on `server`.
fn clients_on(fleet: &Fleet<NatsCluster>, server: usize) -> Vec<String> {
    NODES
        .iter()
        .map(|n| format!("mcod {n}"))
        .chain([REGISTRY.to_string()])
        .filter(|n| fleet.nats.server_of(n) == Some(server))
        .collect()
}

/// How many of `clients` are nodes (not the registry service).
fn nodes_among(clients: &[String]) -> usize {
    clients.iter().filter(|n| *n != REGISTRY).count()
}

#[test]
fn a_three_server_cluster_loses_no_request_when_servers_die_and_return() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = cluster_fleet(tmp.path());
    // Nobody asked for replicas: "auto" keeps three copies on a cluster.
    let (replicas, leader) = stream_placement(&fleet, None);
    assert_eq!(replicas, 3);
    let config = registry_config(&fleet, tmp.path());
    let db = tmp.path().join("registry.sqlite").display().to_string();
    let mut service = RegistryService::start(&config, &db, 60);
    wait_for_registry(&fleet, &service, &NODES);

    // Requests for a node that is down wait in the queue.
    let absent = "c1";
    fleet.node(absent).kill();
    let mut queued: Vec<String> = (0..10)
        .map(|_| send_no_wait(&fleet, &["tally", "run", "-I", absent, "--ttl", "120"]))
        .collect();

    // Kill the server that leads the queue's stream, and with it the nodes' connections.
    let dead = leader;
    let first_moved = clients_on(&fleet, dead);
    fleet.nats.server(dead).stop();
    let failover = wait_for_failover(&fleet, &first_moved, dead);
    eprintln!(
        "figure: the stream leader n{} killed; {} node(s) on it moved to another server in {:.2} s",
        dead + 1,
        nodes_among(&first_moved),
        failover.as_secs_f64()
    );

    // JetStream needs the stream's leader: until the two left elect one, a direct request
    // cannot be queued (and the client says so rather than sending it nowhere).
    let election = Instant::now();
    stream_placement(&fleet, Some(dead));
    eprintln!(
        "figure: the stream elected a new leader {:.2} s after its servers' clients had moved",
        election.elapsed().as_secs_f64()
    );

    // Broadcasts and direct requests keep working on two servers of three.
    let running: Vec<&str> = NODES.iter().copied().filter(|n| *n != absent).collect();
    let mut want: Vec<String> = running.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(fleet.ping(), want);
    let (sent, answered) = direct_pings(&fleet, &running, 40);
    eprintln!("figure: direct pings with one server of three down: {answered} of {sent} answered");
    assert_eq!((sent, answered), (200, 200));
    queued.extend(
        (0..10).map(|_| send_no_wait(&fleet, &["tally", "run", "-I", absent, "--ttl", "120"])),
    );

    // The dead server comes back and another dies; the absent node then starts and takes
    // every request queued for it, each once.
    fleet.nats.server(dead).start_again();
    fleet.nats.wait_for_leader(Duration::from_secs(30));
    // The second to die is the registry service's (never the first: it moved off that).
    let second = fleet
        .nats
        .server_of(REGISTRY)
        .expect("the registry service is connected");
    assert_ne!(second, dead);
    let moved_again = clients_on(&fleet, second);
    fleet.nats.server(second).stop();
    fleet.node(absent).start_again();
    let failover = wait_for_failover(&fleet, &moved_again, second);
    eprintln!(
        "figure: n{} killed; the registry service and {} node(s) on it moved to another server in {:.2} s",
        second + 1,
        nodes_among(&moved_again),
        failover.as_secs_f64()
    );
    assert!(
        nodes_among(&first_moved) + nodes_among(&moved_again) > 0,
        "no node was on a server that died"
    );
    let started = Instant::now();
    wait_until(
        "the restarted node to run its queued requests",
        Duration::from_secs(60),
        || runs(tmp.path(), absent).len() >= queued.len(),
    );
    eprintln!(
        "figure: {} requests queued for {absent} (across both server deaths) ran {:.2} s after it started",
        queued.len(),
        started.elapsed().as_secs_f64()
    );
    // Anything run twice would show up within the ack wait (3 s) of the first run.
    std::thread::sleep(Duration::from_secs(4));
    let mut ran = runs(tmp.path(), absent);
    ran.sort();
    queued.sort();
    assert_eq!(ran, queued, "each queued request runs exactly once");
    for node in &running {
        assert!(
            runs(tmp.path(), node).is_empty(),
            "{node} ran a request for {absent}"
        );
    }

    // The registry service carries on on its new server: a node started now is registered.
    fleet.nats.server(second).start_again();
    let mut late = mco_testsupport::Mcod::start(
        registering_node("c7", tmp.path()),
        &mco_testsupport::Broker::urls(&fleet.nats).join(","),
        Some(&fleet.keys),
    );
    let mut all: Vec<&str> = NODES.to_vec();
    all.push("c7");
    wait_for_registry(&fleet, &service, &all);
    assert!(late.terminate(Duration::from_secs(10)).is_some());
    assert!(service.stop(Duration::from_secs(10)).is_some());
    assert_eq!(fleet.ping(), {
        let mut all: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
        all.sort();
        all
    });
}

/// How many simulated nodes the cluster broadcast reaches: `MCO_SCALE_NODES`, or 10,000.
fn scale_nodes() -> usize {
    std::env::var("MCO_SCALE_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn a_broadcast_through_the_cluster_hears_every_one_of_ten_thousand_nodes() {
    let count = scale_nodes();
    // A fixed, wide window so that discovery waits for a debug-built simulator on two cores
    // whatever its pauses; the count, not the time, is what this test checks.
    let fleet = Fleet::start_on(
        NatsCluster::start(3),
        vec![],
        "discovery_end = \"window\"\ndiscovery_window_ms = 5000",
    );
    let urls = mco_testsupport::Broker::urls(&fleet.nats);
    let started = Instant::now();
    let sim = SimulatedFleet::start(
        &urls,
        count,
        &fleet.keys.issuer_key(),
        Duration::from_secs(300),
    );
    eprintln!(
        "figure: {count} simulated nodes on 3 servers ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let run = mco_testsupport::mco(
        &fleet.client_config(),
        &["ping", "-j", "--dt", "120"],
        Duration::from_secs(300),
    );
    let mut senders = run.senders();
    let replies = senders.len();
    senders.sort();
    senders.dedup();
    eprintln!(
        "figure: broadcast ping through the cluster: {} replies from {} distinct nodes of {count} in {:.1} s (simulator RSS {:?} KiB)",
        replies,
        senders.len(),
        started.elapsed().as_secs_f64(),
        sim.rss_kb()
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(replies, count, "one reply per node, none twice");
    assert_eq!(senders.len(), count, "every node answered");
}
