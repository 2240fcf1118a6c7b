//! Hot paths of the wire protocol: filter evaluation on a node, request encode/decode (the
//! hand-written request reader beside serde's reading of the same bytes), and the signature
//! work every request and reply costs (including batch verification of replies on the
//! client). Run with `cargo bench -p mco-spec`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use mco_spec::message::{new_request_id, now_millis};
use mco_spec::security::{
    encode_public_key, Credentials, Token, TokenCache, TokenClaims, TokenRole, Trust,
};
use mco_spec::{
    subjects, Filter, NodeView, Reply, ReplyEnvelope, Request, RequestEnvelope, StatusCode,
    TargetSet,
};
use serde_json::json;

fn request(filter: Filter) -> Request<'static> {
    let id = new_request_id();
    Request {
        reply_to: subjects::reply("mco", "alice", &id).into(),
        id: id.into(),
        collective: "mco".into(),
        agent: "rpcutil".into(),
        action: "ping".into(),
        data: Default::default(),
        filter,
        caller: "alice".into(),
        sender: "admin1.example.net".into(),
        time: now_millis(),
        ttl: 60,
        targets: None,
    }
}

fn filters(c: &mut Criterion) {
    let facts = json!({
        "country": "uk", "cpus": 8, "load": 0.75, "os": {"family": "debian", "release": "12"},
        "roles": ["web", "cache"], "environment": "production", "memory": {"total_mb": 16000}
    });
    let classes: Vec<String> = (0..40)
        .map(|i| format!("profile::class{i}"))
        .chain(["role::web".to_string()])
        .collect();
    let agents = vec![
        "rpcutil".to_string(),
        "service".to_string(),
        "package".to_string(),
    ];
    let node = NodeView {
        identity: "web042.example.net",
        facts: &facts,
        classes: &classes,
        agents: &agents,
    };

    let mut simple = Filter::default();
    simple.add_fact("country=uk").unwrap();
    simple.add_agent("rpcutil").unwrap();
    let simple = simple.compile().unwrap();

    let mut typical = Filter::default();
    typical.add_with("country=uk role::web").unwrap();
    typical.add_fact("cpus>=4").unwrap();
    typical.add_fact("os.family=/deb/i").unwrap();
    typical.add_identity("/^web/").unwrap();
    typical.add_agent("service").unwrap();
    let typical = typical.compile().unwrap();

    let mut compound = Filter::default();
    compound
        .add_compound("(country=uk and /^role::web/) or not environment=dev")
        .unwrap();
    let compound = compound.compile().unwrap();

    let mut group = c.benchmark_group("filter_match");
    group.bench_function("fact_and_agent", |b| b.iter(|| simple.matches(&node)));
    group.bench_function("typical_w_f_i_a", |b| b.iter(|| typical.matches(&node)));
    group.bench_function("compound", |b| b.iter(|| compound.matches(&node)));
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let mut filter = Filter::default();
    filter.add_with("country=uk role::web").unwrap();
    let req = request(filter);
    let bytes = RequestEnvelope::unsigned(&req).unwrap().to_bytes().unwrap();
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| RequestEnvelope::unsigned(&req).unwrap().to_bytes().unwrap())
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            let envelope = RequestEnvelope::decode(&bytes).unwrap();
            envelope.body().unwrap().time
        })
    });
    group.finish();
    // What every node does with every broadcast: read the request out of its envelope, by
    // the hand-written reader and by serde, on the same bytes (a ping as `mco ping` sends
    // it, and a `-W` filtered call).
    let mut group = c.benchmark_group("request_read");
    let ping = request(Filter {
        agent: vec!["rpcutil".into()],
        ..Filter::default()
    });
    for (name, request) in [("ping", &ping), ("filtered", &req)] {
        let envelope = RequestEnvelope::unsigned(request)
            .unwrap()
            .to_bytes()
            .unwrap();
        let text = std::str::from_utf8(&envelope).unwrap();
        let body = RequestEnvelope::decode(&envelope)
            .unwrap()
            .body
            .get()
            .to_string();
        assert!(mco_spec::request_reader::read_request(&body).is_some());
        group.bench_function(format!("{name}: request, reader"), |b| {
            b.iter(|| mco_spec::request_reader::read_request(&body).unwrap().time)
        });
        group.bench_function(format!("{name}: request, serde"), |b| {
            b.iter(|| serde_json::from_str::<Request>(&body).unwrap().time)
        });
        group.bench_function(format!("{name}: envelope and request, reader"), |b| {
            b.iter(|| {
                mco_spec::request_reader::open_request_envelope(
                    text,
                    mco_spec::message::REQUEST_PROTOCOL,
                )
                .unwrap()
                .0
                .time
            })
        });
        group.bench_function(format!("{name}: envelope and request, serde"), |b| {
            b.iter(|| {
                let envelope = RequestEnvelope::decode(&envelope).unwrap();
                serde_json::from_str::<Request>(envelope.body.get())
                    .unwrap()
                    .time
            })
        });
    }
    group.finish();
}

