//! The unsigned broadcast's nodes' share alone, for profilers and quick before/after checks:
//! a raw-NATS fleet and an unsigned simulated fleet of `NODES` each, on the benchmark's own
//! `nats-server`, and `ROUNDS` rounds of each taking turns (the raw floor, then the raw caller
//! to the simulated nodes). Prints the median wall time and CPU per round of both and their
//! ratios. `mco-bench` measures the same thing among its other figures; this one leaves the
//! signed fleets and the client library out, so `perf record` sees only the unsigned path.
//!
//! With `client` as a third argument, each turn also broadcasts `rpcutil ping` to the
//! simulated nodes through an insecure `mco_client::Client` (discovery first, not timed, as in
//! `mco-bench`), and the client's wall time is printed beside the nodes' share: the
//! difference is what the client library adds.
//!
//! With `raw` or `nodes` as a third argument, only that side's rounds run (both fleets are
//! still started), so that `perf record` of two runs compares the two sides' samples symbol
//! by symbol: what the simulated nodes spend beyond the raw subscribers, in situ.
//!
//! ```sh
//! cargo build --profile profiling -p mco-bench --example nodes_share
//! target/profiling/examples/nodes_share 1000 100
//! target/profiling/examples/nodes_share 1000 100 client
//! perf record -g target/profiling/examples/nodes_share 1000 300
//! perf record -o nodes.data target/profiling/examples/nodes_share 1000 300 nodes
//! perf record -o raw.data target/profiling/examples/nodes_share 1000 300 raw
//! ```

use std::time::Duration;

use mco_bench::measure::{with_cpu, Samples};
use mco_bench::raw::{self, RawFleet, Work};
use mco_bench::sim::{client_round, message_sizes, raw_caller_round, Fleet, FleetSpec};
use mco_client::{Client, DiscoveryEnd};

/// Connections each fleet spreads over (`mco-bench`'s default).
const CONNECTIONS: usize = 4;
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);
const COLLECTIVE: &str = "share";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let sides = match args.next().as_deref() {
        None => Sides::BOTH,
        Some("client") => Sides {
            client: true,
            ..Sides::BOTH
        },
        Some("raw") => Sides {
            nodes: false,
            ..Sides::BOTH
        },
        Some("nodes") => Sides {
            raw: false,
            ..Sides::BOTH
        },
        Some(other) => {
            return Err(
                format!("unknown argument {other:?} (expected client, raw or nodes)").into(),
            )
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let nats = mco_testsupport::NatsServer::start();
    runtime.block_on(run(nats.url(), count, rounds, sides))
}

/// Which rounds each turn runs.
#[derive(Clone, Copy)]
struct Sides {
    raw: bool,
    nodes: bool,
    client: bool,
}

impl Sides {
    const BOTH: Sides = Sides {
        raw: true,
        nodes: true,
        client: false,
    };
}

async fn run(
    broker: String,
    n: usize,
    rounds: usize,
    sides: Sides,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        connections.push(async_nats::connect(&broker).await?);
    }
    let caller = async_nats::connect(&broker).await?;
    // The raw floor's messages are as large as the unsigned ping's.
    let (request_bytes, reply_bytes) = message_sizes(None);
    let raw_fleet = RawFleet::start(&connections, "raw", n, reply_bytes, Work::None).await?;
    let mut spec = FleetSpec::new(n, None);
    spec.collectives = vec![COLLECTIVE.into()];
    spec.connections = CONNECTIONS;
    let fleet = Fleet::start(spec, &broker).await?;
    let client = match sides.client {
        true => Some(client(&broker).await?),
        false => None,
    };
    let payload = bytes::Bytes::from(vec![b'q'; request_bytes]);
    let [mut raw_wall, mut raw_cpu, mut sim_wall, mut sim_cpu, mut client_wall] =
        std::array::from_fn(|_| Samples::new());
    for round in 0..=rounds {
        let raw = match sides.raw {
            true => Some(
                with_cpu(raw::broadcast_round(
                    &caller,
                    &raw_fleet.broadcast,
                    payload.clone(),
                    n,
                    None,
                    ROUND_TIMEOUT,
                ))
                .await,
            ),
            false => None,
        };
        let sim = match sides.nodes {
            true => Some(with_cpu(raw_caller_round(&caller, n, COLLECTIVE, ROUND_TIMEOUT)).await),
            false => None,
        };
        let through_client = match &client {
            Some(client) => Some(client_round(client, n, COLLECTIVE, ROUND_TIMEOUT).await),
            None => None,
        };
        // The first round of each warms up.
        if round == 0 {
            continue;
        }
        // A round counts only when every side of it is complete.
        let errors: Vec<&String> = [
            raw.as_ref().and_then(|(r, _)| r.as_ref().err()),
            sim.as_ref().and_then(|(r, _)| r.as_ref().err()),
            through_client.as_ref().and_then(|r| r.as_ref().err()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !errors.is_empty() {
            for e in errors {
                eprintln!("  round {round}: {e}");
            }
            continue;
        }
        if let Some((Ok(t), used)) = raw {
            raw_wall.push(t);
            raw_cpu.push(used);
        }
        if let Some((Ok(t), used)) = sim {
            sim_wall.push(t);
            sim_cpu.push(used);
        }
        if let Some(Ok(t)) = through_client {
            client_wall.push(t);
        }
    }
    fleet.stop().await;
    let ratio = |a: &Samples, b: &Samples| a.p50() / b.p50().max(f64::MIN_POSITIVE);
    match (sides.raw, sides.nodes) {
        (true, true) => println!(
            "{n} nodes, {} complete rounds of {rounds}: wall raw {:.2} ms, nodes {:.2} ms ({:.2}x); CPU per round raw {:.2} ms, nodes {:.2} ms ({:.2}x)",
            raw_wall.len(),
            raw_wall.p50(),
            sim_wall.p50(),
            ratio(&sim_wall, &raw_wall),
            raw_cpu.p50(),
            sim_cpu.p50(),
            ratio(&sim_cpu, &raw_cpu),
        ),
        (raw_only, _) => {
            let (side, wall, cpu) = match raw_only {
                true => ("raw", &raw_wall, &raw_cpu),
                false => ("nodes", &sim_wall, &sim_cpu),
            };
            println!(
                "{n} nodes, {} complete rounds of {rounds}, {side} only: wall {:.2} ms, CPU per round {:.2} ms",
                wall.len(),
                wall.p50(),
                cpu.p50(),
            );
        }
    }
    if sides.client {
        println!(
            "through the client: wall {:.2} ms ({:.2}x raw, {:.2}x the nodes' share)",
            client_wall.p50(),
            ratio(&client_wall, &raw_wall),
            ratio(&client_wall, &sim_wall),
        );
    }
    Ok(())
}

/// An insecure client of the simulated collective, set up as `mco-bench`'s.
async fn client(broker: &str) -> Result<Client, mco_client::ConnectError> {
    Client::builder()
        .broker(broker.to_string())
        .collectives([COLLECTIVE])
        .sender("bench-client")
        .timeout(ROUND_TIMEOUT)
        .discovery_timeout(ROUND_TIMEOUT)
        .discovery_end(DiscoveryEnd::Window)
        .discovery_window(Duration::from_millis(100))
        .discovery_cache_lifetime(Duration::ZERO)
        .direct_threshold(0)
        .direct_queue(false)
        .insecure(true)
        .connect()
        .await
}
