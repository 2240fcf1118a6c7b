//! The broker locked down with `mco broker config`: a real nats-server runs the generated
//! permissions (JetStream on), `mco broker setup` makes the streams and consumers as the
//! admin, real mcod daemons and the real `mco` connect with their own nkeys. Everything still
//! works (ping, broadcast and queued direct requests, registration), and every attack that
//! works on an open broker fails: each is run against an open broker too, in the same test,
//! to show that it would succeed there.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mco_testsupport::{mco, Fleet, NatsServer, NodeSpec, RegistryService};
use mco_transport::{consumer_name, inbox_prefix, stream_name, BrokerRole};
use serde_json::json;

use crate::wait_until;

/// Nodes register every second, starting at once.
const FAST_REGISTRATION: &str = "[registration]\ninterval_seconds = 1\nsplay_seconds = 0\n";

/// The nodes of both fleets.
const NODES: [&str; 3] = ["web1", "web2", "db1.example.net"];

/// Ten requests per node: small enough to fill in a test.
const PER_NODE: &str = "max_msgs_per_subject = 10\n";

/// A test-only user with every right, for watching what passes through the broker.
const OBSERVER: &str = "{ user: \"observer\", password: \"observer-secret\" }";

/// Runs `mco broker setup` as the admin; its output.
fn run_setup(admin: &Path, users: &Path) -> String {
    let users = users.display().to_string();
    let setup = mco(
        admin,
        &["broker", "setup", "--users", &users],
        Duration::from_secs(30),
    );
    assert_eq!(setup.code, Some(0), "{setup:?}");
    setup.stdout
}

/// The open fleet (today's default) or the locked-down one.
struct Broker {
    fleet: Fleet,
    /// The nkey seed of each user, by (role, name); empty on the open broker.
    seeds: Vec<((BrokerRole, String), PathBuf)>,
    dir: tempfile::TempDir,
    locked: bool,
}

fn mco_ok(args: &[&str]) -> String {
    let run = mco(Path::new("/dev/null"), args, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "mco {args:?}: {run:?}");
    run.stdout
}

impl Broker {
    /// The open broker: no users, no permissions; nodes make the stream and consumers.
    fn open() -> Broker {
        let specs = NODES
            .iter()
            .map(|id| node_spec(id, &format!("[direct_queue]\n{PER_NODE}")))
            .collect();
        Broker {
            fleet: Fleet::start(specs),
            seeds: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            locked: false,
        }
    }

    /// The locked-down broker: an nkey per node, caller (`e2e`, the fleet's, and `mallory`),
    /// registry service and admin; the generated permissions; the admin's setup.
    fn locked() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let mut users = String::new();
        let mut seeds = Vec::new();
        let mut everyone: Vec<(BrokerRole, String)> = NODES
            .iter()
            .map(|n| (BrokerRole::Node, n.to_string()))
            .collect();
        everyone.extend([
            (BrokerRole::Client, "e2e".to_string()),
            (BrokerRole::Client, "mallory".to_string()),
            (BrokerRole::Registry, "registry".to_string()),
            (BrokerRole::Admin, "admin".to_string()),
        ]);
        for (role, name) in everyone {
            let seed = dir.path().join(format!("{role}-{name}.nk"));
            let flag = format!("--{role}");
            let line = mco_ok(&[
                "broker",
                "nkey",
                "--out",
                &seed.display().to_string(),
                &flag,
                &name,
            ]);
            users.push_str(&line);
            seeds.push(((role, name), seed));
        }
        let users_file = dir.path().join("users.txt");
        std::fs::write(&users_file, &users).unwrap();
        let users_arg = users_file.display().to_string();
        let block = mco_ok(&["broker", "config", "--users", &users_arg]);
        let config = block.replacen(
            "  users = [\n",
            &format!("  users = [\n    {OBSERVER}\n"),
            1,
        );
        assert_ne!(config, block, "the block has a users list: {block}");
        let nats = NatsServer::start_with_config(&config);

