//! DDLs that Choria loads but a strict check refuses, through real mcod and mco: the node
//! loads and serves the agent and logs what it does not enforce, `mco plugin doc` prints the
//! documentation with the warnings on stderr, and `mco plugin lint` names each problem.

use std::path::PathBuf;

use mco_testsupport::{Fleet, NodeSpec};
use serde_json::json;

/// Its own folder: `external.rs` asserts the exact agent list of `agents/`.
fn agents_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/agents_lenient")
}

fn fleet() -> Fleet {
    let dir = agents_dir().display().to_string();
    let mut spec = NodeSpec::new("l1", json!({"name": "l1"}), &[]);
    spec.extra_config = format!(
        "agent_dirs = [{dir:?}]\ndisabled_agents = [\"package\", \"service\", \"puppet\"]\n"
    );
    Fleet::start_with_client_config(vec![spec], &format!("ddl_dirs = [{dir:?}]"))
}

#[test]
fn a_ddl_choria_accepts_loads_warns_and_serves() {
    let fleet = fleet();
    let ddl = agents_dir().join("lenient/lenient.json");

    let log = fleet.nodes[0].log();
    assert!(
        log.contains("unknown validator \"acme_fqdn\"") && log.contains("not enforced"),
        "{log}"
    );
    assert!(
        log.contains("unknown aggregate function \"acme_chart\""),
        "{log}"
    );
    assert!(log.contains("loaded external agent lenient"), "{log}");

    let call = fleet.mco(&[
        "rpc",
        "lenient",
        "check-host",
        "FQDN=web1.example.net",
        "-j",
    ]);
    assert_eq!(call.code, Some(0), "{call:?}");
    let replies = call.json();
    assert_eq!(replies[0]["statuscode"], 0, "{replies}");
    assert_eq!(replies[0]["data"]["host"], "web1.example.net");

    // The unknown validator is the agent's to enforce; what the DDL's type and length say,
    // mco still checks.
    let agent_refuses = fleet.mco(&["rpc", "lenient", "check-host", "FQDN=a;b", "-j"]);
    assert_eq!(
        agent_refuses.json()[0]["statuscode"],
        4,
        "{agent_refuses:?}"
    );
    let too_long = format!("FQDN={}", "a".repeat(65));
    let refused = fleet.mco(&["rpc", "lenient", "check-host", &too_long]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("invalid input FQDN"), "{refused:?}");
    let missing = fleet.mco(&["rpc", "lenient", "check-host"]);
    assert!(
        missing.stderr.contains("needs a FQDN argument"),
        "no optional key means required: {missing:?}"
    );

    let doc = fleet.mco(&["plugin", "doc", "lenient"]);
    assert_eq!(doc.code, Some(0), "{doc:?}");
    assert!(doc.stdout.contains("check-host"), "{}", doc.stdout);
    assert!(
        doc.stderr.contains(
            "warning: agent lenient: action check-host: input.FQDN.validation: unknown validator \"acme_fqdn\""
        ) && doc.stderr.contains("aggregate[0]: unknown aggregate function \"acme_chart\""),
        "{}",
        doc.stderr
    );

    let lint = fleet.mco(&["plugin", "lint", ddl.to_str().unwrap()]);
    assert_eq!(lint.code, Some(1), "{lint:?}");
    let file = ddl.display().to_string();
    for problem in [
        "input.FQDN.validation: unknown validator \"acme_fqdn\"",
        "aggregate[0]: unknown aggregate function \"acme_chart\"",
        "/actions/0/action: \"check-host\" does not match",
        "/actions/0/input/FQDN: has no \"optional\" key",
        "/actions/0/input: Additional properties are not allowed ('FQDN'",
    ] {
        assert!(
            lint.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{file}: ")) && l.contains(problem)),
            "{problem:?} not in {}",
            lint.stdout
        );
    }
    let builtin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ddl/tests/data/service.json");
    let clean = fleet.mco(&["plugin", "lint", builtin.to_str().unwrap()]);
    assert_eq!(clean.code, Some(0), "{clean:?}");
}
