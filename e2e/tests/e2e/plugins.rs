//! Validator and aggregate plugins through real mcod and mco: a DDL input whose validator is
//! declared in `validators.toml`, another checked by an external validator, and an external
//! aggregate. The client refuses a bad value before sending; a request that skipped the
//! client's checks is refused by the node with status 4; a good one runs and is summarised.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mco_client::{Call, Client};
use mco_spec::StatusCode;
use mco_testsupport::{Fleet, NodeSpec};
use serde_json::json;

const DDL: &str = r#"{
  "metadata": {"name": "site", "description": "Reports a node's size for a site host", "author": "mco",
               "license": "Apache-2.0", "version": "1.0.0", "url": "https://example.invalid/mco",
               "timeout": 5, "provider": "external"},
  "actions": [{
    "action": "check", "description": "Answers the node's size", "display": "always",
    "input": {
      "host": {"prompt": "Host", "description": "A site host", "type": "string", "optional": false,
               "validation": "site_fqdn", "maxlength": 0},
      "tag": {"prompt": "Tag", "description": "A tag", "type": "string", "optional": true,
              "validation": "approved_tag", "maxlength": 0}
    },
    "output": {"size": {"description": "The node's size", "display_as": "Size"}},
    "aggregate": [{"function": "median", "args": ["size"]}]
  }]
}"#;

const AGENT: &str = r#"#!/usr/bin/env python3
import json, os, sys
req = json.load(open(sys.argv[1]))
if req["protocol"].endswith("activation_request"):
    json.dump({"activate": True}, open(sys.argv[2], "w"))
else:
    facts = json.load(open(os.environ["CHORIA_EXTERNAL_FACTS"]))
    json.dump({"statuscode": 0, "statusmsg": "OK", "data": {"size": facts["size"]}}, open(sys.argv[2], "w"))
"#;

const VALIDATORS: &str = r#"
[validators.site_fqdn]
regex = '^[a-z0-9-]+\.example\.net$'
max_length = 64
description = "a host under example.net"
"#;

const APPROVED_TAG: &str = r#"#!/bin/sh
read -r question
case "$question" in
  *'"value":"blue"'*) echo '{"valid": true}' ;;
  *) echo '{"valid": false, "message": "only blue is approved"}' ;;
esac
"#;

const MEDIAN: &str = r#"#!/usr/bin/env python3
import json, sys
question = json.load(sys.stdin)
values = sorted(question["values"])
print(json.dumps({"result": values[len(values) // 2], "format": "median %s of " + str(len(values)) + " nodes"}))
"#;

fn write(path: &Path, text: &str, executable: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    if executable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn plugin_validators_guard_client_and_node_and_plugin_aggregates_summarise() {
    let scratch = tempfile::tempdir().unwrap();
    let agents = scratch.path().join("agents");
    let plugins = scratch.path().join("plugins");
    write(&agents.join("site.json"), DDL, false);
    write(&agents.join("site"), AGENT, true);
    write(&plugins.join("validators.toml"), VALIDATORS, false);
    write(&plugins.join("validator/approved_tag"), APPROVED_TAG, true);
    write(&plugins.join("aggregate/median"), MEDIAN, true);
    let node = |id: &str, size: u64| {
        let mut spec = NodeSpec::new(id, json!({"name": id, "size": size}), &[]);
        spec.extra_config = format!(
            "agent_dirs = [{:?}]\nplugins_dir = {:?}\ndisabled_agents = [\"package\", \"service\", \"puppet\"]\n",
            agents.display().to_string(),
            plugins.display().to_string(),
        );
        spec
    };
    let fleet = Fleet::start_with_client_config(
        vec![node("p1", 3), node("p2", 10), node("p3", 5)],
        &format!(
            "ddl_dirs = [{:?}]\nplugins_dir = {:?}",
            agents.display().to_string(),
            plugins.display().to_string()
        ),
    );
    fleet.wait_for_all(std::time::Duration::from_secs(20));

    // The client refuses a value its plugin validators reject, before sending anything.
    let refused = fleet.mco(&["rpc", "site", "check", "host=web1.evil.org"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "invalid input host for action check: \"web1.evil.org\" is not a valid site_fqdn"
        ),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("p1"), "{}", refused.stdout);
    let refused = fleet.mco(&["rpc", "site", "check", "host=web1.example.net", "tag=red"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("is not a valid approved_tag: only blue is approved"),
        "{}",
        refused.stderr
    );

    // A client without the DDL checks nothing; each node refuses by the same plugins.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = crate::signed_client(&fleet, Client::builder()).await;
        for (host, tag, why) in [
            ("web1.evil.org", "blue", "is not a valid site_fqdn"),
            ("web1.example.net", "red", "only blue is approved"),
        ] {
            let result = client
                .call(
                    Call::new("site", "check")
                        .arg("host", host)
                        .arg("tag", tag)
                        .nodes(["p1"]),
                )
                .await
                .unwrap()
                .collect()
                .await;
            let reply = &result.replies[0];
            assert_eq!(reply.statuscode, StatusCode::InvalidData, "{reply:?}");
            assert!(reply.statusmsg.contains(why), "{reply:?}");
        }
    });

    // A good value runs everywhere, and the external aggregate summarises the replies.
    let good = fleet.mco(&["rpc", "site", "check", "host=web1.example.net", "tag=blue"]);
    assert_eq!(good.code, Some(0), "{good:?}");
    assert!(
        good.stdout
            .contains("Summary of Size:\n\n   median 5 of 3 nodes"),
        "{}",
        good.stdout
    );
    // Neither the client nor the node warns about what the plugins provide.
    let doc = fleet.mco(&["plugin", "doc", "site"]);
    assert_eq!(doc.code, Some(0), "{doc:?}");
    assert!(!doc.stderr.contains("warning"), "{}", doc.stderr);

    let log = fleet.nodes[0].log();
    assert!(!log.contains("unknown validator \"site_fqdn\""), "{log}");
    assert!(
        !log.contains("unknown aggregate function \"median\""),
        "{log}"
    );
}
