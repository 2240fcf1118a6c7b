//! `mco inventory NODE`: everything one node reports about itself (rpcutil `inventory` and
//! `daemon_stats`, sent directly to the node).

use clap::Args;
use serde_json::{Map, Value};

use crate::output::{self, show};
use crate::{CommonArgs, Failure, Printed};
use mco_client::Call;

/// Arguments of `mco inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// The node's identity.
    pub node: String,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Flattens nested facts into `a.b.c => value` rows.
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, rows);
            }
        }
        other => rows.push((prefix.to_string(), show(other))),
    }
}

fn list(items: Option<&Value>) -> String {
    let names: Vec<String> = items
        .and_then(Value::as_array)
        .map(|a| a.iter().map(show).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "    (none)\n".into()
    } else {
        output::columns(&names)
    }
}

pub(super) async fn run(args: &InventoryArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let client = args.common.connect().await?;
    let ask = |action: &str| {
        let mut call = Call::new("rpcutil", action).nodes([args.node.clone()]);
        if let Some(t) = &args.common.target {
            call = call.collective(t);
        }
        call
    };
    let inventory = client.call(ask("inventory")).await?.collect().await;
    let Some(reply) = inventory.replies.first() else {
        printed
            .err
            .push_str(&format!("No response from {}\n", args.node));
        return Ok(4);
    };
    if !reply.statuscode.is_ok() {
        printed
            .err
            .push_str(&format!("{}: {}\n", args.node, reply.statusmsg));
        return Ok(2);
    }
    let stats = client.call(ask("daemon_stats")).await?.collect().await;
    let data = reply.data.as_object().cloned().unwrap_or_default();
    let daemon: Map<String, Value> = stats
        .replies
        .first()
        .and_then(|r| r.data.as_object().cloned())
        .unwrap_or_default();
    if args.common.json {
        let mut all = data.clone();
        all.insert("daemon_stats".into(), Value::Object(daemon));
        printed.out.push_str(&format!(
            "{}\n",
            serde_json::to_string_pretty(&all).unwrap_or_default()
        ));
        return Ok(0);
    }
    let out = &mut printed.out;
    out.push_str(&format!("Inventory for {}:\n\n", args.node));
    out.push_str("   Server Statistics:\n");
    let stat = |key: &str| daemon.get(key).map(show).unwrap_or_default();
    for (label, value) in [
        ("Version", show(data.get("version").unwrap_or(&Value::Null))),
        ("Start Time", stat("starttime")),
        ("Config File", stat("configfile")),
        (
            "Collectives",
            data.get("collectives")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(show).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ),
        (
            "Main Collective",
            show(data.get("main_collective").unwrap_or(&Value::Null)),
        ),
        ("Process ID", stat("pid")),
        ("Total Messages", stat("total")),
        ("Messages Passed Filters", stat("passed")),
        ("Messages Filtered", stat("filtered")),
        ("Expired Messages", stat("ttlexpired")),
        ("Replies Sent", stat("replies")),
        ("Failed Replies", stat("failed")),
    ] {
        out.push_str(&format!("      {label:>24}: {value}\n"));
    }
    out.push_str("\n   Agents:\n");
    out.push_str(&list(data.get("agents")));
    out.push_str("\n   Data Plugins:\n");
    out.push_str(&list(data.get("data_plugins")));
    out.push_str("\n   Configuration Management Classes:\n");
    out.push_str(&list(data.get("classes")));
    out.push_str("\n   Facts:\n");
    let mut rows = Vec::new();
    flatten("", data.get("facts").unwrap_or(&Value::Null), &mut rows);
    rows.sort();
    for (k, v) in rows {
        out.push_str(&format!("      {k} => {v}\n"));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nested_facts_flatten_with_dots() {
        let mut rows = Vec::new();
        super::flatten(
            "",
            &serde_json::json!({"os": {"family": "debian", "release": {"major": 12}}, "roles": ["a"]}),
            &mut rows,
        );
        rows.sort();
        assert_eq!(
            rows,
            [
                ("os.family".to_string(), "debian".to_string()),
                ("os.release.major".to_string(), "12".to_string()),
                ("roles".to_string(), "[\"a\"]".to_string()),
            ]
        );
    }
}
