//! Attacks on what agents and data plugins tell, through real mcod and mco over a real
//! broker: a caller with a valid token tries to make `fstat` read kernel files, devices,
//! FIFOs and files outside the node's `[data] fstat_paths` (directly, through links it made,
//! and in `-S` filters), and to read the broker password and keys with `get_config_item`.
//! Each attempt answers a refusal, the node keeps answering, and SIGTERM still stops it.
//! (Package and service names are attacked in `agents_package.rs` and `agents_service.rs`.)

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use mco_testsupport::{Fleet, Mcod, NatsServer, NodeSpec};
use serde_json::{json, Value};

/// `mco rpc rpcutil get_data source=fstat query=PATH -I f1 -j`: its one reply.
fn fstat_on_f1(fleet: &Fleet, path: &str) -> Value {
    let query = format!("query={path}");
    let run = fleet.mco(&[
        "rpc",
        "rpcutil",
        "get_data",
        "source=fstat",
        &query,
        "-I",
        "f1",
        "-j",
    ]);
    let replies = run.json();
    assert_eq!(
        replies.as_array().map(Vec::len),
        Some(1),
        "fstat {path}: no single reply: {run:?}"
    );
    replies[0].clone()
}

fn assert_refused(reply: &Value, path: &str, why: &str) {
    assert_eq!(reply["statuscode"], 1, "fstat {path}: {reply}");
    let message = reply["statusmsg"].as_str().unwrap_or_default();
    assert!(message.contains(why), "fstat {path}: {message:?}");
    assert_eq!(reply["data"]["md5"], Value::Null, "fstat {path}: {reply}");
    assert_ne!(reply["data"]["present"], true, "fstat {path}: {reply}");
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
}

#[test]
fn fstat_refuses_kernel_files_devices_and_paths_outside_its_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::write(allowed.join("app.conf"), "hello\n").unwrap();
    mkfifo(&allowed.join("fifo"));
    std::os::unix::fs::symlink("/proc/self/pagemap", allowed.join("to-pagemap")).unwrap();
    std::os::unix::fs::symlink("/etc/hosts", allowed.join("to-hosts")).unwrap();
    std::os::unix::fs::symlink("/proc/self", allowed.join("to-proc")).unwrap();
    let mut spec = NodeSpec::new("f1", json!({}), &[]);
    spec.extra_config = format!(
        "[data]\nfstat_paths = [{:?}]\n",
        allowed.display().to_string()
    );
    let mut fleet = Fleet::start(vec![spec]);
    let inside = |name: &str| allowed.join(name).display().to_string();

    let not_permitted = "is not permitted to look at";
    for path in [
        "/proc/self/pagemap".to_string(),
        "/dev/zero".to_string(),
        // Outside the allow list, existing or not.
        "/etc/hosts".to_string(),
        "/etc/no-such-file-mco".to_string(),
        // Links the caller cannot make, but a local user or a package might have.
        inside("to-pagemap"),
        inside("to-hosts"),
        inside("to-proc") + "/pagemap",
        // `..` out of the allowed directory.
        inside("../allowed/../../etc/hosts"),
    ] {
        assert_refused(&fstat_on_f1(&fleet, &path), &path, not_permitted);
    }
    // A FIFO in a permitted place is described, never opened (an open would block).
    let fifo = fstat_on_f1(&fleet, &inside("fifo"));
    assert_eq!(fifo["statuscode"], 0, "{fifo}");
    assert_eq!(
        (&fifo["data"]["type"], &fifo["data"]["md5"]),
        (&json!("fifo"), &Value::Null)
    );
    // What the allow list permits is still answered in full.
    let file = fstat_on_f1(&fleet, &inside("app.conf"));
    assert_eq!(
        file["data"]["md5"], "b1946ac92492d2347c6235b4d2611184",
        "{file}"
    );

    // In a filter (discovery, which no action policy governs) the same refusal is a
    // non-match, and the node goes on answering.
    for filter in [
        "fstat('/proc/self/pagemap').size>0",
        "fstat('/dev/zero').present=true",
    ] {
        let run = fleet.mco(&["rpc", "rpcutil", "ping", "-S", filter]);
        assert_eq!(run.code, Some(1), "{filter}: {run:?}");
        assert!(
            run.stderr.contains("we did not discover any nodes"),
            "{filter}: {}",
            run.stderr
        );
    }
    let ping = fleet.mco(&["rpc", "rpcutil", "ping", "-j"]);
    assert_eq!(ping.senders(), ["f1"], "{ping:?}");

    let status = fleet.node("f1").terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "mcod did not stop on SIGTERM: {status:?}"
    );
}

