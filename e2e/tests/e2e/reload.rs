//! SIGHUP: a real mcod reloads its facts, classes, policies and external agents while a long
//! action runs, which completes; a policy directory that no longer loads keeps the policies in
//! force, and an external agent whose DDL no longer loads keeps its version; one whose DDL is
//! removed stops being served, broadcasts included.

use std::path::Path;
use std::time::Duration;

use mco_testsupport::{mco_command, Fleet, NodeSpec};
use serde_json::json;

use crate::wait_until;

/// The id of the long action, which names the marker its child leaves in /tmp.
const LONG_ID: &str = "e2e0000000000000000000000000a001";

fn agents_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/agents")
}

/// Installs the plain-Python echo agent in `dir` as `name`, with an action timeout of 10 s.
fn install_echo(dir: &Path, name: &str) {
    let mut ddl: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(agents_dir().join("echo.json")).unwrap())
            .unwrap();
    ddl["metadata"]["name"] = json!(name);
    ddl["metadata"]["timeout"] = json!(10);
    std::fs::write(dir.join(format!("{name}.json")), ddl.to_string()).unwrap();
    std::fs::copy(agents_dir().join("echo"), dir.join(name)).unwrap();
}

/// Writes `text` to `path` and gives it back its previous modification time, so only a
/// reload that reads every file sees the change (mcod re-reads changed fact files by itself).
fn rewrite_keeping_mtime(path: &Path, text: &str) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, text).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(before).unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), before);
}