        let seed_of = |role, name| {
            seed_in(&seeds, role, name)
                .map(|p| p.display().to_string())
                .unwrap()
        };
        // The admin's client configuration: brokers, its nkey, the queue's settings.
        let admin = dir.path().join("admin.toml");
        std::fs::write(
            &admin,
            format!(
                "brokers = [{:?}]\n[broker_auth]\nnkey_seed_file = {:?}\n[direct_queue]\n{PER_NODE}",
                nats.url(),
                seed_of(BrokerRole::Admin, "admin")
            ),
        )
        .unwrap();
        assert_eq!(
            run_setup(&admin, &users_file),
            "mco: created stream MCO_DIRECT_mco; 3 node consumers ready\nmco: event history stream MCO_EVENTS_mco ready\n"
        );

        let specs = NODES
            .iter()
            .map(|id| {
                node_spec(
                    id,
                    &format!(
                        "[broker_auth]\nnkey_seed_file = {:?}\n[direct_queue]\nprovisioned = true\n",
                        seed_of(BrokerRole::Node, id)
                    ),
                )
            })
            .collect();
        let client_auth = format!(
            "[broker_auth]\nnkey_seed_file = {:?}\n",
            seed_of(BrokerRole::Client, "e2e")
        );
        let fleet = Fleet::start_on(nats, specs, &client_auth);
        Broker {
            fleet,
            seeds,
            dir,
            locked: true,
        }
    }

    fn seed(&self, role: BrokerRole, name: &str) -> Option<&Path> {
        seed_in(&self.seeds, role, name)
    }

    /// A raw connection as `role` `name` would make it (its nkey, its inbox), recording the
    /// broker's permission errors.
    async fn connect_as(&self, role: BrokerRole, name: &str) -> Raw {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let recorder = errors.clone();
        let mut options = async_nats::ConnectOptions::new()
            .custom_inbox_prefix(inbox_prefix(role, name))
            .event_callback(move |event| {
                let recorder = recorder.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        recorder.lock().unwrap().push(e.to_string());
                    }
                }
            });
        if let Some(seed) = self.seed(role, name) {
            let seed = std::fs::read_to_string(seed).unwrap();
            options = options.nkey(seed.trim().to_string());
        }
        let nats = options.connect(self.fleet.nats.url()).await.unwrap();
        Raw { nats, errors }
    }

    /// A connection that sees everything (the test's observer user on the locked broker).
    async fn observer(&self) -> async_nats::Client {
        let mut options = async_nats::ConnectOptions::new();
        if self.locked {
            options = options.user_and_password("observer".into(), "observer-secret".into());
        }
        options.connect(self.fleet.nats.url()).await.unwrap()
    }

    /// Queues a request for `node` (which is down) with `mco rpc --nr`; its id.
    fn queue_for(&self, node: &str) -> String {
        crate::direct::send_no_wait(
            &self.fleet,
            &["rpcutil", "ping", "-I", node, "--ttl", "300"],
        )
    }

    /// The messages in the direct-request stream and whether `node`'s consumer exists.
    async fn queue_state(&self, node: &str) -> (Option<u64>, bool) {
        let js = async_nats::jetstream::new(self.observer().await);
        let Ok(mut stream) = js.get_stream(stream_name("mco")).await else {
            return (None, false);
        };
        let messages = stream.info().await.ok().map(|i| i.state.messages);
        let consumer = stream.consumer_info(consumer_name(node)).await.is_ok();
        (messages, consumer)
    }
}

/// The seed file of `role` `name` among `seeds`.
fn seed_in<'a>(
    seeds: &'a [((BrokerRole, String), PathBuf)],
    role: BrokerRole,
    name: &str,
) -> Option<&'a Path> {
    seeds
        .iter()
        .find(|((r, n), _)| *r == role && n == name)
        .map(|(_, p)| p.as_path())
}

fn node_spec(id: &str, extra: &str) -> NodeSpec {
    let mut spec = NodeSpec::new(id, json!({"role": "test"}), &[]);
    spec.extra_config = format!("{FAST_REGISTRATION}{extra}");
    spec
}

/// A raw attacker connection and the permission errors the broker sent it.
struct Raw {
    nats: async_nats::Client,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Raw {
    /// Whether the broker refused this connection `what` (publish, subscription) on `subject`.
    async fn refused(&self, what: &str, subject: &str) -> bool {
        // The error comes back before the answer to a round trip that follows it.
        let _ = self.nats.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.nats.flush()).await;
        let want = format!("Permissions Violation for {what} to \"{subject}\"");
        self.errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains(&want))
    }
}

