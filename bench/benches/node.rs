//! One node's share of a broadcast: `Node::handle` (mcod's pipeline, from request bytes to
//! the encoded reply) for an `rpcutil ping`, signed and unsigned, and for a request whose
//! filter does not select the node; and the client's share, accepting a batch of replies.
//! Run with `cargo bench -p mco-bench --bench node`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mco_bench::keys::Issuer;
use mco_bench::sim::{build_nodes, client_credentials, ping_request, FleetSpec};
use mco_server::pipeline::Route;
use mco_spec::security::Credentials;
use mco_spec::{Filter, RequestEnvelope};

/// A fresh encoded request (new id, so the replay memory admits it) for every iteration.
fn encoded(filter: &Filter, credentials: Option<&Credentials>) -> Vec<u8> {
    let mut request = ping_request("mco");
    request.filter = filter.clone();
    request.ttl = 600;
    let envelope = match credentials {
        Some(c) => RequestEnvelope::signed(&request, c),
        None => RequestEnvelope::unsigned(&request),
    };
    envelope
        .and_then(|e| e.to_bytes())
        .expect("a generated request encodes")
}

fn handle(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let issuer = Issuer::generate().expect("issuer");
    let caller = client_credentials(&issuer, "bench");
    let mut spec = FleetSpec::new(1, None);
    spec.count = 1;
    let insecure = build_nodes(&spec, "nats://127.0.0.1:1").expect("node")[0].clone();
    spec.issuer = Some(issuer);
    let signed = build_nodes(&spec, "nats://127.0.0.1:1").expect("node")[0].clone();

    let mut ping = Filter::default();
    ping.add_agent("rpcutil").expect("filter");
    let mut other = ping.clone();
    other.add_fact("country=nowhere").expect("filter");

    let mut group = c.benchmark_group("node handle");
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("broadcast ping, unsigned", &insecure, None, &ping),
        ("broadcast ping, signed", &signed, Some(&caller), &ping),
        ("broadcast not selected, unsigned", &insecure, None, &other),
    ];
    for (name, node, credentials, filter) in cases {
        group.bench_function(name, |b| {
            b.iter_batched(
                || encoded(filter, credentials),
                |payload| runtime.block_on(node.handle("mco", Route::Broadcast, &payload)),
                BatchSize::SmallInput,
            )
        });
    }
    // A simulated fleet's view: each message goes to another node, whose state is not in
    // the CPU caches (the 1,000 nodes of a broadcast, one after the other).
    spec.issuer = None;
    spec.count = 1000;
    let fleet = build_nodes(&spec, "nats://127.0.0.1:1").expect("nodes");
    let mut next = 0;
    group.bench_function("broadcast ping, unsigned, 1,000 nodes in turn", |b| {
        b.iter_batched(
            || encoded(&ping, None),
            |payload| {
                next = (next + 1) % fleet.len();
                runtime.block_on(fleet[next].handle("mco", Route::Broadcast, &payload))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, handle);
criterion_main!(benches);
