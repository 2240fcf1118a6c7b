//! Attacks on the fleet, tried as an attacker would: a broker reader and publisher, a caller
//! holding a valid but limited token, against real `nats-server`, real `mcod` and the real
//! `mco`. Each test names the hole it closes (issue 13) and fails without its defence.
//!
//! The attacker's tools are raw NATS connections and the `mco_spec` types, so what is
//! tested is the node's own defence, not the client's good manners.

use std::time::{Duration, Instant};

use futures::StreamExt;
use mco_spec::message::{new_request_id, now_millis};
use mco_spec::security::Credentials;
use mco_spec::{subjects, Filter, Request, RequestEnvelope};
use mco_testsupport::{mco, mco_command, Fleet, NodeSpec};

use crate::raw::{self, signed};
use serde_json::{json, Value};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn credentials(fleet: &Fleet, name: &str, extra: &[&str]) -> Credentials {
    raw::credentials(fleet, "client", name, extra)
}

/// A request as a caller builds it (`raw::request`), with a hostile filter as JSON and a TTL.
fn request(caller: &str, agent: &str, action: &str, filter: Value, ttl: u64) -> Request<'static> {
    let mut request = raw::request(caller, agent, action, Filter::default());
    request.filter = serde_json::from_value(filter).unwrap();
    request.ttl = ttl;
    request
}

/// The audit lines of `node` about request `id`.
fn audited(fleet: &Fleet, node: usize, id: &str) -> Vec<Value> {
    fleet.nodes[node]
        .audit()
        .into_iter()
        .filter(|l| l["request_id"] == id)
        .collect()
}

fn ran(fleet: &Fleet, node: usize, id: &str) -> bool {
    audited(fleet, node, id)
        .iter()
        .any(|l| l["decision"] == "accepted")
}

/// A node's `daemon_stats` counters, read with the real `mco`.
pub(crate) fn daemon_stats(fleet: &Fleet, node: &str) -> Value {
    let run = fleet.mco(&["rpc", "rpcutil", "daemon_stats", "-I", node, "-j"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json()[0]["data"].clone()
}

/// Hole 1: a signed direct request read off one node's subject, republished unchanged on
/// another's, must not run there; nor may a broadcast re-sent directly to a node its filter
/// excluded.
#[test]
fn a_request_read_off_one_node_does_not_run_on_another() {
    let fleet = Fleet::start(vec![
        NodeSpec::new("web1", json!({"country": "uk"}), &[]),
        NodeSpec::new("db1", json!({"country": "fr"}), &[]),
    ]);
    runtime().block_on(async {
        let eavesdropper = async_nats::connect(fleet.nats.url()).await.unwrap();
        let mut direct = eavesdropper.subscribe("mco.node.web1").await.unwrap();
        let mut broadcasts = eavesdropper
            .subscribe("mco.broadcast.agent.rpcutil")
            .await
            .unwrap();
        eavesdropper.flush().await.unwrap();

        // Alice's direct request to web1, as mco sends it.
        let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "web1", "-j"]);
        assert_eq!(run.senders(), ["web1"], "{run:?}");
        let captured = tokio::time::timeout(Duration::from_secs(5), direct.next())
            .await
            .unwrap()
            .unwrap();
        let id = RequestEnvelope::decode(&captured.payload)
            .unwrap()
            .body()
            .unwrap()
            .id
            .into_owned();
        assert!(ran(&fleet, 0, &id));
        // Republished, unchanged and validly signed, on db1's subject and as a broadcast.
        for subject in ["mco.node.db1", "mco.broadcast.agent.rpcutil"] {
            eavesdropper
                .publish(subject, captured.payload.clone())
                .await
                .unwrap();
        }

        // A broadcast for country=uk (web1 only), re-sent directly to db1.
        let filter = json!({"fact": [{"fact": "country", "operator": "==", "value": "uk"}],
                            "class": [], "identity": [], "agent": ["rpcutil"], "compound": []});
        let creds = credentials(&fleet, "alice", &[]);
        let uk_only = request("alice", "rpcutil", "ping", filter, 60);
        eavesdropper
            .publish(
                "mco.broadcast.agent.rpcutil",
                signed(&uk_only, &creds).into(),
            )
            .await
            .unwrap();
        let broadcast = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let m = broadcasts.next().await.unwrap();
                if RequestEnvelope::decode(&m.payload)
                    .ok()
                    .and_then(|e| e.body().ok().map(|r| r.id == uk_only.id))
                    .unwrap_or(false)
                {
                    return m;
                }
            }
        })
        .await
        .unwrap();
        eavesdropper
            .publish("mco.node.db1", broadcast.payload)
            .await
            .unwrap();
        eavesdropper.flush().await.unwrap();

        crate::wait_until(
            "web1 to run the uk broadcast",
            Duration::from_secs(10),
            || ran(&fleet, 0, &uk_only.id),
        );
        // db1 refuses the two copies of web1's request (audited) and ignores the re-sent
        // broadcast (counted as filtered, with the original broadcast: two).
        crate::wait_until(
            "db1 to handle the republished requests",
            Duration::from_secs(20),
            || {
                let refused = audited(&fleet, 1, &id).len() >= 2;
                let filtered = daemon_stats(&fleet, "db1")["filtered"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 2;
                (refused && filtered) || ran(&fleet, 1, &id) || ran(&fleet, 1, &uk_only.id)
            },
        );
        assert!(!ran(&fleet, 1, &id), "db1 ran web1's request");
        assert!(!ran(&fleet, 1, &uk_only.id), "db1 ran a uk-only broadcast");
        let refusals = audited(&fleet, 1, &id);
        assert!(
            refusals.iter().all(|l| l["reason"]
                .as_str()
                .unwrap_or("")
                .contains("not addressed to this node")),
            "{refusals:?}"
        );
    });
}

