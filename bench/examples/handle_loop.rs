//! `Node::handle` in a loop, for profilers: unsigned `rpcutil ping` broadcasts to `NODES`
//! simulated nodes in turn (the node state each request touches is cold, as in the
//! simulator), `N` requests, prepared before the loop. Not a benchmark with figures of its
//! own (`mco-bench` and `cargo bench -p mco-bench --bench node` are): it is what
//! `perf record` and callgrind look at.
//!
//! ```sh
//! cargo build --release -p mco-bench --example handle_loop
//! target/release/examples/handle_loop 1000 200000          # prints ns per request
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/handle_loop 1 20000
//! callgrind_annotate --inclusive=yes cg.out | grep run_handles  # instructions / 20000
//! ```

use std::sync::Arc;
use std::time::Instant;

use mco_bench::sim::{build_nodes, ping_request, FleetSpec};
use mco_server::pipeline::Route;
use mco_server::Node;
use mco_spec::RequestEnvelope;

/// Handles every payload, each at the next node; returns the bytes replied.
#[inline(never)]
fn run_handles(
    runtime: &tokio::runtime::Runtime,
    nodes: &[Arc<Node>],
    payloads: &[Vec<u8>],
) -> usize {
    runtime.block_on(async {
        let mut replied = 0;
        for (i, payload) in payloads.iter().enumerate() {
            let node = &nodes[i % nodes.len()];
            if let Some(out) = node.handle("mco", Route::Broadcast, payload).await {
                replied += out.payload.len();
            }
        }
        replied
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    let requests: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut spec = FleetSpec::new(count.max(1), None);
    spec.count = count.max(1);
    let nodes = build_nodes(&spec, "nats://127.0.0.1:1")?;
    let payloads = (0..requests)
        .map(|_| {
            let mut request = ping_request("mco");
            // Every request is still within its TTL when the last one is handled.
            request.ttl = 3600;
            RequestEnvelope::unsigned(&request).and_then(|e| e.to_bytes())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let replied = run_handles(&runtime, &nodes, &payloads);
    let took = started.elapsed();
    println!(
        "{} nodes: {:.0} ns per request ({replied} bytes replied)",
        nodes.len(),
        took.as_nanos() as f64 / requests.max(1) as f64
    );
    Ok(())
}
