//! The registry discovery method end to end: the five-node fleet registers every second
//! (signed), a real `mcod registry` stores the registrations in SQLite or in a real
//! PostgreSQL started by the test, and `mco ... --dm registry` finds exactly what a broadcast
//! finds, for every kind of filter, reaches those nodes with direct requests, refuses what
//! only live nodes can answer, forgets nodes that stop registering, and ignores forged
//! registrations.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mco_testsupport::{Broker, Fleet, Postgres, RegistryService, Run};

/// Nodes register every second, starting at once.
pub(crate) const FAST_REGISTRATION: &str =
    "[registration]\ninterval_seconds = 1\nsplay_seconds = 0\n";

const ALL: [&str; 5] = ["db1", "db2", "web1", "web2", "web3"];

/// Filters of every kind; broadcast and registry discovery must agree on each.
const FILTERS: &[&[&str]] = &[
    &[],
    &["-F", "country=uk"],
    &["-F", "cpus>=8"],
    &["-F", "os.family=/deb/i"],
    &["-F", "os.release.major=12", "-F", "load<2"],
    &["-C", "role::db"],
    &["-C", "/web/"],
    &["-I", "/^web/"],
    &["-I", "db1", "-I", "web3"],
    &["-A", "rpcutil"],
    &["-A", "nope"],
    &["-W", "country=uk role::web"],
    &["-S", "(country=uk and /web/) or not os.family=debian"],
    &["-S", "cpus>4 and !backup"],
    &["-S", "load>=1.5 or country=fr"],
    &["-S", "os.family=/^deb/ and not (cpus<=2 or role::db)"],
    &["-T", "eu"],
    &["-T", "uk", "-F", "cpus<8"],
    &["-T", "eu", "-S", "role::web or cpus>10"],
];

/// A registry service's configuration: the fleet's broker, every collective, the fleet's
/// issuer, and a server token of its own.
pub(crate) fn registry_config<B: Broker>(fleet: &Fleet<B>, dir: &Path) -> PathBuf {
    let (key, token) = fleet.keys.issue("server", "registry", &[]);
    let path = dir.join("registry.toml");
    std::fs::write(
        &path,
        format!(
            "identity = \"registry\"\nbrokers = {:?}\ncollectives = [\"mco\", \"uk\", \"eu\"]\nissuer_keys = [{:?}]\nkey_file = {:?}\ntoken_file = {:?}\nstate_dir = {:?}\n",
            fleet.nats.urls(),
            fleet.keys.issuer_pub().display().to_string(),
            key.display().to_string(),
            token.display().to_string(),
            dir.join("state").display().to_string(),
        ),
    )
    .unwrap();
    path
}

pub(crate) fn find<B: Broker>(fleet: &Fleet<B>, url: &str, filter: &[&str]) -> Run {
    let do_url = format!("url={url}");
    let mut args = vec!["find", "--dm", "registry", "--do", &do_url];
    args.extend_from_slice(filter);
    fleet.mco(&args)
}

pub(crate) fn lines(run: &Run) -> Vec<&str> {
    run.stdout.lines().collect()
}

