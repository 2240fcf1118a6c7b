//! Adaptive discovery misses nothing: a node whose every answer is 150 ms late (behind a
//! delaying proxy, as on a distant link) is found by a discovery that expects nothing, by one
//! whose expected set (the discovery cache) holds it, and by one whose cache was written
//! before it joined; a fast node that joined is found; a cached node that is down ends in the
//! no-response list after the window, not the discovery timeout; a cached node slower than
//! the adaptive floor is waited for as long as the cache says it took.

use std::time::Duration;

use mco_testsupport::{mco, DelayProxy, Fleet, Mcod, NatsServer, NodeSpec, Run};
use serde_json::json;

const DELAY: Duration = Duration::from_millis(150);

fn web(identity: &str) -> NodeSpec {
    NodeSpec::new(identity, json!({"role": "web"}), &[])
}

/// The senders of a JSON output, sorted.
fn senders(run: &Run) -> Vec<String> {
    let mut senders: Vec<String> = run
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["sender"].as_str().map(str::to_string))
        .collect();
    senders.sort();
    senders
}

/// The senders of `mco ping -j -v ARGS`, sorted, and its run.
fn ping(fleet: &Fleet, args: &[&str]) -> (Vec<String>, Run) {
    let mut all = vec!["ping", "-j", "-v"];
    all.extend_from_slice(args);
    let run = fleet.mco(&all);
    assert_eq!(run.code, Some(0), "{run:?}");
    (senders(&run), run)
}

/// Asserts that `run` (an `mco rpc ... -v`) named `identity` as not answering, and that
/// discovery ended with the adaptive window rather than the discovery timeout.
fn missing_after_the_window(run: &Run, identity: &str) {
    assert_eq!(run.code, Some(2), "{run:?}");
    let no_response = run
        .stdout
        .split("No response from:")
        .nth(1)
        .unwrap_or_else(|| panic!("no no-response list: {run:?}"));
    assert!(no_response.contains(identity), "{run:?}");
    assert!(
        run.stderr
            .contains("Discovery ended: no new replies within the window"),
        "not the window but: {}",
        run.stderr
    );
}