fn signatures(c: &mut Criterion) {
    let issuer = SigningKey::from_bytes(&[1; 32]);
    let alice = SigningKey::from_bytes(&[2; 32]);
    let claims = TokenClaims {
        role: TokenRole::Client,
        name: "alice".into(),
        public_key: encode_public_key(&alice.verifying_key()),
        issuer: String::new(),
        not_before: 0,
        expires: u64::MAX,
        agents: vec![],
        collectives: vec![],
    };
    let credentials = Credentials {
        key: alice.clone(),
        token: Token::issue(&claims, &issuer),
    };
    let trust = Trust {
        issuers: vec![issuer.verifying_key()],
        clock_skew_secs: 0,
    };
    let req = request(Filter::default());
    let signed = RequestEnvelope::signed(&req, &credentials).unwrap();
    let now = now_millis() / 1000;

    let mut group = c.benchmark_group("signature");
    group.bench_function("sign_request", |b| {
        b.iter(|| RequestEnvelope::signed(&req, &credentials).unwrap())
    });
    group.bench_function("verify_request_with_token", |b| {
        b.iter(|| TokenCache::default().verify(&signed, &trust, now).unwrap())
    });
    let warm = TokenCache::default();
    group.bench_function("verify_request_cached_token", |b| {
        b.iter(|| warm.verify(&signed, &trust, now).unwrap())
    });

    // The client verifying many replies: one by one against in a batch.
    const N: usize = 64;
    let keys: Vec<SigningKey> = (0..N)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 10; 32]))
        .collect();
    let messages: Vec<Vec<u8>> = (0..N)
        .map(|i| format!("reply {i} from node {i}").into_bytes())
        .collect();
    let signatures: Vec<Signature> = keys
        .iter()
        .zip(&messages)
        .map(|(k, m)| ed25519_dalek::Signer::sign(k, m))
        .collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("verify_64_one_by_one", |b| {
        b.iter(|| {
            for ((k, m), s) in verifying.iter().zip(&messages).zip(&signatures) {
                k.verify_strict(m, s).unwrap();
            }
        })
    });
    group.bench_function("verify_64_batch", |b| {
        b.iter_batched(
            || messages.iter().map(Vec::as_slice).collect::<Vec<&[u8]>>(),
            |refs| ed25519_dalek::verify_batch(&refs, &signatures, &verifying).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// What a node and a client do per message with the token cache: the node verifies one
/// request signature, the client verifies replies from many nodes in batches.
fn replies(c: &mut Criterion) {
    const NODES: usize = 64;
    let issuer = SigningKey::from_bytes(&[1; 32]);
    let trust = Trust {
        issuers: vec![issuer.verifying_key()],
        clock_skew_secs: 0,
    };
    let now = now_millis() / 1000;
    let envelopes: Vec<ReplyEnvelope> = (0..NODES)
        .map(|i| {
            let key = SigningKey::from_bytes(&[i as u8 + 100; 32]);
            let name = format!("node{i}");
            let claims = TokenClaims {
                role: TokenRole::Server,
                name: name.clone(),
                public_key: encode_public_key(&key.verifying_key()),
                issuer: String::new(),
                not_before: 0,
                expires: u64::MAX,
                agents: vec![],
                collectives: vec![],
            };
            let credentials = Credentials {
                key,
                token: Token::issue(&claims, &issuer),
            };
            let reply = Reply {
                request_id: new_request_id(),
                sender: name,
                agent: "rpcutil".into(),
                action: "ping".into(),
                time: now_millis(),
                statuscode: StatusCode::Ok,
                statusmsg: "OK".into(),
                data: json!({"pong": now}),
            };
            ReplyEnvelope::signed(&reply, &credentials).unwrap()
        })
        .collect();
    let bytes: Vec<Vec<u8>> = envelopes.iter().map(|e| e.to_bytes().unwrap()).collect();
    let refs: Vec<&ReplyEnvelope> = envelopes.iter().collect();
    let mut group = c.benchmark_group("reply");
    group.bench_function("sign_and_encode", |b| {
        let reply: Reply = serde_json::from_str(envelopes[0].body.get()).unwrap();
        let key = SigningKey::from_bytes(&[100; 32]);
        let credentials = Credentials {
            key,
            token: envelopes[0].token.clone().unwrap().into_owned(),
        };
        b.iter(|| {
            ReplyEnvelope::signed(&reply, &credentials)
                .unwrap()
                .to_bytes()
                .unwrap()
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| ReplyEnvelope::decode(&bytes[0]).unwrap().body().unwrap())
    });
    group.throughput(Throughput::Elements(NODES as u64));
    group.bench_function("verify_64_cold_tokens_one_by_one", |b| {
        b.iter(|| {
            for e in &envelopes {
                TokenCache::default().verify(e, &trust, now).unwrap();
            }
        })
    });
    group.bench_function("verify_64_cold_tokens_batch", |b| {
        b.iter_batched(
            TokenCache::default,
            |cache| cache.verify_many(&refs, &trust, now),
            BatchSize::SmallInput,
        )
    });
    let warm = TokenCache::default();
    warm.verify_many(&refs, &trust, now);
    group.bench_function("verify_64_warm_tokens_batch", |b| {
        b.iter(|| warm.verify_many(&refs, &trust, now))
    });
    group.finish();
}

/// Binding a direct request to its targets: building the tree for a call to 10,000 nodes
/// (once per call, on the client) and checking one node's proof (once per request, on the
/// node).
fn targets(c: &mut Criterion) {
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("node{i:05}.example.net"))
        .collect();
    let mut group = c.benchmark_group("targets");
    group.bench_function("target_set_of_10000", |b| {
        b.iter(|| TargetSet::new(names.iter().cloned()).unwrap())
    });
    let set = TargetSet::new(names.iter().cloned()).unwrap();
    let targets = set.targets();
    // What a call to 10,000 nodes does once per node: the copy of the signed envelope with
    // that node's proof.
    let envelope = RequestEnvelope::unsigned(&request(Filter::default()))
        .unwrap()
        .to_bytes()
        .unwrap();
    group.bench_function("all_10000_copies", |b| {
        b.iter(|| {
            names
                .iter()
                .map(|n| RequestEnvelope::copy_for(&envelope, &set, n).unwrap())
                .collect::<Vec<_>>()
        })
    });
    let proof = set.proof("node04321.example.net").unwrap();
    group.bench_function("verify_one_proof_of_10000", |b| {
        b.iter(|| assert!(targets.contains("node04321.example.net", &proof)))
    });
    group.finish();
}

criterion_group!(benches, filters, encoding, signatures, replies, targets);
criterion_main!(benches);