/// Hole 2: a caller with a token limited to rpcutil floods a node with long-TTL requests; the
/// node must keep serving every other caller, also after a restart, and requests that do
/// not select it must cost it no memory.
#[test]
fn one_caller_cannot_lock_everyone_out_of_a_node() {
    let mut spec = NodeSpec::new("n1", json!({"country": "uk"}), &[]);
    spec.extra_config = "replay_cache_size = 100\nclock_skew_seconds = 1\n".into();
    let mut fleet = Fleet::start(vec![spec]);
    let mallory = credentials(&fleet, "mallory", &["--agents", "rpcutil"]);
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        // A few hundred requests that run, asking for the longest TTL there is.
        for _ in 0..300 {
            let r = request("mallory", "rpcutil", "ping", json!({}), 7 * 24 * 3600);
            nats.publish("mco.broadcast.agent.rpcutil", signed(&r, &mallory).into())
                .await
                .unwrap();
        }
        nats.flush().await.unwrap();
    });
    crate::wait_until("the flood to be handled", Duration::from_secs(30), || {
        let stats = daemon_stats(&fleet, "n1");
        stats["total"].as_u64().unwrap_or(0) >= 300
    });
    let stats = daemon_stats(&fleet, "n1");
    assert!(stats["throttled"].as_u64().unwrap_or(0) > 0, "{stats}");
    // Everyone else is still served, by broadcast and directly, before and after a restart.
    let ping = |fleet: &Fleet| {
        let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "n1", "-j", "-t", "5"]);
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = fleet.mco(&["ping", "--dt", "1", "-j"]);
        assert_eq!(run.senders(), ["n1"], "{run:?}");
    };
    ping(&fleet);
    fleet.nodes[0].kill();
    fleet.nodes[0].start_again();
    fleet.wait_for_all(Duration::from_secs(15));
    ping(&fleet);

    // Broadcasts that do not select the node leave nothing behind: far more than the whole
    // memory, from the caller who then still gets served.
    let alice = credentials(&fleet, "e2e-flood", &[]);
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        let elsewhere = json!({"fact": [{"fact": "country", "operator": "==", "value": "nowhere"}],
                               "class": [], "identity": [], "agent": [], "compound": []});
        for _ in 0..500 {
            let r = request("e2e-flood", "rpcutil", "ping", elsewhere.clone(), 600);
            nats.publish("mco.broadcast.agent.rpcutil", signed(&r, &alice).into())
                .await
                .unwrap();
        }
        let last = request("e2e-flood", "rpcutil", "ping", json!({}), 600);
        let mut replies = nats.subscribe(last.reply_to.to_string()).await.unwrap();
        nats.publish("mco.broadcast.agent.rpcutil", signed(&last, &alice).into())
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(20), replies.next())
            .await
            .expect("the flooding caller's own matching request is answered")
            .unwrap();
        let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(reply["reply"]["statuscode"], 0, "{reply}");
    });
}