/// Starts `spec` in `fleet` and waits until broadcast discovery hears it.
fn join(fleet: &mut Fleet, spec: NodeSpec) {
    let identity = spec.identity.clone();
    let brokers = fleet.nats.url();
    fleet
        .nodes
        .push(Mcod::start(spec, &brokers, Some(&fleet.keys)));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    // An identity filter is another question than the tests', so it leaves their cache be.
    while !senders(&fleet.mco(&["ping", "-j", "-I", &identity])).contains(&identity) {
        assert!(
            std::time::Instant::now() < deadline,
            "{identity} never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_150_ms_away_is_found_whether_or_not_it_is_expected() {
    let nats = NatsServer::start();
    let far = DelayProxy::start(nats.port(), DELAY);
    let fleet = Fleet::start_on(
        nats,
        vec![web("near1"), web("near2"), web("far").through(&far.url())],
        "",
    );
    let all = ["far", "near1", "near2"];

    // Nothing expected: the adaptive window's floor outlasts the delay.
    let (found, run) = ping(&fleet, &["-W", "role=web"]);
    assert_eq!(found, all, "{run:?}");
    assert!(run.stderr.contains("(nothing expected)"), "{}", run.stderr);

    // Expected, from the cache the first discovery wrote: discovery waits for it.
    let (found, run) = ping(&fleet, &["-W", "role=web"]);
    assert_eq!(found, all, "{run:?}");
    assert!(
        run.stderr.contains("all 3 expected nodes answered")
            && run.stderr.contains("the discovery cache"),
        "{}",
        run.stderr
    );
    let far_ms = run
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["sender"] == "far")
        .and_then(|r| r["time_ms"].as_f64())
        .unwrap_or(0.0);
    assert!(
        far_ms >= DELAY.as_millis() as f64,
        "the proxy did not delay far: {far_ms} ms"
    );

    // `mco rpc` with broadcast discovery reaches it too.
    let run = fleet.mco(&["rpc", "rpcutil", "ping", "-W", "role=web", "-j"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(senders(&run), all);
}

#[test]
fn nodes_that_joined_since_the_cache_are_found_and_a_cached_node_that_is_down_is_reported() {
    let nats = NatsServer::start();
    let far = DelayProxy::start(nats.port(), DELAY);
    let mut fleet = Fleet::start_on(nats, vec![web("web1"), web("web2")], "");
    let (found, _) = ping(&fleet, &["-W", "role=web"]);
    assert_eq!(found, ["web1", "web2"]);

    // A node 150 ms away joins: the cache does not expect it, but the broker now knows one
    // node more than when the cache was written, so discovery does not end early.
    join(&mut fleet, web("far").through(&far.url()));
    let (found, run) = ping(&fleet, &["-W", "role=web"]);
    assert_eq!(found, ["far", "web1", "web2"], "{run:?}");
    assert!(
        run.stderr.contains("another number of nodes"),
        "{}",
        run.stderr
    );

    // A near node joins: heard within the grace, unexpected, so the window is kept.
    join(&mut fleet, web("web3"));
    let (found, run) = ping(&fleet, &["-W", "role=web"]);
    assert_eq!(found, ["far", "web1", "web2", "web3"], "{run:?}");

    // One the cache expects is down: named as not answering, after the window.
    let rpc = ["rpc", "rpcutil", "ping", "-W", "role=web", "-v"];
    assert_eq!(fleet.mco(&rpc).code, Some(0));
    fleet.node("web2").kill();
    let run = fleet.mco(&rpc);
    missing_after_the_window(&run, "web2");
    // Having been silent, it is not expected again: the next discovery ends early.
    let run = fleet.mco(&rpc);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains("all 3 expected nodes answered"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_cached_node_slower_than_the_floor_is_waited_for_as_long_as_it_took_before() {
    let nats = NatsServer::start();
    let far = DelayProxy::start(nats.port(), DELAY);
    let mut fleet = Fleet::start_on(
        nats,
        vec![web("near1"), web("near2"), web("far").through(&far.url())],
        "",
    );
    let all = ["far", "near1", "near2"];
    // The default floor (200 ms) outlasts the delay: the cache records far and its 150 ms.
    let (found, _) = ping(&fleet, &["-W", "role=web"]);
    assert_eq!(found, all);

    // The same client with a floor below far's delay (a setting for a fast network): with
    // far silent after the near replies, the floor and 1.5 x the latest reply would end
    // discovery at 50 ms; 1.5 x what the cached set took last time keeps it open for far.
    let quick = fleet.client_config().with_file_name("quick.toml");
    let config = std::fs::read_to_string(fleet.client_config())
        .unwrap_or_else(|e| panic!("client config: {e}"));
    std::fs::write(&quick, format!("{config}discovery_floor_ms = 50\n"))
        .unwrap_or_else(|e| panic!("{}: {e}", quick.display()));
    let limit = Duration::from_secs(30);
    let run = mco(&quick, &["ping", "-j", "-v", "-W", "role=web"], limit);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(senders(&run), all, "{run:?}");
    assert!(
        run.stderr.contains("all 3 expected nodes answered"),
        "{}",
        run.stderr
    );

    // Down, it costs that wait, not the discovery timeout, and is named. (The call's filter
    // names its agent, another question: the default floor first records far for it.)
    let rpc = ["rpc", "rpcutil", "ping", "-W", "role=web", "-v"];
    let run = fleet.mco(&rpc);
    assert_eq!(run.code, Some(0), "{run:?}");
    fleet.node("far").kill();
    let run = mco(&quick, &rpc, limit);
    missing_after_the_window(&run, "far");
}

#[test]
fn a_fixed_window_can_be_configured_and_keeps_no_cache() {
    let fleet = Fleet::start_with_client_config(
        vec![web("web1"), web("web2")],
        "discovery_end = \"window\"\ndiscovery_window_ms = 100",
    );
    for _ in 0..2 {
        let (found, run) = ping(&fleet, &["-W", "role=web"]);
        assert_eq!(found, ["web1", "web2"]);
        assert!(
            run.stderr.contains("(discovery_end = window)"),
            "{}",
            run.stderr
        );
    }
    let cache = fleet.client_config().with_file_name("cache");
    assert!(!cache.exists(), "{} was written", cache.display());
}
