//! MCollective's command line in mco, against the five-node fleet: `mco package` and
//! `mco service` as shortcuts of `mco rpc`, the question before changing every node
//! unfiltered (asked on a terminal, refused without one), `-1`, the `--with-*` flags,
//! `--do FILE`, `-q`, `--sort`, `ping -g`, `MCO_EXTRA_OPTS`, `mco rpc --agent/--action/--arg`,
//! `mco inventory --list-collectives/--collective-graph/--script`, and usage errors exiting 64
//! rather than a call's codes.

use mco_testsupport::{mco_command, Fleet};

use crate::{five_nodes, on_terminal_typing};

/// The nodes whose audit log accepted `agent#action`.
fn ran(fleet: &Fleet, agent: &str, action: &str) -> usize {
    fleet
        .nodes
        .iter()
        .filter(|n| {
            n.audit().iter().any(|a| {
                a["agent"] == agent && a["action"] == action && a["decision"] == "accepted"
            })
        })
        .count()
}

#[test]
fn agent_applications_ask_before_changing_the_whole_fleet() {
    let fleet = five_nodes();

    // `mco package NAME status` is `mco rpc package status package=NAME`.
    let short = fleet.mco(&["package", "dpkg", "status", "-I", "web1", "-j"]);
    assert_eq!(short.code, Some(0), "{short:?}");
    let long = fleet.mco(&[
        "rpc",
        "package",
        "status",
        "package=dpkg",
        "-I",
        "web1",
        "-j",
    ]);
    assert_eq!(short.json()[0]["data"], long.json()[0]["data"], "{short:?}");
    assert!(short.json()[0]["data"]["ensure"].is_string(), "{short:?}");

    // Changing every node with no filter: no terminal to ask, so refused, nothing sent.
    let refused = fleet.mco(&["service", "mco-e2e-nosuch", "restart"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "refusing to restart the service mco-e2e-nosuch on every node with no filter"
        ),
        "{refused:?}"
    );
    assert_eq!(ran(&fleet, "service", "restart"), 0);

    // On a terminal it asks; "n" does nothing, "y" acts on all five.
    let no = on_terminal_typing(
        &fleet,
        &["service", "mco-e2e-nosuch", "restart", "--np"],
        &[],
        "n\n",
    );
    assert!(
        no.contains("You are about to restart the service mco-e2e-nosuch on every node, unfiltered. Continue? (y/n)")
            && no.contains("not confirmed: nothing was done"),
        "{no:?}"
    );
    assert_eq!(ran(&fleet, "service", "restart"), 0);
    let yes = on_terminal_typing(
        &fleet,
        &["service", "mco-e2e-nosuch", "restart", "--np"],
        &[],
        "y\n",
    );
    assert!(yes.contains("Finished processing 5 / 5 hosts"), "{yes:?}");
    assert_eq!(ran(&fleet, "service", "restart"), 5);

    // -y skips the question; a filter or a status needs none.
    let filtered = fleet.mco(&["service", "mco-e2e-nosuch", "stop", "-W", "country=uk"]);
    assert!(
        filtered.stdout.contains("Finished processing 3 / 3 hosts"),
        "{filtered:?}"
    );
    let status = fleet.mco(&["service", "mco-e2e-nosuch", "status"]);
    assert!(
        status.stdout.contains("Finished processing 5 / 5 hosts"),
        "{status:?}"
    );
    let confirmed = fleet.mco(&["service", "mco-e2e-nosuch", "start", "-y"]);
    assert!(
        confirmed.stdout.contains("Finished processing 5 / 5 hosts"),
        "{confirmed:?}"
    );
}

#[test]
fn mcollective_flags_extra_options_and_usage_errors() {
    let fleet = five_nodes();
    let one = fleet.mco(&["rpc", "rpcutil", "ping", "-1", "-j"]);
    assert_eq!(one.code, Some(0), "{one:?}");
    assert_eq!(one.json().as_array().map(Vec::len), Some(1), "{one:?}");
    let uk = fleet.mco(&["find", "--with-fact", "country=uk"]);
    assert_eq!(uk.stdout, "db2\nweb1\nweb2\n", "{uk:?}");
    let db = fleet.mco(&[
        "find",
        "--with-class",
        "role::db",
        "--with-identity",
        "/1$/",
    ]);
    assert_eq!(db.stdout, "db1\n", "{db:?}");

    // --dm flatfile --do FILE, -q, --sort, ping -g.
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("nodes.txt");
    std::fs::write(&list, "web2\ndb1\n").unwrap();
    let listed = fleet.mco(&[
        "find",
        "--dm",
        "flatfile",
        "--do",
        &list.display().to_string(),
    ]);
    assert_eq!(listed.stdout, "db1\nweb2\n", "{listed:?}");
    let quiet = fleet.mco(&["rpc", "rpcutil", "ping", "-q", "--sort"]);
    assert_eq!(quiet.code, Some(0), "{quiet:?}");
    assert!(!quiet.stderr.contains("Discovering"), "{quiet:?}");
    assert!(
        quiet.stdout.contains("Finished processing 5 / 5"),
        "{quiet:?}"
    );
    let graph = fleet.mco(&["ping", "-g"]);
    let last = graph
        .stdout
        .lines()
        .find(|l| l.ends_with(" ms") && l.contains(" ms "))
        .unwrap_or_default();
    assert!(
        last.chars().any(|c| ('▁'..='█').contains(&c)),
        "a line of bars between the fastest and slowest: {graph:?}"
    );

    // MCO_EXTRA_OPTS adds its flags to the command line (before any `--`).
    let run = mco_command(&fleet.client_config(), &["find"])
        .env("MCO_EXTRA_OPTS", "-W 'country=de'")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "web3\n", "{run:?}");
    let bad = mco_command(&fleet.client_config(), &["find"])
        .env("MCO_EXTRA_OPTS", "-W 'unclosed")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("MCO_EXTRA_OPTS"));

    // A typo is 64, not 2 ("some nodes failed"); help and --version are 0.
    let typo = fleet.mco(&["rpc", "rpcutil", "ping", "--no-such-flag"]);
    assert_eq!(typo.code, Some(64), "{typo:?}");
    assert!(typo.stderr.contains("--no-such-flag"), "{typo:?}");
    let value = fleet.mco(&["service", "httpd", "reboot"]);
    assert_eq!(value.code, Some(64), "{value:?}");
    assert_eq!(fleet.mco(&["--version"]).code, Some(0));
    assert_eq!(fleet.mco(&["service", "--help"]).code, Some(0));
}