/// Hole 3: one broadcast with a hostile filter must neither crash nor exhaust any node;
/// the node refuses it (counted, audited once, no reply), and `mco` gives a clear error for
/// the same input.
#[test]
fn a_hostile_filter_neither_crashes_nor_exhausts_a_node() {
    let mut fleet = Fleet::start(vec![NodeSpec::new("n1", json!({}), &[])]);
    let creds = credentials(&fleet, "alice", &[]);
    let deep = "(".repeat(20_000) + "a=1" + &")".repeat(20_000);
    let regexes: Vec<String> = vec![r"/\w{200}/".to_string(); 40];
    let before = fleet.nodes[0].rss_kb().unwrap();
    let mut ids = Vec::new();
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        for filter in [
            json!({"fact": [], "class": [], "identity": [], "agent": [], "compound": [deep]}),
            json!({"fact": [], "class": regexes, "identity": [], "agent": [], "compound": []}),
        ] {
            for _ in 0..10 {
                let r = request("alice", "rpcutil", "ping", filter.clone(), 60);
                ids.push(r.id.to_string());
                let mut replies = nats.subscribe(r.reply_to.to_string()).await.unwrap();
                nats.publish("mco.broadcast.agent.rpcutil", signed(&r, &creds).into())
                    .await
                    .unwrap();
                nats.flush().await.unwrap();
                let reply = tokio::time::timeout(Duration::from_millis(300), replies.next()).await;
                assert!(reply.is_err(), "a refused filter gets no reply");
            }
        }
    });
    let stats = daemon_stats(&fleet, "n1");
    assert!(fleet.nodes[0].is_running(), "{}", fleet.nodes[0].log());
    assert!(stats["unvalidated"].as_u64().unwrap() >= 20, "{stats}");
    let after = fleet.nodes[0].rss_kb().unwrap();
    assert!(
        after < before + 50 * 1024,
        "resident memory grew from {before} kB to {after} kB"
    );
    for id in &ids {
        let lines = audited(&fleet, 0, id);
        assert_eq!(lines.len(), 1, "{id}: {lines:?}");
        assert!(
            lines[0]["reason"].as_str().unwrap().contains("filter"),
            "{lines:?}"
        );
    }
    // The client refuses the same filters with one clear line.
    let deep = "(".repeat(20_000) + "a=1" + &")".repeat(20_000);
    for args in [
        vec!["ping", "-S", deep.as_str()],
        vec!["ping", "-C", r"/\w{200}/"],
    ] {
        let run = fleet.mco(&args);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("mco:"), "{}", run.stderr);
    }
}

/// Hole 7: a signed request may name any `reply_to`; a node's reply to
/// `$JS.API.STREAM.PURGE.MCO_DIRECT_mco` purged the direct queue. Nodes reply only under the
/// caller's own reply prefix.
#[test]
fn replies_cannot_be_aimed_at_the_broker_api_or_other_callers() {
    let mut fleet = Fleet::start(vec![
        NodeSpec::new("up", json!({}), &[]),
        NodeSpec::new("down", json!({}), &[]),
    ]);
    fleet.node("down").kill();
    // A request queued for the stopped node: what a purge would destroy.
    let queued = fleet.mco(&[
        "rpc", "rpcutil", "ping", "-I", "down", "--nr", "--ttl", "600",
    ]);
    assert_eq!(queued.code, Some(0), "{queued:?}");
    let creds = credentials(&fleet, "alice", &[]);
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(nats.clone());
        let messages = |info: async_nats::jetstream::stream::Info| info.state.messages;
        let mut stream = js.get_stream("MCO_DIRECT_mco").await.unwrap();
        assert_eq!(messages(stream.info().await.unwrap().clone()), 1);
        let mut victims = nats
            .subscribe(format!("{}.>", subjects::reply_prefix("mco", "bob")))
            .await
            .unwrap();
        for target in [
            "$JS.API.STREAM.PURGE.MCO_DIRECT_mco".to_string(),
            subjects::reply("mco", "bob", "injected"),
        ] {
            let mut r = request("alice", "rpcutil", "ping", json!({}), 60);
            r.reply_to = target.into();
            nats.publish("mco.broadcast.agent.rpcutil", signed(&r, &creds).into())
                .await
                .unwrap();
        }
        nats.flush().await.unwrap();
        let injected = tokio::time::timeout(Duration::from_secs(2), victims.next()).await;
        assert!(
            injected.is_err(),
            "a node replied into bob's reply subjects"
        );
        assert_eq!(
            messages(stream.info().await.unwrap().clone()),
            1,
            "the direct queue was purged"
        );
    });
    // The client refuses another caller's reply subject before sending anything.
    let bobs = subjects::reply("mco", "bob", "x");
    let run = fleet.mco(&["rpc", "rpcutil", "ping", "--reply-to", &bobs]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("reply prefix"), "{}", run.stderr);
}