fn hangup(fleet: &Fleet) {
    let pid = fleet.nodes[0].pid().expect("mcod runs") as i32;
    // SAFETY: kill(2) on the pid of a child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

/// Sends SIGHUP and waits for the reload to finish (the `n`-th one).
fn reload(fleet: &Fleet, n: usize) {
    hangup(fleet);
    wait_until("the reload", Duration::from_secs(20), || {
        fleet.nodes[0].log().matches("agents reloaded").count() >= n
    });
}

fn rpc_code(fleet: &Fleet, args: &[&str]) -> (Option<i32>, String) {
    let run = fleet.mco(args);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

#[test]
fn sighup_reloads_facts_policies_and_agents_while_an_action_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = tmp.path().join("agents");
    let policies = tmp.path().join("policies");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::create_dir_all(&policies).unwrap();
    install_echo(&agents, "echo");
    let policy = policies.join("echo.policy");
    std::fs::write(&policy, "policy default deny\nallow\te2e\tsleep\t*\t*\n").unwrap();
    let mut spec = NodeSpec::new("r1", json!({"country": "uk"}), &["web"]);
    spec.extra_config = format!(
        "agent_dirs = [{:?}]\npolicy_dir = {:?}\ndisabled_agents = [\"package\", \"service\", \"puppet\"]\n",
        agents.display().to_string(),
        policies.display().to_string()
    );
    let fleet = Fleet::start_with_client_config(
        vec![spec],
        &format!("ddl_dirs = [{:?}]", agents.display().to_string()),
    );

    // Before: echo#echo is denied, the node is in the uk with class web, no echo2 agent.
    let (code, out) = rpc_code(&fleet, &["rpc", "echo", "echo", "message=hi", "-I", "r1"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("You are not authorized"), "{out}");
    assert_eq!(fleet.mco(&["find", "-W", "country=de"]).stdout, "");
    assert_eq!(fleet.mco(&["find", "-A", "echo2"]).stdout, "");

    // A long action starts, then policies, facts and classes change and a new agent appears.
    let long = mco_command(
        &fleet.client_config(),
        &[
            "rpc",
            "echo",
            "sleep",
            "seconds=5",
            "-I",
            "r1",
            "-j",
            "--request-id",
            LONG_ID,
        ],
    )
    .spawn()
    .unwrap();
    let program = agents.join("echo");
    wait_until("the long action to start", Duration::from_secs(10), || {
        running(&program)
    });
    std::fs::write(
        &policy,
        "policy default deny\nallow\te2e\tsleep echo\t*\t*\n",
    )
    .unwrap();
    rewrite_keeping_mtime(&fleet.nodes[0].facts_path(), r#"{"country": "de"}"#);
    let classes = fleet.nodes[0].dir().join("classes.txt");
    rewrite_keeping_mtime(&classes, "db\n");
    install_echo(&agents, "echo2");
    std::fs::write(policies.join("echo2.policy"), "policy default allow\n").unwrap();
    reload(&fleet, 1);
    assert!(
        running(&program),
        "the action was still running after the reload"
    );

    let (code, out) = rpc_code(&fleet, &["rpc", "echo", "echo", "message=hi", "-I", "r1"]);
    assert_eq!(code, Some(0), "the new policy allows it: {out}");
    assert_eq!(fleet.mco(&["find", "-W", "country=de"]).stdout, "r1\n");
    assert_eq!(fleet.mco(&["find", "-C", "db"]).stdout, "r1\n");
    assert_eq!(fleet.mco(&["find", "-A", "echo2"]).stdout, "r1\n");
    // Broadcast (discovery then one publish to echo2's subject): the node subscribed to it.
    let (code, out) = rpc_code(
        &fleet,
        &["rpc", "echo2", "echo", "message=new", "-W", "country=de"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Message: new"), "{out}");
    assert!(subscribed(&fleet, "mco.broadcast.agent.echo2"));

    // The action that was running when the reload came completed, with its reply.
    let finished =
        mco_testsupport::finish(long, std::time::Instant::now(), Duration::from_secs(20));
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_eq!(finished.json()[0]["statusmsg"], "slept", "{finished:?}");
    // The echo agent's sleep leaves a marker in /tmp from a child when it is not killed.
    let _ = std::fs::remove_file(format!("/tmp/sleep-child-{LONG_ID}"));

    // A policy file that no longer parses: the policies in force stay, and the log says so.
    std::fs::write(&policy, "policy default sideways\n").unwrap();
    reload(&fleet, 2);
    assert!(
        fleet.nodes[0]
            .log()
            .contains("keeping the policies in force"),
        "{}",
        fleet.nodes[0].log()
    );
    let (code, out) = rpc_code(&fleet, &["rpc", "echo", "echo", "message=hi", "-I", "r1"]);
    assert_eq!(code, Some(0), "the last good policy is in force: {out}");

    // An agent whose DDL no longer loads keeps its version in force.
    std::fs::write(agents.join("echo2.json"), "{broken").unwrap();
    reload(&fleet, 3);
    assert!(
        fleet.nodes[0]
            .log()
            .contains("external agent echo2 did not load"),
        "{}",
        fleet.nodes[0].log()
    );
    assert_eq!(fleet.mco(&["find", "-A", "echo2"]).stdout, "r1\n");

    // An agent whose DDL is removed is gone, from discovery and from its broadcast subject.
    std::fs::remove_file(agents.join("echo2.json")).unwrap();
    reload(&fleet, 4);
    assert_eq!(fleet.mco(&["find", "-A", "echo2"]).stdout, "");
    assert!(
        !subscribed(&fleet, "mco.broadcast.agent.echo2"),
        "the node still reads echo2's broadcasts"
    );
    assert!(subscribed(&fleet, "mco.broadcast.agent.echo"));
}

/// Whether anyone reads `subject` on the fleet's broker: a request to a subject nobody
/// reads is answered "no responders" at once; the node drops the junk, so it times out.
fn subscribed(fleet: &Fleet, subject: &str) -> bool {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        let asked = tokio::time::timeout(
            Duration::from_secs(1),
            nats.request(subject.to_string(), "junk".into()),
        )
        .await;
        match asked {
            Err(_elapsed) => true,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => false,
            Ok(other) => panic!("unexpected answer on {subject}: {other:?}"),
        }
    })
}

/// Whether a process runs `program` (an external agent's executable) now.
fn running(program: &Path) -> bool {
    let wanted = program.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .any(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == wanted))
}