#[test]
fn rpc_flags_and_inventory_reports_as_mcollective_spells_them() {
    let fleet = five_nodes();
    // --agent/--action/--arg is the same call as the positional form.
    let flags = fleet.mco(&[
        "rpc",
        "--agent",
        "rpcutil",
        "--action",
        "get_fact",
        "--arg",
        "fact=country",
        "-W",
        "country=uk",
        "-j",
    ]);
    let words = fleet.mco(&[
        "rpc",
        "rpcutil",
        "get_fact",
        "fact=country",
        "-W",
        "country=uk",
        "-j",
    ]);
    assert_eq!(flags.code, Some(0), "{flags:?}");
    let values = |out: &mco_testsupport::Run| {
        let mut v: Vec<String> = out
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}={}", r["sender"], r["data"]["value"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(values(&flags), values(&words));
    assert_eq!(values(&flags).len(), 3, "{flags:?}");
    let no_action = fleet.mco(&["rpc", "--agent", "rpcutil"]);
    assert_eq!(no_action.code, Some(64), "{no_action:?}");
    assert!(
        no_action.stderr.contains("needs an action"),
        "{no_action:?}"
    );

    // --list-collectives counts the matching nodes per collective.
    let listed = fleet.mco(&["inventory", "--list-collectives"]);
    assert_eq!(listed.code, Some(0), "{listed:?}");
    let rows: Vec<Vec<&str>> = listed
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|w: &Vec<&str>| w.len() == 2 && w[1].parse::<u32>().is_ok())
        .collect();
    assert_eq!(
        rows,
        [vec!["eu", "2"], vec!["mco", "5"], vec!["uk", "3"]],
        "{listed:?}"
    );
    assert!(listed.stdout.contains("Total nodes: 5"), "{listed:?}");
    let filtered = fleet.mco(&["inventory", "--lc", "-W", "country=uk", "-j"]);
    assert_eq!(
        filtered.json(),
        serde_json::json!({"collectives": {"mco": 3, "uk": 3}, "total_nodes": 3}),
        "{filtered:?}"
    );

    // --collective-graph writes a graph that Graphviz's grammar reads: one edge per member.
    let tmp = tempfile::tempdir().unwrap();
    let dot = tmp.path().join("collectives.dot");
    let graph = fleet.mco(&[
        "inventory",
        "--collective-graph",
        &dot.display().to_string(),
    ]);
    assert_eq!(graph.code, Some(0), "{graph:?}");
    assert!(graph.stdout.contains("Graph of 5 nodes"), "{graph:?}");
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(
        text.starts_with("graph {\n") && text.ends_with("}\n"),
        "{text}"
    );
    assert_eq!(text.matches(" -- ").count(), 10, "{text}");
    assert!(text.contains("\"web3\" -- \"eu\";"), "{text}");

    // --script prints a line per matching node in the script's format.
    let script = tmp.path().join("report.mc");
    std::fs::write(
        &script,
        "# MCollective's inventory DSL\ninventory do\n  format \"%-5s|%s|%s|%d\"\n  fields { [ identity, facts[\"country\"], classes.sort.join(\",\"), facts[\"cpus\"] ] }\nend\n",
    )
    .unwrap();
    let report = fleet.mco(&[
        "inventory",
        "--script",
        &script.display().to_string(),
        "-C",
        "role::web",
    ]);
    assert_eq!(report.code, Some(0), "{report:?}");
    assert_eq!(
        report.stdout,
        "web1 |uk|role::web,webserver|4\nweb2 |uk|role::web,webserver|2\nweb3 |de|role::web|8\n",
        "{report:?}"
    );
    std::fs::write(
        &script,
        "inventory do\n  format \"%s\"\n  fields { [ hostname ] }\nend\n",
    )
    .unwrap();
    let broken = fleet.mco(&["inventory", "--script", &script.display().to_string()]);
    assert_eq!(broken.code, Some(1), "{broken:?}");
    assert!(
        broken
            .stderr
            .contains("report.mc:line 3: `hostname` is not a field"),
        "{broken:?}"
    );
    let nothing = fleet.mco(&["inventory"]);
    assert_eq!(nothing.code, Some(64), "{nothing:?}");
}