/// Hole 8: refused junk is audited in bounded form and at a bounded rate, and a node whose
/// state directory is full still starts.
fn unvalidated(fleet: &Fleet) -> u64 {
    daemon_stats(fleet, "n1")["unvalidated"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn junk_cannot_fill_the_audit_log_and_a_full_disk_does_not_stop_the_node() {
    let mut fleet = Fleet::start(vec![NodeSpec::new("n1", json!({}), &[])]);
    let before = std::fs::metadata(fleet.nodes[0].dir().join("audit.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        // Unsigned requests of nearly 1 MB each, claiming a caller and carrying junk data.
        for _ in 0..20 {
            let mut r = request("root", "rpcutil", "ping", json!({}), 60);
            r.data
                .insert("junk".into(), Value::String("x".repeat(900_000)));
            let bytes = RequestEnvelope::unsigned(&r).unwrap().to_bytes().unwrap();
            nats.publish("mco.broadcast.agent.rpcutil", bytes.into())
                .await
                .unwrap();
        }
        nats.flush().await.unwrap();
    });
    crate::wait_until(
        "the large junk to be counted",
        Duration::from_secs(30),
        || unvalidated(&fleet) >= 20,
    );
    // And a flood of small junk, far over the refusal rate limit (as broadcasts: the direct
    // queue would keep only its per-node share of junk for n1), in bursts of 500: the node
    // buffers at most daemon::SUBSCRIPTION_CAPACITY unread messages per subscription (a
    // bound on its memory), and what is counted here is what it read.
    for burst in 0..4u64 {
        runtime().block_on(async {
            let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
            for i in 0..500 {
                nats.publish(
                    "mco.broadcast.agent.rpcutil",
                    format!("junk {burst} {i}").into_bytes().into(),
                )
                .await
                .unwrap();
            }
            nats.flush().await.unwrap();
        });
        crate::wait_until("the junk to be counted", Duration::from_secs(30), || {
            unvalidated(&fleet) >= 20 + 500 * (burst + 1)
        });
    }
    // One more refusal a second later passes the gate and reports what was held back.
    std::thread::sleep(Duration::from_millis(1100));
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        nats.publish("mco.node.n1", "late junk".into())
            .await
            .unwrap();
        nats.flush().await.unwrap();
    });
    crate::wait_until("the suppressed line", Duration::from_secs(10), || {
        fleet.nodes[0]
            .audit()
            .iter()
            .any(|l| l["decision"] == "suppressed")
    });
    let grown = std::fs::metadata(fleet.nodes[0].dir().join("audit.log"))
        .unwrap()
        .len()
        - before;
    assert!(grown < 200_000, "the audit log grew by {grown} bytes");
    let lines = fleet.nodes[0].audit();
    let rejected: Vec<&Value> = lines
        .iter()
        .filter(|l| l["decision"] == "rejected")
        .collect();
    assert!(rejected.len() < 200, "{} refusals written", rejected.len());
    assert!(rejected.iter().all(|l| l.get("data").is_none()));
    assert!(rejected
        .iter()
        .any(|l| l["caller"] == "root" && l["size"].as_u64().unwrap_or(0) > 900_000));

    // A full disk under the state directory and the audit log: the node still starts.
    let node = &mut fleet.nodes[0];
    node.kill();
    let mount = node.dir().join("state");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount (this test needs root to mount a small tmpfs)");
    assert!(
        mounted.success(),
        "cannot mount a tmpfs on {}",
        mount.display()
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    std::fs::write(
        mount.join("replay.journal"),
        format!("{} #{:032x}\n", now_millis() + 600_000, 1u128),
    )
    .unwrap();
    let filler = vec![0u8; 64 * 1024];
    let mut fill = std::fs::File::create(mount.join("filler")).unwrap();
    while std::io::Write::write_all(&mut fill, &filler).is_ok() {}
    drop(fill);
    node.start_again();
    fleet.wait_for_all(Duration::from_secs(15));
    let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "n1"]);
    assert_eq!(run.code, Some(0), "{run:?}\n{}", fleet.nodes[0].log());
    assert!(fleet.nodes[0]
        .log()
        .contains("cannot rewrite the replay journal"));
}

