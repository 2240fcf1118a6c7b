//! DDL input validation, which runs on the client before sending and on every node before
//! every action. Run with `cargo bench -p mco-ddl`.

use criterion::{criterion_group, criterion_main, Criterion};
use mco_ddl::AgentDdl;
use serde_json::{json, Map, Value};

fn validation(c: &mut Criterion) {
    let service =
        AgentDdl::from_json(include_str!("../tests/data/service.json"), "service.json").unwrap();
    let puppet =
        AgentDdl::from_json(include_str!("../tests/data/puppet.json"), "puppet.json").unwrap();
    let restart = service.action("restart").unwrap();
    let runonce = puppet.action("runonce").unwrap();
    let service_input: Map<String, Value> =
        json!({"service": "nginx"}).as_object().unwrap().clone();
    let runonce_input: Map<String, Value> =
        json!({"noop": true, "tags": "apache,role::web", "splaylimit": 30, "environment": "production"})
            .as_object()
            .unwrap()
            .clone();
    let mut group = c.benchmark_group("validate_inputs");
    group.bench_function("service_restart", |b| {
        b.iter(|| restart.validate_inputs(&mut service_input.clone()).unwrap())
    });
    group.bench_function("puppet_runonce", |b| {
        b.iter(|| runonce.validate_inputs(&mut runonce_input.clone()).unwrap())
    });
    group.finish();
    c.bench_function("load_package_ddl", |b| {
        b.iter(|| {
            AgentDdl::from_json(include_str!("../tests/data/package.json"), "package.json").unwrap()
        })
    });
}

criterion_group!(benches, validation);
criterion_main!(benches);
