//! The unsigned broadcast's nodes' share alone, for profilers and quick before/after checks:
//! a raw-NATS fleet and an unsigned simulated fleet of `NODES` each, on the benchmark's own
//! `nats-server`, and `ROUNDS` rounds of each taking turns (the raw floor, then the raw caller
//! to the simulated nodes). Prints the median wall time and CPU per round of both and their
//! ratios. `mco-bench` measures the same thing among its other figures; this one leaves the
//! signed fleets and the client library out, so `perf record` sees only the unsigned path.
//!
//! ```sh
//! cargo build --profile profiling -p mco-bench --example nodes_share
//! target/profiling/examples/nodes_share 1000 100
//! perf record -g target/profiling/examples/nodes_share 1000 300
//! ```

use std::time::Duration;

use mco_bench::measure::{with_cpu, Samples};
use mco_bench::raw::{self, RawFleet, Work};
use mco_bench::sim::{message_sizes, raw_caller_round, Fleet, FleetSpec};

/// Connections each fleet spreads over (`mco-bench`'s default).
const CONNECTIONS: usize = 4;
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let nats = mco_testsupport::NatsServer::start();
    runtime.block_on(run(nats.url(), count, rounds))
}

async fn run(broker: String, n: usize, rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        connections.push(async_nats::connect(&broker).await?);
    }
    let caller = async_nats::connect(&broker).await?;
    // The raw floor's messages are as large as the unsigned ping's.
    let (request_bytes, reply_bytes) = message_sizes(None);
    let raw_fleet = RawFleet::start(&connections, "raw", n, reply_bytes, Work::None).await?;
    let mut spec = FleetSpec::new(n, None);
    spec.collectives = vec!["share".into()];
    spec.connections = CONNECTIONS;
    let fleet = Fleet::start(spec, &broker).await?;
    let payload = bytes::Bytes::from(vec![b'q'; request_bytes]);
    let [mut raw_wall, mut raw_cpu, mut sim_wall, mut sim_cpu] =
        std::array::from_fn(|_| Samples::new());
    for round in 0..=rounds {
        let (raw, raw_used) = with_cpu(raw::broadcast_round(
            &caller,
            &raw_fleet.broadcast,
            payload.clone(),
            n,
            None,
            ROUND_TIMEOUT,
        ))
        .await;
        let (sim, sim_used) = with_cpu(raw_caller_round(&caller, n, "share", ROUND_TIMEOUT)).await;
        // The first round of each warms up.
        if round == 0 {
            continue;
        }
        if let (Ok(raw), Ok(sim)) = (raw, sim) {
            raw_wall.push(raw);
            raw_cpu.push(raw_used);
            sim_wall.push(sim);
            sim_cpu.push(sim_used);
        }
    }
    fleet.stop().await;
    let ratio = |a: &Samples, b: &Samples| a.p50() / b.p50().max(f64::MIN_POSITIVE);
    println!(
        "{n} nodes, {} complete rounds of {rounds}: wall raw {:.2} ms, nodes {:.2} ms ({:.2}x); CPU per round raw {:.2} ms, nodes {:.2} ms ({:.2}x)",
        raw_wall.len(),
        raw_wall.p50(),
        sim_wall.p50(),
        ratio(&sim_wall, &raw_wall),
        raw_cpu.p50(),
        sim_cpu.p50(),
        ratio(&sim_cpu, &raw_cpu),
    );
    Ok(())
}