/// Hole 11: `mco replies` took any signed reply of any request and any age. It now needs the
/// request id, and a replayed old reply of another request is dropped.
#[test]
fn a_reply_reader_takes_only_the_replies_of_its_own_request() {
    let fleet = Fleet::start(vec![NodeSpec::new("n1", json!({}), &[])]);
    // Capture a real, signed reply of an earlier request.
    let old_reply = runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        let mut replies = nats.subscribe("mco.reply.>").await.unwrap();
        nats.flush().await.unwrap();
        let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "n1"]);
        assert_eq!(run.code, Some(0), "{run:?}");
        tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .unwrap()
            .unwrap()
            .payload
    });
    let without_id = fleet.mco(&["replies", "jobs", "-t", "1"]);
    assert_eq!(without_id.code, Some(64), "a usage error: {without_id:?}");
    assert!(without_id.stderr.contains("--id"), "{}", without_id.stderr);

    let id = new_request_id();
    let started = Instant::now();
    let mut reader = mco_command(
        &fleet.client_config(),
        &[
            "replies", "jobs", "--id", &id, "--count", "1", "-t", "4", "-j",
        ],
    )
    .spawn()
    .unwrap();
    let mut stderr = std::io::BufReader::new(reader.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let subject = line
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        nats.publish(subject, old_reply).await.unwrap();
        nats.flush().await.unwrap();
    });
    let run = mco_testsupport::finish(reader, started, Duration::from_secs(20));
    assert_eq!(run.code, Some(1), "the replayed reply was taken: {run:?}");
    assert_eq!(run.json(), json!([]), "{run:?}");
}

/// Hole 12: a token limited with `--agents` could not discover: `mco ping` showed an empty
/// fleet.
#[test]
fn a_limited_token_discovers_the_fleet() {
    let fleet = Fleet::start(vec![
        NodeSpec::new("a1", json!({"country": "uk"}), &[]),
        NodeSpec::new("a2", json!({"country": "fr"}), &[]),
    ]);
    let (key, token) = fleet
        .keys
        .issue("client", "limited", &["--agents", "rpcutil"]);
    let config = fleet.client_config().with_file_name("limited.toml");
    let text = std::fs::read_to_string(fleet.client_config())
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("key_file") {
                format!("key_file = {:?}", key.display().to_string())
            } else if l.starts_with("token_file") {
                format!("token_file = {:?}", token.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    let run = mco(
        &config,
        &["ping", "-j", "--dt", "1"],
        Duration::from_secs(20),
    );
    let mut seen = run.senders();
    seen.sort();
    assert_eq!(seen, ["a1", "a2"], "{run:?}");
    let run = mco(
        &config,
        &["rpc", "rpcutil", "ping", "-W", "country=uk", "-j"],
        Duration::from_secs(20),
    );
    assert_eq!(run.senders(), ["a1"], "{run:?}");
    // The limit still holds for everything but discovery.
    let run = mco(
        &config,
        &[
            "rpc",
            "service",
            "status",
            "service=ssh",
            "-I",
            "a1",
            "-t",
            "2",
        ],
        Duration::from_secs(20),
    );
    assert_ne!(run.code, Some(0), "{run:?}");
}

/// Hole 4 (the daemon's side): a filter's data-plugin calls ran on the daemon's request
/// threads, so a service manager that hangs (`service('x').status`) made the node deaf to
/// everyone. They now run on blocking threads within `[data] timeout_seconds`, and a node
/// with hung calls still stops on SIGTERM.
#[test]
fn a_hanging_data_plugin_neither_blocks_nor_wedges_the_node() {
    use std::os::unix::fs::PermissionsExt;
    let init = tempfile::tempdir().unwrap();
    let script = init.path().join("mco-e2e-hang");
    // A service whose status never answers, as a wedged service manager does.
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in status) sleep 60 ;; *) exit 1 ;; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = NodeSpec::new("n1", json!({}), &[]);
    spec.extra_config = format!(
        "[data]\ntimeout_seconds = 2\n[agents.service]\nprovider = \"sysv\"\ninit_dir = {:?}\n",
        init.path().display().to_string()
    );
    let mut fleet = Fleet::start(vec![spec]);
    let creds = credentials(&fleet, "alice", &[]);
    let hung = json!({"fact": [], "class": [], "identity": [], "agent": [],
                      "compound": ["service('mco-e2e-hang').status=running"]});
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        for _ in 0..12 {
            let r = request("alice", "rpcutil", "ping", hung.clone(), 60);
            nats.publish("mco.broadcast.agent.rpcutil", signed(&r, &creds).into())
                .await
                .unwrap();
        }
        nats.flush().await.unwrap();
    });
    // While those hang, the node answers everyone else within the usual time.
    for _ in 0..3 {
        let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "n1", "-t", "3"]);
        assert_eq!(run.code, Some(0), "{run:?}\n{}", fleet.nodes[0].log());
    }
    let run = fleet.mco(&["ping", "--dt", "2", "-j"]);
    assert_eq!(run.senders(), ["n1"], "{run:?}");
    // The hung filter selects nothing, and SIGTERM still stops the daemon.
    let filtered = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "-S",
        "service('mco-e2e-hang').status=running",
        "--dt",
        "4",
        "-t",
        "4",
    ]);
    assert_eq!(filtered.code, Some(1), "{filtered:?}");
    let status = fleet.nodes[0].terminate(Duration::from_secs(20));
    assert!(status.is_some(), "mcod did not stop on SIGTERM");
}