/// The broker password and URL credentials, and the node's key, never leave the node.
#[test]
fn get_config_item_never_returns_a_secret() {
    const PASSWORD: &str = "s3cret-broker-pw";
    let args: Vec<String> = ["--user", "mco", "--pass", PASSWORD]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let auth = format!("[broker_auth]\nuser = \"mco\"\npassword = \"{PASSWORD}\"");
    let mut by_auth = NodeSpec::new("c1", json!({}), &[]);
    by_auth.extra_config = auth.clone();
    let mut fleet = Fleet::start_on(
        NatsServer::start_with_args(true, &args),
        vec![by_auth],
        &auth,
    );
    // A second node has its credentials in the broker URL too.
    let url = fleet
        .nats
        .url()
        .replacen("nats://", &format!("nats://mco:{PASSWORD}@"), 1);
    let mut by_url = NodeSpec::new("c2", json!({}), &[]);
    by_url.extra_config = auth.clone();
    let by_url = Mcod::start(by_url, &url, Some(&fleet.keys));
    fleet.nodes.push(by_url);
    fleet.wait_for_all(Duration::from_secs(15));
    // Each node's private key, as its key_file holds it.
    let node_keys: Vec<String> = fleet
        .nodes
        .iter()
        .map(|n| {
            let config = std::fs::read_to_string(n.config_path()).unwrap();
            let line = config
                .lines()
                .find(|l| l.starts_with("key_file"))
                .unwrap()
                .to_string();
            let path = line.split('"').nth(1).unwrap().to_string();
            std::fs::read_to_string(path).unwrap().trim().to_string()
        })
        .collect();

    for item in [
        "broker_auth",
        "password",
        "token",
        "key_file",
        "token_file",
        "issuer_keys",
        "broker_auth.password",
        "agents",
        "creds_file",
    ] {
        let arg = format!("item={item}");
        let run = fleet.mco(&["rpc", "rpcutil", "get_config_item", &arg, "-j"]);
        let replies = run.json();
        assert_eq!(replies.as_array().map(Vec::len), Some(2), "{item}: {run:?}");
        for reply in replies.as_array().unwrap() {
            assert_eq!(reply["statuscode"], 4, "{item}: {reply}");
            assert_eq!(
                reply["statusmsg"],
                format!("{item} is not a configuration item this node shares"),
                "{item}: {reply}"
            );
        }
        for secret in node_keys.iter().chain(&[PASSWORD.to_string()]) {
            assert!(
                !run.stdout.contains(secret.as_str()),
                "{item} leaked: {}",
                run.stdout
            );
        }
    }
    let brokers = fleet.mco(&[
        "rpc",
        "rpcutil",
        "get_config_item",
        "item=brokers",
        "-I",
        "c2",
        "-j",
    ]);
    let reply = &brokers.json()[0];
    assert_eq!(
        reply["data"]["value"],
        json!([fleet.nats.url()]),
        "the URL is shown without its user and password: {reply}"
    );
    assert!(!brokers.stdout.contains(PASSWORD), "{}", brokers.stdout);
    let identity = fleet.mco(&[
        "rpc",
        "rpcutil",
        "get_config_item",
        "item=identity",
        "-I",
        "c1",
        "-j",
    ]);
    assert_eq!(identity.json()[0]["data"]["value"], "c1", "{identity:?}");
}
