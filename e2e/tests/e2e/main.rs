//! End-to-end tests: a real `nats-server` on a free port, real `mcod` processes, the real
//! `mco` binary and the client library. Each test starts its own fleet and stops it.

mod agents_inputs;
mod agents_package;
mod agents_puppet;
mod agents_service;
mod attacks;
mod attacks_agents;
mod broker_auth;
mod broker_permissions;
mod cli_tools;
mod clock;
mod cluster;
mod commands;
mod ddl_compat;
mod direct;
mod discovery;
mod discovery_end;
mod events;
mod external;
mod files;
mod filters;
mod floods;
mod library;
mod mcollective_cli;
mod output_formats;
mod packages;
mod partitions;
mod plugins;
mod py_mco_agent;
mod raw;
mod registry;
mod registry_tls;
mod reload;
mod resilience;
mod restarts;
mod security;
mod service_units;
mod soak;
mod web;
mod web_console;

use mco_testsupport::{Fleet, NodeSpec};
use serde_json::json;

/// Five nodes with different facts, classes and collectives:
///
/// | node | country | cpus | os.family | load | classes | collectives |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | web1 | uk | 4 | debian | 1.5 | role::web, webserver | mco, uk |
/// | web2 | uk | 2 | debian | 0.5 | role::web, webserver | mco, uk |
/// | web3 | de | 8 | redhat | 2.0 | role::web | mco, eu |
/// | db1 | fr | 16 | debian | 1.5 | role::db | mco, eu |
/// | db2 | uk | 8 | Debian | 3 | role::db, backup | mco, uk |
pub fn five_nodes() -> Fleet {
    five_nodes_with("", "")
}

/// [`five_nodes`] with extra TOML lines in each node's configuration and in the client's.
pub fn five_nodes_with(node_extra: &str, client_extra: &str) -> Fleet {
    let node = |id: &str,
                country: &str,
                cpus: u64,
                family: &str,
                load: serde_json::Value,
                classes: &[&str],
                extra: &str| {
        let mut spec = NodeSpec::new(
            id,
            json!({"country": country, "cpus": cpus, "os": {"family": family, "release": {"major": 12}}, "load": load, "roles": classes}),
            classes,
        );
        spec.collectives = vec!["mco".into(), extra.into()];
        spec.extra_config = node_extra.to_string();
        spec
    };
    Fleet::start_with_client_config(
        vec![
            node(
                "web1",
                "uk",
                4,
                "debian",
                json!(1.5),
                &["role::web", "webserver"],
                "uk",
            ),
            node(
                "web2",
                "uk",
                2,
                "debian",
                json!(0.5),
                &["role::web", "webserver"],
                "uk",
            ),
            node("web3", "de", 8, "redhat", json!(2.0), &["role::web"], "eu"),
            node("db1", "fr", 16, "debian", json!(1.5), &["role::db"], "eu"),
            node(
                "db2",
                "uk",
                8,
                "Debian",
                json!(3),
                &["role::db", "backup"],
                "uk",
            ),
        ],
        client_extra,
    )
}

/// A library client with the fleet's client credentials and trust, as an application
/// configured like `mco` would build it.
pub async fn signed_client<B: mco_testsupport::Broker>(
    fleet: &Fleet<B>,
    builder: mco_client::ClientBuilder,
) -> mco_client::Client {
    let (key, token) = fleet.client_credentials();
    builder
        .brokers(fleet.nats.urls())
        // The fleet's own discovery cache, as its `mco` runs use.
        .discovery_cache_dir(fleet.client_config().with_file_name("cache"))
        .credentials(mco_keys::read_credentials(&key, &token).unwrap())
        .trust(
            vec![mco_keys::read_public_key(&fleet.keys.issuer_pub()).unwrap()],
            30,
        )
        .connect()
        .await
        .unwrap()
}

/// Runs `mco` with `args` (which ask for `-j`) and returns the one reply it printed.
pub fn single_reply(fleet: &Fleet, args: &[&str]) -> serde_json::Value {
    let run = fleet.mco(args);
    let json = run.json();
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{run:?}");
    json[0].clone()
}

/// The one reply to `call` (addressed to one node) sent through the library.
pub async fn library_reply(client: &mco_client::Client, call: mco_client::Call) -> mco_spec::Reply {
    let described = format!("{call:?}");
    let mut result = client.call(call).await.unwrap().collect().await;
    assert_eq!(result.replies.len(), 1, "{described}: {:?}", result.stats);
    result.replies.remove(0)
}

/// Sends `call` (addressed to one node) twice at the same moment through the library, as two
/// operators would; returns both replies, a successful one first if there is one.
pub fn twice_at_once(fleet: &Fleet, call: mco_client::Call) -> (mco_spec::Reply, mco_spec::Reply) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (first, second) = runtime.block_on(async {
        let client = signed_client(fleet, mco_client::Client::builder()).await;
        tokio::join!(
            library_reply(&client, call.clone()),
            library_reply(&client, call)
        )
    });
    if first.statuscode.is_ok() {
        (first, second)
    } else {
        (second, first)
    }
}

/// Polls `done` every 100 ms until it holds; fails the test after `limit`. For effects that
/// land asynchronously (a daemon handles each message in its own task), never for timing.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs `mco` with `args` on a pseudo-terminal (its stdin, stdout and stderr, from `script`)
/// with `env` set, typing `input`; returns what the terminal showed.
pub fn on_terminal_typing(
    fleet: &Fleet,
    args: &[&str],
    env: &[(&str, &str)],
    input: &str,
) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = mco_testsupport::require_program("script", "apt-get install bsdutils");
    let mut line = format!("'{}'", mco_testsupport::bin_path("mco").display());
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let mut command = Command::new(script);
    command
        .args(["-qfec", &line, "/dev/null"])
        .env("MCO_CONFIG", fleet.client_config())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let started = std::time::Instant::now();
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    // Kept open until mco is done: a closed input would end the terminal session early.
    let run = mco_testsupport::finish(child, started, std::time::Duration::from_secs(60));
    drop(stdin);
    assert!(run.code.is_some(), "{run:?}");
    run.stdout
}

/// [`on_terminal_typing`] with nothing typed.
pub fn on_terminal(fleet: &Fleet, args: &[&str], env: &[(&str, &str)]) -> String {
    on_terminal_typing(fleet, args, env, "")
}