/// A request to the JetStream API; its answer, if one comes within a second (a request the
/// broker refuses is dropped without one).
async fn ask(nats: &async_nats::Client, subject: &str, body: String) -> Option<String> {
    let asked = nats.request(subject.to_string(), body.into());
    match tokio::time::timeout(Duration::from_secs(1), asked).await {
        Ok(Ok(answer)) => Some(String::from_utf8_lossy(&answer.payload).into_owned()),
        _ => None,
    }
}

/// Messages arriving on `subscriber` within `window`.
async fn drain(
    subscriber: &mut async_nats::Subscriber,
    window: Duration,
) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, subscriber.next()).await {
        got.push(m);
    }
    got
}

#[test]
fn a_fleet_works_under_the_generated_broker_permissions() {
    let mut broker = Broker::locked();
    let fleet = &broker.fleet;
    let mut want: Vec<&str> = NODES.to_vec();
    want.sort();
    assert_eq!(fleet.ping(), want);
    // A broadcast with a filter, answered by every node.
    let run = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "-F",
        "role=test",
        "-j",
        "--dt",
        "1",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.senders(), want);
    // The nodes' events, from the history stream `mco broker setup` made, read through the
    // client's own consumer.
    let count = NODES.len().to_string();
    let started = fleet.mco(&[
        "events",
        "--since",
        "10m",
        "--type",
        "node.started",
        "--count",
        &count,
        "--for",
        "15",
        "-j",
    ]);
    assert_eq!(started.code, Some(0), "{started:?}");
    let mut from: Vec<String> = started
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["identity"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    from.sort();
    from.dedup();
    assert_eq!(from, want, "{started:?}");
    // Direct requests, through the queue, to a node with dots in its name too.
    let run = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "-I",
        "web1",
        "-I",
        "db1.example.net",
        "-v",
        "-j",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.senders(), ["db1.example.net", "web1"]);
    assert!(run.stderr.contains("queued in JetStream"), "{}", run.stderr);
    // A request queued while its node is down runs when it comes back.
    broker.fleet.node("web2").kill();
    let id = broker.queue_for("web2");
    broker.fleet.node("web2").start_again();
    let web2 = broker.fleet.node("web2");
    wait_until(
        "web2 to run its queued request",
        Duration::from_secs(30),
        || {
            web2.audit()
                .iter()
                .any(|a| a["request_id"] == id.as_str() && a["decision"] == "accepted")
        },
    );
    assert!(
        !web2.log().contains("Permissions Violation"),
        "{}",
        web2.log()
    );

    // A node whose consumer is gone says what to run, and takes requests once it has run.
    broker.fleet.node("web2").kill();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deleted = runtime.block_on(async {
        let admin = broker.connect_as(BrokerRole::Admin, "admin").await;
        let subject = format!(
            "$JS.API.CONSUMER.DELETE.{}.{}",
            stream_name("mco"),
            consumer_name("web2")
        );
        ask(&admin.nats, &subject, String::new()).await
    });
    assert!(deleted.is_some_and(|a| a.contains("\"success\":true")));
    broker.fleet.node("web2").start_again();
    let web2 = broker.fleet.node("web2");
    wait_until(
        "web2 to say what is missing",
        Duration::from_secs(20),
        || {
            web2.log().contains(&format!(
            "consumer {} on stream MCO_DIRECT_mco does not exist; create it with `mco broker setup`",
            consumer_name("web2")
        ))
        },
    );
    assert_eq!(
        run_setup(
            &broker.dir.path().join("admin.toml"),
            &broker.dir.path().join("users.txt")
        ),
        "mco: updated stream MCO_DIRECT_mco; 3 node consumers ready\nmco: event history stream MCO_EVENTS_mco ready\n"
    );
    wait_until(
        "web2 to take direct requests",
        Duration::from_secs(30),
        || {
            broker
                .fleet
                .mco(&["rpc", "rpcutil", "ping", "-I", "web2", "-t", "2"])
                .code
                == Some(0)
        },
    );

    // Registrations reach a registry service that has its own user.
    let registry_config = broker.dir.path().join("registry.toml");
    let (key, token) = broker.fleet.keys.issue("server", "registry", &[]);
    std::fs::write(
        &registry_config,
        format!(
            "identity = \"registry\"\nbrokers = [{:?}]\nissuer_keys = [{:?}]\nkey_file = {:?}\ntoken_file = {:?}\nstate_dir = {:?}\n[broker_auth]\nnkey_seed_file = {:?}\n",
            broker.fleet.nats.url(),
            broker.fleet.keys.issuer_pub().display().to_string(),
            key.display().to_string(),
            token.display().to_string(),
            broker.dir.path().join("state").display().to_string(),
            broker
                .seed(BrokerRole::Registry, "registry")
                .unwrap()
                .display()
                .to_string(),
        ),
    )
    .unwrap();
    let db = broker
        .dir
        .path()
        .join("registry.sqlite")
        .display()
        .to_string();
    let service = RegistryService::start(&registry_config, &db, 60);
    let url = format!("url={db}");
    wait_until(
        "every node in the registry",
        Duration::from_secs(30),
        || {
            let run = broker
                .fleet
                .mco(&["find", "--dm", "registry", "--do", &url]);
            let mut found: Vec<&str> = run.stdout.lines().collect();
            found.sort();
            found == want
        },
    );
    assert!(!service.log().contains("Violation"), "{}", service.log());
    // Nothing the fleet did needed more than its permissions.
    let log = broker.fleet.nats.log();
    assert!(!log.contains("Violation"), "{log}");
}

