//! One node's share of a broadcast: `Node::handle` (mcod's pipeline, from request bytes to
//! the encoded reply) for an `rpcutil ping`, signed and unsigned, and for a request whose
//! filter does not select the node; and the client's share of an unsigned broadcast,
//! reading a batch of replies as an insecure client does (envelope and reply in one pass)
//! beside the two passes a verifying client needs (the envelope, then the signed bytes).
//! Run with `cargo bench -p mco-bench --bench node`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mco_bench::keys::Issuer;
use mco_bench::sim::{build_nodes, client_credentials, ping_reply, ping_request, FleetSpec};
use mco_server::pipeline::Route;
use mco_spec::security::Credentials;
use mco_spec::{Filter, ReplyEnvelope, RequestEnvelope};

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

fn read_replies(c: &mut Criterion) {
    const REPLIES: usize = 1000;
    let replies: Vec<Vec<u8>> = (0..REPLIES)
        .map(|i| {
            ReplyEnvelope::unsigned(&ping_reply(
                "0123456789abcdef0123456789abcdef",
                &format!("sim-{i:05}"),
            ))
            .and_then(|e| e.to_bytes())
            .expect("a reply encodes")
        })
        .collect();
    let mut group = c.benchmark_group("client reads unsigned replies");
    group.throughput(Throughput::Elements(REPLIES as u64));
    group.bench_function("one pass (insecure client)", |b| {
        b.iter(|| {
            replies
                .iter()
                .filter(|r| ReplyEnvelope::open_unverified(r).is_ok())
                .count()
        })
    });
    group.bench_function("two passes (envelope, then reply)", |b| {
        b.iter(|| {
            replies
                .iter()
                .filter(|r| ReplyEnvelope::decode(r).and_then(|e| e.body()).is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, handle, read_replies);
criterion_main!(benches);
