//! The applications: ping, rpc (text, JSON, DDL validation, aggregates), find, facts,
//! inventory, plugin doc; exit codes.

use crate::five_nodes;

#[test]
fn applications_and_exit_codes() {
    let fleet = five_nodes();

    let ping = fleet.mco(&["ping"]);
    assert_eq!(ping.code, Some(0));
    assert_eq!(
        ping.stdout.lines().filter(|l| l.contains("time=")).count(),
        5,
        "{}",
        ping.stdout
    );
    assert!(
        ping.stdout
            .contains("---- ping statistics ----\n5 replies max:"),
        "{}",
        ping.stdout
    );

    let rpc = fleet.mco(&["rpc", "rpcutil", "collective_info", "-W", "country=uk"]);
    assert_eq!(rpc.code, Some(0), "{}", rpc.stderr);
    assert!(
        rpc.stderr
            .contains("Discovering hosts using the broadcast method"),
        "{}",
        rpc.stderr
    );
    assert!(
        rpc.stdout.contains("Main Collective: mco"),
        "{}",
        rpc.stdout
    );
    assert!(
        rpc.stdout.contains("Summary of All Collectives:"),
        "{}",
        rpc.stdout
    );
    assert!(
        rpc.stdout.contains("Finished processing 3 / 3 hosts in"),
        "{}",
        rpc.stdout
    );

    // -j output is an array another mco (or jq) can read.
    let json = fleet
        .mco(&["rpc", "rpcutil", "get_fact", "fact=os.family", "-j"])
        .json();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        assert_eq!(row["agent"], "rpcutil");
        assert_eq!(row["action"], "get_fact");
        assert_eq!(row["statuscode"], 0);
        assert!(row["data"]["value"].is_string());
    }

    // Plain -I names go direct: no discovery.
    let direct = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "web1", "-I", "db1", "-j"]);
    assert_eq!(direct.senders(), ["db1", "web1"]);
    assert!(!direct.stderr.contains("Discovering"), "{}", direct.stderr);

    // The DDL checks inputs before anything is sent.
    let missing = fleet.mco(&["rpc", "rpcutil", "get_fact"]);
    assert_eq!(missing.code, Some(1));
    assert_eq!(
        missing.stderr.trim(),
        "mco: action get_fact needs a fact argument"
    );

    // An agent the node does not have: status 2 from the node, exit 2.
    let unknown = fleet.mco(&["rpc", "nosuchagent", "go", "-I", "web1"]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(
        unknown.stdout.contains("Unknown Action")
            && unknown.stdout.contains("Unknown agent 'nosuchagent'"),
        "{}",
        unknown.stdout
    );

    // Named nodes that do not answer: no discovery and no replies, exit 4.
    let ghost = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "ghost", "-t", "1"]);
    assert_eq!(ghost.code, Some(4));
    assert!(
        ghost.stdout.contains("No response from:") && ghost.stdout.contains("ghost"),
        "{}",
        ghost.stdout
    );
    // Some answer, some do not: exit 2.
    let partial = fleet.mco(&[
        "rpc", "rpcutil", "ping", "-I", "web1", "-I", "ghost", "-t", "1",
    ]);
    assert_eq!(partial.code, Some(2));

    let find = fleet.mco(&["find", "-F", "country=uk"]);
    assert_eq!(find.stdout, "db2\nweb1\nweb2\n");
    assert_eq!(fleet.mco(&["find", "-F", "country=jp"]).code, Some(1));

    let facts = fleet.mco(&["facts", "country"]);
    assert_eq!(facts.code, Some(0));
    assert!(
        facts.stdout.starts_with("Report for fact: country\n\n"),
        "{}",
        facts.stdout
    );
    let counts: Vec<(String, String)> = facts
        .stdout
        .lines()
        .filter(|l| l.contains("found"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[2].to_string())
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("uk".into(), "3".into()),
            ("de".into(), "1".into()),
            ("fr".into(), "1".into())
        ]
    );
    let facts_json = fleet.mco(&["facts", "os.family", "-j"]).json();
    assert_eq!(
        facts_json["debian"],
        serde_json::json!(["db1", "web1", "web2"])
    );

    let inventory = fleet.mco(&["inventory", "db2"]);
    assert_eq!(inventory.code, Some(0), "{}", inventory.stderr);
    for needle in [
        "Inventory for db2:",
        "Main Collective: mco",
        "rpcutil",
        "role::db",
        "backup",
        "country => uk",
        "os.family => Debian",
        "processors.count =>",
    ] {
        assert!(
            inventory.stdout.contains(needle),
            "{needle:?} not in\n{}",
            inventory.stdout
        );
    }

    let doc = fleet.mco(&["plugin", "doc", "service"]);
    assert!(
        doc.stdout.contains("restart action:") && doc.stdout.contains("Validation: service_name"),
        "{}",
        doc.stdout
    );

    let stats = fleet
        .mco(&["rpc", "rpcutil", "daemon_stats", "-I", "web2", "-j"])
        .json();
    assert!(stats[0]["data"]["total"].as_u64().unwrap() >= 1);
    // rpcutil everywhere; package, service and puppet where this machine has their tools.
    let agents = stats[0]["data"]["agents"].as_array().unwrap();
    assert!(agents.contains(&serde_json::json!("rpcutil")), "{agents:?}");

    let bad_target = fleet.mco(&["find", "-T", "nowhere"]);
    assert_eq!(bad_target.code, Some(1));
    assert!(
        bad_target.stderr.contains("unknown collective \"nowhere\""),
        "{}",
        bad_target.stderr
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let fleet = five_nodes();
    let mco = mco_testsupport::bin_path("mco");
    let script = format!(
        "{} rpc rpcutil inventory -j | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        mco.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("MCO_CONFIG", fleet.client_config())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