/// What an attack achieved on one broker.
struct Outcome {
    /// It read, changed or injected what it aimed at.
    succeeded: bool,
    /// The broker refused every one of its steps as a permissions violation.
    refused_by_broker: bool,
}

/// A node (web1) reads another node's (web2's) direct requests: by subscribing to its
/// subject while web2 is up, and through web2's consumer while it is down.
async fn node_reads_another_nodes_requests(broker: &mut Broker) -> Outcome {
    let attacker = broker.connect_as(BrokerRole::Node, "web1").await;
    let subject = "mco.node.web2";
    let mut subscribed = attacker.nats.subscribe(subject).await.unwrap();
    attacker.nats.flush().await.unwrap();
    let run = broker
        .fleet
        .mco(&["rpc", "rpcutil", "ping", "-I", "web2", "-j"]);
    assert_eq!(
        run.senders(),
        ["web2"],
        "web2 gets its request either way: {run:?}"
    );
    let overheard = drain(&mut subscribed, Duration::from_millis(500)).await;
    let refused_subscription = attacker.refused("Subscription", subject).await;

    // Through the consumer: web2 is down, a request waits, web1 pulls it for itself.
    broker.fleet.node("web2").kill();
    let id = broker.queue_for("web2");
    let next = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
        stream_name("mco"),
        consumer_name("web2")
    );
    let inbox = attacker.nats.new_inbox();
    let mut pulled = attacker.nats.subscribe(inbox.clone()).await.unwrap();
    attacker
        .nats
        .publish_with_reply(
            next.clone(),
            inbox,
            r#"{"batch":1,"expires":1000000000}"#.into(),
        )
        .await
        .unwrap();
    let stolen: Vec<_> = drain(&mut pulled, Duration::from_millis(1500))
        .await
        .into_iter()
        .filter(|m| m.payload.windows(id.len()).any(|w| w == id.as_bytes()))
        .collect();
    let refused_pull = attacker.refused("Publish", &next).await;
    // An ephemeral consumer of its own on web2's subject.
    let create = format!("$JS.API.CONSUMER.CREATE.{}", stream_name("mco"));
    let made = ask(
        &attacker.nats,
        &create,
        json!({"stream_name": stream_name("mco"), "config": {"filter_subject": subject, "ack_policy": "explicit"}})
            .to_string(),
    )
    .await
    .is_some_and(|answer| !answer.contains("\"error\""));
    let refused_create = attacker.refused("Publish", &create).await;

    // web2 comes back and still runs the request the attacker could not take (it is
    // handed out again after the ack wait when the attacker pulled it).
    broker.fleet.node("web2").start_again();
    if stolen.is_empty() && !made {
        let web2 = broker.fleet.node("web2");
        wait_until(
            "web2 to run its queued request",
            Duration::from_secs(40),
            || web2.audit().iter().any(|a| a["request_id"] == id.as_str()),
        );
    }
    Outcome {
        succeeded: !overheard.is_empty() || !stolen.is_empty() || made,
        refused_by_broker: refused_subscription && refused_pull && refused_create,
    }
}