/// Waits until registry discovery finds exactly `want`; panics with the service's log.
pub(crate) fn wait_for_registry<B: Broker>(
    fleet: &Fleet<B>,
    service: &RegistryService,
    want: &[&str],
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = find(fleet, service.db(), &[]);
        if lines(&run) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the registry shows {:?}, not {want:?}: {run:?}\nregistry log:\n{}",
            lines(&run),
            service.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// For every filter, `mco find` with the registry finds what a broadcast finds.
fn assert_registry_agrees_with_broadcast(fleet: &Fleet, url: &str) {
    for filter in FILTERS {
        let mut args = vec!["find", "--dm", "broadcast"];
        args.extend_from_slice(filter);
        let broadcast = fleet.mco(&args);
        let registry = find(fleet, url, filter);
        assert_eq!(
            (registry.code, lines(&registry)),
            (broadcast.code, lines(&broadcast)),
            "{filter:?}: registry {registry:?}\nbroadcast {broadcast:?}"
        );
        assert!(
            registry
                .stderr
                .contains("Discovering hosts using the registry method for"),
            "{filter:?}: {}",
            registry.stderr
        );
    }
    // The table is not vacuous: the filters select different, non-empty sets.
    let uk = find(
        fleet,
        url,
        &["-S", "(country=uk and /web/) or not os.family=debian"],
    );
    assert_eq!(lines(&uk), ["db2", "web1", "web2", "web3"]);
}

#[test]
fn registry_on_sqlite_agrees_with_broadcast_and_reaches_the_nodes_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("registry.sqlite").display().to_string();
    let fleet = crate::five_nodes_with(FAST_REGISTRATION, &format!("registry_url = {db:?}"));
    let config = registry_config(&fleet, tmp.path());
    let service = RegistryService::start(&config, &db, 60);
    wait_for_registry(&fleet, &service, &ALL);

    assert_registry_agrees_with_broadcast(&fleet, &db);

    // registry_url in the client configuration stands in for --do url=...
    let run = fleet.mco(&["find", "--dm", "registry", "-F", "country=uk"]);
    assert_eq!(lines(&run), ["db2", "web1", "web2"], "{run:?}");

    // ... and is what a broadcast discovery expects, so it ends when those have answered.
    let run = fleet.mco(&["find", "-v", "-F", "country=uk"]);
    assert_eq!(lines(&run), ["db2", "web1", "web2"], "{run:?}");
    assert!(
        run.stderr
            .contains("all 3 expected nodes answered (expected: the registry's nodes)"),
        "{}",
        run.stderr
    );

    // Requests go straight to the nodes the registry named, with the call's agent as filter.
    let rpc = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "--dm",
        "registry",
        "-F",
        "country=uk",
        "-j",
        "-v",
    ]);
    assert_eq!(rpc.code, Some(0), "{rpc:?}");
    assert_eq!(rpc.senders(), ["db2", "web1", "web2"]);
    assert!(
        rpc.stderr
            .contains("(the registry discovery method gave the node list)"),
        "{}",
        rpc.stderr
    );
    assert!(
        rpc.stderr
            .contains("Discovering hosts using the registry method"),
        "{}",
        rpc.stderr
    );
    let ping = fleet.mco(&["ping", "--dm", "registry", "-T", "eu", "-j"]);
    assert_eq!(ping.code, Some(0), "{ping:?}");
    assert_eq!(ping.senders(), ["db1", "web3"]);
    let facts = fleet.mco(&["facts", "country", "--dm", "registry", "-j"]);
    assert_eq!(facts.code, Some(0), "{facts:?}");
    assert_eq!(
        facts.json(),
        serde_json::json!({"de": ["web3"], "fr": ["db1"], "uk": ["db2", "web1", "web2"]})
    );

    // Data plugins can only be answered by live nodes: refused, never answered "false".
    let refused = fleet.mco(&[
        "find",
        "--dm",
        "registry",
        "-S",
        "fstat('/etc/hosts').size>=1 or country=uk",
    ]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "the registry discovery method cannot use data plugin calls in -S filters (fstat)"
        ),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stdout, "");

    // A database that is not there is named, not mistaken for an empty fleet.
    let missing = tmp.path().join("nope.sqlite").display().to_string();
    let run = find(&fleet, &missing, &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "registry {missing} does not exist: run the registry service"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn forged_and_malformed_registrations_are_counted_and_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("registry.sqlite").display().to_string();
    let fleet = crate::five_nodes_with(FAST_REGISTRATION, "");
    let config = registry_config(&fleet, tmp.path());
    let service = RegistryService::start(&config, &db, 60);
    wait_for_registry(&fleet, &service, &ALL);

    let registration = |identity: &str| mco_spec::registration::Registration {
        identity: identity.into(),
        collectives: vec!["mco".into()],
        facts: serde_json::json!({"country": "xx"}),
        classes: vec![],
        agents: vec!["rpcutil".into()],
        time: mco_spec::message::now_millis(),
    };
    let envelope = mco_spec::registration::RegistrationEnvelope::signed;
    // A real server of the organisation, registering as another node.
    let (key, token) = fleet.keys.issue("server", "mallory", &[]);
    let mallory = mco_keys::read_credentials(&key, &token).unwrap();
    // The client's credentials: right issuer, wrong role.
    let (key, token) = fleet.client_credentials();
    let client = mco_keys::read_credentials(&key, &token).unwrap();
    let bogus: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"protocol\": 42".to_vec(), "malformed"),
        (
            mco_spec::registration::RegistrationEnvelope::unsigned(&registration("evil"))
                .unwrap()
                .to_bytes()
                .unwrap(),
            "not verified: ",
        ),
        (
            envelope(&registration("db1"), &mallory)
                .unwrap()
                .to_bytes()
                .unwrap(),
            "\"db1\" is signed by \"mallory\": a node may only register itself",
        ),
        (
            envelope(&registration("evil"), &client)
                .unwrap()
                .to_bytes()
                .unwrap(),
            "not verified: ",
        ),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        for (payload, _) in &bogus {
            nats.publish("mco.broadcast.agent.registration", payload.clone().into())
                .await
                .unwrap();
        }
        nats.flush().await.unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while service.log().matches("registration rejected").count() < bogus.len() {
        assert!(Instant::now() < deadline, "{}", service.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = service.log();
    for (_, why) in &bogus {
        assert!(log.contains(why), "{why:?} not in\n{log}");
    }
    assert!(log.contains("registration rejected (4 so far)"), "{log}");
    // Nothing of it was stored, and the service carries on.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lines(&find(&fleet, &db, &[])), ALL);
    assert_eq!(
        lines(&find(&fleet, &db, &["-F", "country=xx"])),
        Vec::<&str>::new()
    );
    assert_eq!(lines(&find(&fleet, &db, &["-F", "country=fr"])), ["db1"]);
}

#[test]
fn a_node_that_stops_registering_leaves_registry_discovery_after_expire_after() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("registry.sqlite").display().to_string();
    let mut fleet = crate::five_nodes_with(FAST_REGISTRATION, "");
    let config = registry_config(&fleet, tmp.path());
    let mut service = RegistryService::start(&config, &db, 3);
    wait_for_registry(&fleet, &service, &ALL);

    fleet.node("web3").kill();
    // Within expire-after it is still discovered (its last registration is recent) ...
    let run = find(&fleet, &db, &["-T", "eu"]);
    assert_eq!(lines(&run), ["db1", "web3"], "{run:?}");
    // ... then it is gone, from every collective, and the service deletes it.
    wait_for_registry(&fleet, &service, &["db1", "db2", "web1", "web2"]);
    assert_eq!(lines(&find(&fleet, &db, &["-T", "eu"])), ["db1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !service
        .log()
        .contains("forgot 1 node(s) not heard from for 3 s")
    {
        assert!(Instant::now() < deadline, "{}", service.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Back when it registers again.
    fleet.node("web3").start_again();
    wait_for_registry(&fleet, &service, &ALL);

    // The service stops cleanly on SIGTERM.
    let status = service.stop(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        service.log()
    );
    assert!(
        service.log().contains("mcod registry stopped"),
        "{}",
        service.log()
    );
}

#[test]
fn registry_on_postgres_agrees_with_broadcast_and_a_dead_database_is_one_clear_line() {
    let postgres = Postgres::start();
    let url = postgres.url("postgres");
    let tmp = tempfile::tempdir().unwrap();
    let fleet = crate::five_nodes_with(FAST_REGISTRATION, "");
    let config = registry_config(&fleet, tmp.path());
    let service = RegistryService::start(&config, &url, 60);
    wait_for_registry(&fleet, &service, &ALL);

    assert_registry_agrees_with_broadcast(&fleet, &url);
    let rpc = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "--dm",
        "registry",
        "--do",
        &format!("url={url}"),
        "-C",
        "role::db",
        "-j",
    ]);
    assert_eq!(rpc.code, Some(0), "{rpc:?}");
    assert_eq!(rpc.senders(), ["db1", "db2"]);

    // A database that does not exist is named as such.
    let run = find(&fleet, &postgres.url("nope"), &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("registry postgres://postgres@127.0.0.1:")
            && run.stderr.contains("/nope does not exist"),
        "{}",
        run.stderr
    );

    // With the database gone, mco says so in one line, and the service keeps running.
    let mut postgres = postgres;
    postgres.stop();
    let run = find(&fleet, &url, &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("mco: registry {url}: cannot connect")),
        "{}",
        run.stderr
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !service.log().contains("cannot store the registration") {
        assert!(Instant::now() < deadline, "{}", service.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}
