//! External agents through real mcod and mco: one in plain Python, one written with PyPI's
//! py-mco-agent, one that is not active; a hung agent killed at its timeout while the daemon
//! keeps serving; a failing one reported as status 1; node-side validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mco_client::{Call, Client};
use mco_spec::StatusCode;
use mco_testsupport::{Fleet, NodeSpec};
use serde_json::json;

fn agents_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/agents")
}

fn fleet() -> Fleet {
    let python_ok = std::process::Command::new("python3")
        .args(["-c", "import mco_agent"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(python_ok, "python3 with py-mco-agent is needed: run scripts/install-deps.sh (pip install py-mco-agent)");
    let dir = agents_dir();
    let node = |id: &str| {
        let mut spec = NodeSpec::new(id, json!({"name": id}), &[]);
        // Only external agents next to rpcutil, whatever tools this machine has.
        spec.extra_config = format!(
            "agent_dirs = [{:?}]\ndisabled_agents = [\"package\", \"service\", \"puppet\"]\n",
            dir.display().to_string()
        );
        spec
    };
    Fleet::start_with_client_config(
        vec![node("x1"), node("x2")],
        &format!("ddl_dirs = [{:?}]", dir.display().to_string()),
    )
}

#[test]
fn external_agents_run_end_to_end() {
    let mut fleet = fleet();

    let echo = fleet.mco(&["rpc", "echo", "echo", "message=hello"]);
    assert_eq!(echo.code, Some(0), "{echo:?}");
    assert!(
        echo.stdout.contains("Message: hello") && echo.stdout.contains("Node: x1"),
        "{}",
        echo.stdout
    );
    assert!(
        echo.stdout.contains("Summary of Message:\n\n   hello = 2"),
        "{}",
        echo.stdout
    );
    assert!(
        fleet.nodes[0]
            .log()
            .contains("external agent stdout: echoing for e2e"),
        "{}",
        fleet.nodes[0].log()
    );

    let greet = fleet
        .mco(&["rpc", "greeter", "hello", "name=world", "-j"])
        .json();
    assert_eq!(greet.as_array().unwrap().len(), 2);
    for reply in greet.as_array().unwrap() {
        assert_eq!(reply["statuscode"], 0, "{reply}");
        assert_eq!(reply["data"]["greeting"], "hello world");
    }

    let inventory = fleet
        .mco(&["rpc", "rpcutil", "agent_inventory", "-I", "x1", "-j"])
        .json();
    let names: Vec<&str> = inventory[0]["data"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["echo", "greeter", "rpcutil", "tally"],
        "offline must not be served"
    );
    assert!(fleet.nodes[0]
        .log()
        .contains("external agent offline is not active"));

    let doc = fleet.mco(&["plugin", "doc", "echo"]);
    assert!(
        doc.stdout.contains("Echoes its input") && doc.stdout.contains("Provider: external"),
        "{}",
        doc.stdout
    );

    // The client refuses bad input before sending...
    let refused = fleet.mco(&["rpc", "echo", "echo", "message=a;b"]);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("invalid input message"),
        "{}",
        refused.stderr
    );

    // ...and a node never trusts a client that did not check.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = crate::signed_client(&fleet, Client::builder()).await;
        let result = client
            .call(
                Call::new("echo", "echo")
                    .arg("message", "a;b")
                    .nodes(["x1"]),
            )
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(result.replies[0].statuscode, StatusCode::InvalidData);
        let missing = client
            .call(Call::new("echo", "echo").nodes(["x1"]))
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(missing.replies[0].statuscode, StatusCode::MissingData);
    });

    let failed = fleet.mco(&["rpc", "echo", "fail", "-I", "x1"]);
    assert_eq!(failed.code, Some(2), "{failed:?}");
    assert!(
        failed.stdout.contains("Request Aborted") && failed.stdout.contains("exit status: 3"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stdout.contains("something went badly wrong"),
        "{}",
        failed.stdout
    );

    // A hung agent is killed at its DDL timeout (2 s), children and all; the daemon keeps serving.
    // Its id names the marker its child would leave (the agent runs with a cleared
    // environment, so the marker goes to /tmp, where another test's could be too).
    let id = "e2e0000000000000000000000000e001";
    let hung = fleet.mco(&[
        "rpc",
        "echo",
        "sleep",
        "seconds=20",
        "-I",
        "x1",
        "--request-id",
        id,
    ]);
    assert_eq!(hung.code, Some(2), "{hung:?}");
    assert!(
        hung.stdout.contains("Request Aborted") && hung.stdout.contains("timed out"),
        "{}",
        hung.stdout
    );
    assert!(hung.elapsed < Duration::from_secs(15), "{:?}", hung.elapsed);
    assert!(fleet.nodes[0].is_running());
    let ping = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "x1", "-j"]);
    assert_eq!(ping.senders(), ["x1"]);
    std::thread::sleep(Duration::from_secs(11));
    let marker = Path::new("/tmp").join(format!("sleep-child-{id}"));
    assert!(
        !marker.exists(),
        "the hung agent's child outlived the timeout"
    );
}