/// A client (mallory) reads another client's (e2e's) replies and JetStream acknowledgements.
async fn client_reads_another_clients_replies(broker: &Broker) -> Outcome {
    let attacker = broker.connect_as(BrokerRole::Client, "mallory").await;
    let subjects = [
        format!("{}.>", mco_spec::subjects::reply_prefix("mco", "e2e")),
        format!("{}.>", inbox_prefix(BrokerRole::Client, "e2e")),
        "_INBOX.>".to_string(),
        ">".to_string(),
    ];
    let mut subscriptions = Vec::new();
    for s in &subjects {
        subscriptions.push(attacker.nats.subscribe(s.clone()).await.unwrap());
    }
    attacker.nats.flush().await.unwrap();
    let run = broker
        .fleet
        .mco(&["rpc", "rpcutil", "ping", "-I", "web1", "-j"]);
    assert_eq!(run.senders(), ["web1"], "{run:?}");
    let mut overheard = 0;
    for s in &mut subscriptions {
        overheard += drain(s, Duration::from_millis(300)).await.len();
    }
    let mut refused = true;
    for s in &subjects {
        refused &= attacker.refused("Subscription", s).await;
    }
    Outcome {
        succeeded: overheard > 0,
        refused_by_broker: refused,
    }
}

/// A client and a node try to purge and delete the queue and a consumer while a request
/// waits in it; whether the request is gone.
async fn purge_or_delete_the_queue(broker: &mut Broker, role: BrokerRole, name: &str) -> Outcome {
    // web2 has its consumer (on the open broker it makes it again after an attack)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !broker.queue_state("web2").await.1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "web2 has no consumer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and is down, with a request waiting for it.
    broker.fleet.node("web2").kill();
    broker.queue_for("web2");
    let (before, _) = broker.queue_state("web2").await;
    assert!(before.unwrap_or(0) >= 1, "a request waits: {before:?}");
    let attacker = broker.connect_as(role, name).await;
    let stream = stream_name("mco");
    let targets = [
        format!("$JS.API.STREAM.PURGE.{stream}"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.{}", consumer_name("web2")),
        format!("$JS.API.STREAM.DELETE.{stream}"),
    ];
    let mut refused = true;
    for subject in &targets {
        let _ = ask(&attacker.nats, subject, String::new()).await;
        refused &= attacker.refused("Publish", subject).await;
    }
    // The publish acknowledgement of a direct request aimed at the purge API.
    if role == BrokerRole::Client {
        let _ = attacker
            .nats
            .publish_with_reply("mco.node.web2", targets[0].clone(), "junk".into())
            .await;
    }
    attacker.nats.flush().await.unwrap();
    let (after, consumer) = broker.queue_state("web2").await;
    broker.fleet.node("web2").start_again();
    Outcome {
        succeeded: after.unwrap_or(0) < before.unwrap_or(0) || !consumer,
        refused_by_broker: refused,
    }
}

/// A node publishes requests (a broadcast, a direct request to another node); a client
/// publishes a reply into another caller's call. Whether the observer saw them arrive.
async fn publish_where_it_may_not(broker: &Broker) -> Outcome {
    let observer = broker.observer().await;
    let reply = format!("{}.forged", mco_spec::subjects::reply_prefix("mco", "e2e"));
    let attempts = [
        (
            BrokerRole::Node,
            "web1",
            "mco.broadcast.agent.rpcutil".to_string(),
        ),
        (BrokerRole::Node, "web1", "mco.node.web2".to_string()),
        (BrokerRole::Client, "mallory", reply),
        // Events: a node speaks only for itself, a client not at all.
        (
            BrokerRole::Node,
            "web1",
            mco_spec::subjects::event("mco", "service.state_changed", "web2"),
        ),
        (
            BrokerRole::Client,
            "mallory",
            mco_spec::subjects::event("mco", "node.started", "web1"),
        ),
    ];
    let mut arrived = 0;
    let mut refused = true;
    for (role, name, subject) in attempts {
        let mut watching = observer.subscribe(subject.clone()).await.unwrap();
        observer.flush().await.unwrap();
        let attacker = broker.connect_as(role, name).await;
        attacker
            .nats
            .publish(subject.clone(), "{\"junk\":true}".into())
            .await
            .unwrap();
        attacker.nats.flush().await.unwrap();
        arrived += drain(&mut watching, Duration::from_millis(500)).await.len();
        refused &= attacker.refused("Publish", &subject).await;
    }
    Outcome {
        succeeded: arrived > 0,
        refused_by_broker: refused,
    }
}

#[test]
fn attacks_that_work_on_an_open_broker_fail_under_the_generated_permissions() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for mut broker in [Broker::open(), Broker::locked()] {
        let locked = broker.locked;
        let results = runtime.block_on(async {
            vec![
                (
                    "a node reads another node's requests",
                    node_reads_another_nodes_requests(&mut broker).await,
                ),
                (
                    "a client reads another client's replies",
                    client_reads_another_clients_replies(&broker).await,
                ),
                (
                    "a client purges or deletes the queue",
                    purge_or_delete_the_queue(&mut broker, BrokerRole::Client, "mallory").await,
                ),
                (
                    "a node purges or deletes the queue",
                    purge_or_delete_the_queue(&mut broker, BrokerRole::Node, "web1").await,
                ),
                (
                    "a node sends requests, a client sends replies",
                    publish_where_it_may_not(&broker).await,
                ),
            ]
        });
        for (attack, outcome) in results {
            if locked {
                assert!(!outcome.succeeded, "locked broker: {attack} succeeded");
                assert!(
                    outcome.refused_by_broker,
                    "locked broker: {attack} was not refused as a permissions violation"
                );
            } else {
                assert!(
                    outcome.succeeded,
                    "open broker: {attack} failed, so the test proves nothing"
                );
            }
        }
    }
}