/// Hole 10: policy rules with data plugins were decided without the node's data, so
/// `deny * * fstat('/etc/x').present=true` never matched and `not fstat(...)` inverted.
/// They are now decided with it, and a rule that cannot be decided fails closed. Accepted
/// requests are audited with the rule that allowed them, their secret inputs redacted.
#[test]
fn policies_with_data_plugins_are_decided_and_fail_closed() {
    let marks = tempfile::tempdir().unwrap();
    let marker = marks.path().join("maintenance");
    let node = |id: &str, policy: &str, fstat_paths: &str| {
        let policies = marks.path().join(format!("policies-{id}"));
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(policies.join("rpcutil.policy"), policy).unwrap();
        let mut spec = NodeSpec::new(id, json!({"country": "uk"}), &[]);
        spec.extra_config = format!(
            "policy_dir = {:?}\naudit_redact = [\"fact\"]\n[data]\nfstat_paths = {fstat_paths}\n",
            policies.display().to_string()
        );
        spec
    };
    let dir = format!("[{:?}]", marks.path().display().to_string());
    let m = marker.display().to_string();
    let fleet = Fleet::start(vec![
        // Allowed unless the node is in maintenance.
        node(
            "unless",
            &format!("policy default deny\nallow\t*\t*\tnot fstat('{m}').present=true\n"),
            &dir,
        ),
        // Denied while in maintenance.
        node(
            "deny",
            &format!("policy default allow\ndeny\t*\tping get_fact\tfstat('{m}').present=true\n"),
            &dir,
        ),
        // The same rule where fstat may not look: it cannot be decided, so it denies.
        node(
            "blind",
            &format!("policy default allow\ndeny\t*\tping get_fact\tfstat('{m}').present=true\n"),
            "[]",
        ),
    ]);
    let status = |node: &str| -> (i64, String) {
        let run = fleet.mco(&["rpc", "rpcutil", "ping", "-I", node, "-j"]);
        let reply = &run.json()[0];
        (
            reply["statuscode"].as_i64().unwrap_or(-1),
            reply["statusmsg"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(status("unless").0, 0);
    assert_eq!(status("deny").0, 0);
    assert_eq!(status("blind").0, 1, "an undecidable deny rule must deny");
    std::fs::write(&marker, "").unwrap();
    let (code, message) = status("unless");
    assert_eq!(code, 1, "maintenance must stop the allow rule: {message}");
    assert!(message.contains("not authorized"), "{message}");
    assert_eq!(
        status("deny").0,
        1,
        "maintenance must make the deny rule apply"
    );

    // Accepted requests name their rule and hide inputs named like secrets.
    std::fs::remove_file(&marker).unwrap();
    let run = fleet.mco(&[
        "rpc",
        "rpcutil",
        "get_fact",
        "fact=country",
        "-I",
        "unless",
        "-j",
    ]);
    assert_eq!(run.json()[0]["data"]["value"], "uk", "{run:?}");
    let lines = fleet.nodes[0].audit();
    let accepted = lines
        .iter()
        .rev()
        .find(|l| l["decision"] == "accepted" && l["action"] == "get_fact")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        accepted["rule"]
            .as_str()
            .unwrap_or("")
            .ends_with("rpcutil.policy:2"),
        "{accepted}"
    );
    assert_eq!(accepted["data"]["fact"], "[redacted]", "{accepted}");
}

/// `spec/PROTOCOL.md` is exact enough for an independent implementation: a Python client
/// written from it alone signs and targets a request that real nodes accept and run, and
/// the copy for one node is refused by the other.
#[test]
fn a_client_written_from_protocol_md_in_python_is_understood() {
    let python =
        mco_testsupport::require_program("python3", "apt-get install python3 python3-cryptography");
    let fleet = Fleet::start(vec![
        NodeSpec::new("py1", json!({}), &[]),
        NodeSpec::new("py2", json!({}), &[]),
    ]);
    let (key, token) = fleet.keys.issue("client", "pyclient", &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/python/sign_request.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&key)
        .arg(&token)
        .args(["mco", "rpcutil", "ping", "py1", "py2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python client failed (pip install cryptography?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copies: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(copies.len(), 2);
    runtime().block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        let reply_to = copies[0]["reply_to"].as_str().unwrap().to_string();
        let mut replies = nats.subscribe(reply_to).await.unwrap();
        nats.flush().await.unwrap();
        for copy in &copies {
            let node = copy["node"].as_str().unwrap();
            let envelope = copy["envelope"].as_str().unwrap().to_string();
            nats.publish(format!("mco.node.{node}"), envelope.into())
                .await
                .unwrap();
        }
        // py1's copy, sent to py2, proves nothing for py2.
        let py1_copy = copies[0]["envelope"].as_str().unwrap().to_string();
        nats.publish("mco.node.py2", py1_copy.into()).await.unwrap();
        nats.flush().await.unwrap();
        let mut senders = Vec::new();
        while senders.len() < 2 {
            let message = tokio::time::timeout(Duration::from_secs(10), replies.next())
                .await
                .expect("both nodes answer the Python client")
                .unwrap();
            let reply: Value = serde_json::from_slice(&message.payload).unwrap();
            assert_eq!(reply["reply"]["statuscode"], 0, "{reply}");
            senders.push(reply["reply"]["sender"].as_str().unwrap().to_string());
        }
        senders.sort();
        assert_eq!(senders, ["py1", "py2"]);
        let extra = tokio::time::timeout(Duration::from_secs(1), replies.next()).await;
        assert!(extra.is_err(), "py2 answered py1's copy");
    });
}

/// Hole 4 (what filters reveal): discovery is exempt from action policies, so a node decides
/// which data plugins callers' filters may ask: a plugin outside `[data] filter_plugins` is
/// unknown there, and the node never matches a filter that depends on it.
#[test]
fn a_node_decides_what_callers_filters_may_ask_it() {
    let mut closed = NodeSpec::new("closed", json!({"role": "db"}), &[]);
    closed.extra_config = "[data]\nfilter_plugins = [\"fact\"]\n".into();
    let fleet = Fleet::start(vec![
        NodeSpec::new("open", json!({"role": "db"}), &[]),
        closed,
    ]);
    let find = |filter: &str| {
        let run = fleet.mco(&["find", "-S", filter, "--dt", "2"]);
        let mut found: Vec<String> = run.stdout.lines().map(str::to_string).collect();
        found.sort();
        found
    };
    assert_eq!(find("fact('role').value=db"), ["closed", "open"]);
    assert_eq!(find("fstat('/etc/hostname').present=true"), ["open"]);
    // Negating an unanswered call does not select the node either.
    assert_eq!(
        find("not fstat('/etc/hostname').present=true"),
        Vec::<String>::new()
    );
    assert_eq!(find("agent('rpcutil').present=true"), ["open"]);
}
