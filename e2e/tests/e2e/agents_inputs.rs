//! Inputs that a shell would act on (`;`, backticks, `$()`, newlines, pipes) and names a
//! tool would read as options reach the package, service and puppet agents only to be
//! refused with status 4, before any command runs: `mco` (and the library under it) refuses
//! them before sending, and a client that skips that check (raw signed requests, as a
//! hand-written client sends them) is refused by the node.
//! Each payload would create a marker file if anything ran it; none appears.

use std::time::Duration;

use mco_spec::{Filter, StatusCode};
use mco_testsupport::{require_program, Fleet, NodeSpec};
use serde_json::json;

use crate::raw;

#[test]
fn dangerous_inputs_are_refused_before_anything_runs() {
    require_program("puppet", "apt-get install puppet");
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran");
    let m = marker.display().to_string();
    let mut spec = NodeSpec::new("in1", json!({}), &[]);
    spec.extra_config = format!(
        "[agents.service]\nprovider = \"sysv\"\ninit_dir = {:?}\n",
        scratch.path().display().to_string()
    );
    let fleet = Fleet::start(vec![spec]);

    let payloads = [
        format!("x; touch {m}"),
        format!("x`touch {m}`"),
        format!("$(touch {m})"),
        format!("x\ntouch {m}"),
        format!("x | touch {m}"),
        format!("x && touch {m}"),
    ];

    // mco checks inputs against the DDL and sends nothing.
    let cli = fleet.mco(&[
        "rpc",
        "service",
        "restart",
        &format!("service={}", payloads[0]),
        "-I",
        "in1",
    ]);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(
        cli.stderr
            .starts_with("mco: invalid input service for action restart"),
        "{}",
        cli.stderr
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        let creds = raw::credentials(&fleet, "client", "hand-rolled", &[]);
        let mut only_in1 = Filter::default();
        only_in1.add_identity("in1").unwrap();
        let mut cases: Vec<(&str, &str, &str, String)> = Vec::new();
        for payload in &payloads {
            cases.push(("service", "restart", "service", payload.clone()));
            cases.push(("service", "status", "service", payload.clone()));
            cases.push(("package", "install", "package", payload.clone()));
            cases.push(("package", "search", "package", payload.clone()));
            cases.push(("puppet", "disable", "message", payload.clone()));
            cases.push(("puppet", "runonce", "tags", payload.clone()));
            cases.push(("puppet", "runonce", "environment", payload.clone()));
        }
        // Names that pass the shell checks but that a tool would take as options.
        cases.push((
            "package",
            "install",
            "package",
            format!("-oDpkg::Pre-Invoke::=touch {m}"),
        ));
        cases.push(("service", "start", "service", "--status-all".into()));
        for (agent, action, input, value) in cases {
            let mut request = raw::request("hand-rolled", agent, action, only_in1.clone());
            request.data.insert(input.into(), value.clone().into());
            let subject = format!("mco.broadcast.agent.{agent}");
            let bytes = raw::signed(&request, &creds);
            let reply = raw::send(
                &nats,
                &subject,
                &request.reply_to,
                bytes,
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|| panic!("{agent}#{action} {input}={value:?}: no reply"));
            assert_eq!(
                reply.statuscode,
                StatusCode::InvalidData,
                "{agent}#{action} {input}={value:?}: {reply:?}"
            );
            assert!(
                reply.statusmsg.contains("invalid input")
                    || reply.statusmsg.contains("is not a valid"),
                "{agent}#{action}: {}",
                reply.statusmsg
            );
        }
    });
    assert!(!marker.exists(), "a payload ran");
    // The node refused them all and counted each reply as failed; nothing else happened.
    let stats = fleet
        .mco(&["rpc", "rpcutil", "daemon_stats", "-I", "in1", "-j"])
        .json();
    assert!(
        stats[0]["data"]["failed"].as_u64().unwrap() >= 44,
        "{stats}"
    );
}
