//! Discovery methods end to end against the five-node fleet: flatfile, piped stdin (the jq
//! chain), external programs, limits and sub-collectives, each finding exactly the right
//! nodes, and the requests reaching exactly those nodes.

use std::path::Path;
use std::process::Command;

use mco_testsupport::Fleet;

/// The nodes that ran `rpcutil#ping` (audited as accepted), sorted.
fn pinged(fleet: &Fleet) -> Vec<String> {
    let mut nodes: Vec<String> = fleet
        .nodes
        .iter()
        .filter(|n| {
            n.audit().iter().any(|a| {
                a["agent"] == "rpcutil" && a["action"] == "ping" && a["decision"] == "accepted"
            })
        })
        .map(|n| n.identity().to_string())
        .collect();
    nodes.sort();
    nodes
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn flatfile_lists_in_every_format_select_exactly_their_nodes() {
    let fleet = crate::five_nodes();
    let tmp = tempfile::tempdir().unwrap();
    let text = write(
        tmp.path(),
        "nodes.txt",
        "# the uk web tier\nweb2\nweb1  # primary\n",
    );
    let json = write(tmp.path(), "nodes.json", r#"["web1", "web2"]"#);
    let yaml = write(tmp.path(), "nodes.yaml", "---\n- web2\n- web1\n");

    for args in [
        vec!["find", "--nodes", &text],
        vec!["find", "--nodes", &json],
        vec!["find", "--dm", "flatfile", "--do", &format!("file={yaml}")],
    ] {
        let run = fleet.mco(&args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        assert_eq!(lines(&run.stdout), ["web1", "web2"], "{args:?}");
        assert!(
            run.stderr
                .contains("Discovering hosts using the flatfile method"),
            "{}",
            run.stderr
        );
    }
    let narrowed = fleet.mco(&["find", "--nodes", &text, "-I", "/2$/"]);
    assert_eq!(lines(&narrowed.stdout), ["web2"]);

    let rpc = fleet.mco(&["rpc", "rpcutil", "ping", "--nodes", &text, "-j", "-v"]);
    assert_eq!(rpc.code, Some(0), "{rpc:?}");
    assert_eq!(rpc.senders(), ["web1", "web2"]);
    assert!(
        rpc.stderr
            .contains("(the flatfile discovery method gave the node list)"),
        "{}",
        rpc.stderr
    );
    assert_eq!(pinged(&fleet), ["web1", "web2"]);

    let refused = fleet.mco(&["find", "--nodes", &text, "-F", "country=uk"]);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("the flatfile discovery method cannot use fact filters"),
        "{}",
        refused.stderr
    );
    let bad = write(tmp.path(), "bad.txt", "web1\nrm -rf /\n");
    let run = fleet.mco(&["find", "--nodes", &bad]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("\"rm -rf /\" is not a valid node identity"),
        "{}",
        run.stderr
    );

    let facts = fleet.mco(&["facts", "country", "--nodes", &text, "-j"]);
    assert_eq!(facts.code, Some(0), "{facts:?}");
    assert_eq!(facts.json(), serde_json::json!({"uk": ["web1", "web2"]}));
}

#[test]
fn a_jq_chain_acts_on_exactly_the_filtered_nodes() {
    assert!(
        Command::new("jq").arg("--version").output().is_ok(),
        "jq is needed: run scripts/install-deps.sh (apt-get install jq)"
    );
    let fleet = crate::five_nodes();
    // The issue's chain: get each node's country, keep the uk ones with jq, ping those.
    let chain = fleet.shell(
        r#"$MCO rpc rpcutil get_fact fact=country -j | jq '[.[] | select(.data.value=="uk")]' | $MCO rpc rpcutil ping -j"#,
    );
    assert_eq!(chain.code, Some(0), "{chain:?}");
    assert_eq!(chain.senders(), ["db2", "web1", "web2"]);
    assert!(
        chain
            .stderr
            .contains("Discovering hosts using the stdin method"),
        "{}",
        chain.stderr
    );
    assert_eq!(pinged(&fleet), ["db2", "web1", "web2"]);

    // A filter that keeps nothing acts on nothing (never on the whole fleet).
    let none = fleet.shell(
        r#"$MCO rpc rpcutil get_fact fact=country -j | jq '[.[] | select(.data.value=="nowhere")]' | $MCO rpc rpcutil ping"#,
    );
    assert_eq!(none.code, Some(1), "{none:?}");
    assert!(
        none.stderr.contains("did not discover any nodes"),
        "{}",
        none.stderr
    );
    assert_eq!(pinged(&fleet), ["db2", "web1", "web2"]);

    // JSON lines and plain names work too; --dm broadcast ignores stdin.
    let jsonl = fleet.shell(
        r#"$MCO rpc rpcutil get_fact fact=country -j | jq -c '.[] | select(.sender | startswith("db"))' | $MCO find"#,
    );
    assert_eq!(lines(&jsonl.stdout), ["db1", "db2"], "{jsonl:?}");
    let plain = fleet.shell("printf 'web3\\n' | $MCO find");
    assert_eq!(lines(&plain.stdout), ["web3"], "{plain:?}");
    let ignored = fleet.shell("printf 'web3\\n' | $MCO find --dm broadcast");
    assert_eq!(lines(&ignored.stdout).len(), 5, "{ignored:?}");
}

#[test]
fn an_external_program_discovers_with_the_filter_and_options() {
    let fleet = crate::five_nodes();
    let tmp = tempfile::tempdir().unwrap();
    // An inventory outside mco, and a discovery program in Choria's protocol that answers
    // fact (==) and identity filters from it, in the region given with --do.
    let inventory = write(
        tmp.path(),
        "inventory.json",
        r#"{"web1": {"country": "uk", "region": "eu"}, "web2": {"country": "uk", "region": "eu"},
            "web3": {"country": "de", "region": "eu"}, "db1": {"country": "fr", "region": "eu"},
            "db2": {"country": "uk", "region": "us"}}"#,
    );
    let program = write(
        tmp.path(),
        "discover.py",
        r#"import json, sys
request = json.load(open(sys.argv[1]))
assert sys.argv[3] == "io.choria.choria.discovery.v1.external_request", sys.argv
inventory = json.load(open(sys.argv[4]))
region = request["options"].get("region")
if region == "mars":
    json.dump({"error": "no inventory for mars"}, open(sys.argv[2], "w"))
    sys.exit(0)
nodes = []
for name, facts in inventory.items():
    if region and facts["region"] != region:
        continue
    if any(facts.get(f["fact"]) != f["value"] for f in request["filter"]["fact"]):
        continue
    ids = request["filter"]["identity"]
    if ids and name not in ids:
        continue
    nodes.append(name)
json.dump({"protocol": "io.choria.choria.discovery.v1.external_reply", "nodes": nodes}, open(sys.argv[2], "w"))
"#,
    );
    // The protocol's three arguments come after the command's own; a wrapper passes the
    // inventory after them.
    let wrapper = write(
        tmp.path(),
        "discover.sh",
        &format!("#!/bin/sh\nexec python3 {program} \"$1\" \"$2\" \"$3\" {inventory}\n"),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let command = format!("command={wrapper}");
    let find = |extra: &[&str]| {
        let mut args = vec!["find", "--dm", "external", "--do", command.as_str()];
        args.extend_from_slice(extra);
        fleet.mco(&args)
    };

    let uk = find(&["-F", "country=uk"]);
    assert_eq!(uk.code, Some(0), "{uk:?}");
    assert_eq!(lines(&uk.stdout), ["db2", "web1", "web2"]);
    assert!(
        uk.stderr
            .contains("Discovering hosts using the external method"),
        "{}",
        uk.stderr
    );
    // The same filter by broadcast agrees.
    let broadcast = fleet.mco(&["find", "-F", "country=uk"]);
    assert_eq!(lines(&broadcast.stdout), lines(&uk.stdout));

    let eu = find(&["-F", "country=uk", "--do", "region=eu"]);
    assert_eq!(lines(&eu.stdout), ["web1", "web2"]);

    let rpc = {
        let mut args = vec!["rpc", "rpcutil", "ping", "-j", "--dm", "external"];
        args.extend([
            "--do",
            command.as_str(),
            "--do",
            "region=eu",
            "-F",
            "country=uk",
        ]);
        fleet.mco(&args)
    };
    assert_eq!(rpc.senders(), ["web1", "web2"], "{rpc:?}");
    assert_eq!(pinged(&fleet), ["web1", "web2"]);

    let failed = find(&["--do", "region=mars"]);
    assert_eq!(failed.code, Some(1));
    assert!(
        failed.stderr.contains("it reported: no inventory for mars"),
        "{}",
        failed.stderr
    );
    let missing = fleet.mco(&["find", "--dm", "external"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("needs a program"),
        "{}",
        missing.stderr
    );
}

#[test]
fn limits_choose_repeatably_and_sub_collectives_answer_in_each() {
    let fleet = crate::five_nodes();
    let a = fleet.mco(&["find", "--limit-nodes", "2", "--limit-seed", "7"]);
    let b = fleet.mco(&["find", "--limit-nodes", "2", "--limit-seed", "7"]);
    assert_eq!(a.code, Some(0), "{a:?}");
    assert_eq!(lines(&a.stdout).len(), 2);
    assert_eq!(a.stdout, b.stdout);
    let percent = fleet.mco(&["find", "--limit-nodes", "40%"]);
    assert_eq!(lines(&percent.stdout).len(), 2);

    let rpc = fleet.mco(&[
        "rpc",
        "rpcutil",
        "ping",
        "--limit-nodes",
        "2",
        "--limit-seed",
        "7",
        "-j",
        "-v",
    ]);
    assert_eq!(rpc.code, Some(0), "{rpc:?}");
    assert_eq!(rpc.senders(), lines(&a.stdout));
    assert!(
        rpc.stderr.contains("--limit-nodes chose 2 of 5 nodes"),
        "{}",
        rpc.stderr
    );
    assert_eq!(pinged(&fleet), lines(&a.stdout));
    let bad = fleet.mco(&["find", "--limit-nodes", "0"]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("--limit-nodes"), "{}", bad.stderr);

    // web1 is in mco and uk: it answers in both; eu is db1 and web3 only.
    for (collective, want) in [
        ("mco", vec!["db1", "db2", "web1", "web2", "web3"]),
        ("uk", vec!["db2", "web1", "web2"]),
        ("eu", vec!["db1", "web3"]),
    ] {
        let find = fleet.mco(&["find", "-T", collective]);
        assert_eq!(lines(&find.stdout), want, "-T {collective}");
        let ping = fleet.mco(&["rpc", "rpcutil", "collective_info", "-T", collective, "-j"]);
        assert_eq!(ping.senders(), want, "-T {collective}");
    }
    let facts = fleet.mco(&["facts", "country", "-T", "eu", "-j"]);
    assert_eq!(
        facts.json(),
        serde_json::json!({"de": ["web3"], "fr": ["db1"]})
    );
}