#[test]
fn junk_cannot_fill_the_queue_under_the_generated_permissions() {
    let mut broker = Broker::locked();
    broker.fleet.node("web2").kill();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (ghosts_queued, web2_queued, refused) = runtime.block_on(async {
        let attacker = broker.connect_as(BrokerRole::Client, "mallory").await;
        let js = async_nats::jetstream::new(attacker.nats.clone());
        // Ghost names nobody consumes: the broker does not let a client send to them.
        let mut ghosts = 0;
        for n in 0..20 {
            if let Ok(ack) = js
                .publish(format!("mco.node.ghost{n}"), "junk".into())
                .await
            {
                if tokio::time::timeout(Duration::from_millis(200), ack)
                    .await
                    .is_ok_and(|a| a.is_ok())
                {
                    ghosts += 1;
                }
            }
        }
        let refused = attacker.refused("Publish", "mco.node.ghost0").await;
        // A real node that is down: its share fills, and no further.
        let mut web2 = 0;
        for _ in 0..30 {
            if js
                .publish("mco.node.web2", "junk".into())
                .await
                .unwrap()
                .await
                .is_ok()
            {
                web2 += 1;
            }
        }
        (ghosts, web2, refused)
    });
    assert_eq!(ghosts_queued, 0);
    assert!(
        refused,
        "the ghost publishes were refused as permission violations"
    );
    // The broker logs each refusal (so the clean log of the fleet test means something).
    let log = broker.fleet.nats.log();
    assert!(log.contains("Publish Violation"), "{log}");
    assert_eq!(web2_queued, 10);
    // The other nodes' direct requests still queue and run...
    let run = broker.fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "-I",
        "web1",
        "-I",
        "db1.example.net",
        "-j",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.senders(), ["db1.example.net", "web1"]);
    // ...a request for the flooded node says why it was not queued...
    let full = broker
        .fleet
        .mco(&["rpc", "rpcutil", "ping", "-I", "web2", "-t", "2"]);
    assert_eq!(full.code, Some(1), "{full:?}");
    assert_eq!(
        full.stderr.trim(),
        "mco: no request could be queued: web2: the direct queue for web2 is full (10 waiting)"
    );
    // ...and so does one for a name the broker does not list.
    let ghost = broker
        .fleet
        .mco(&["rpc", "rpcutil", "ping", "-I", "ghost1", "-t", "2"]);
    assert_eq!(ghost.code, Some(1), "{ghost:?}");
    assert!(
        ghost
            .stderr
            .contains("the broker does not let this caller send to mco.node.ghost1"),
        "{ghost:?}"
    );
}
