//! `mco inventory`: everything one node reports about itself (`mco inventory NODE`: rpcutil
//! `inventory` and `daemon_stats`, sent directly to the node), and MCollective's reports over
//! the matching nodes: `--list-collectives` (how many nodes each collective has),
//! `--collective-graph FILE` (the same as a Graphviz graph) and `--script FILE` (a line per
//! node in the format of an inventory script, [`crate::inventory_script`]).

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;
use serde_json::{Map, Value};

use crate::inventory_script::{InventoryScript, NodeView};
use crate::output::{self, show};
use crate::{CommonArgs, Failure, Printed, UsageError};
use mco_client::Call;
use mco_spec::Reply;

/// Arguments of `mco inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// The node's identity (or one of --list-collectives, --collective-graph, --script over
    /// the nodes the filters select).
    pub node: Option<String>,
    /// How many of the matching nodes are in each collective.
    #[arg(long = "list-collectives", visible_alias = "lc", conflicts_with_all = ["node", "collective_graph", "script"])]
    pub list_collectives: bool,
    /// Write the collectives and their nodes as a Graphviz graph to FILE (`dot -Tpng FILE`).
    #[arg(long = "collective-graph", visible_alias = "cg", value_name = "FILE", conflicts_with_all = ["node", "script"])]
    pub collective_graph: Option<std::path::PathBuf>,
    /// Print a line per matching node as MCollective's inventory script FILE says
    /// (`inventory do format "..."; fields { [ identity, facts["x"] ] } end`).
    #[arg(long, value_name = "FILE", conflicts_with = "node")]
    pub script: Option<std::path::PathBuf>,
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
    if let Some(file) = &args.script {
        return script(args, file, printed).await;
    }
    if args.list_collectives || args.collective_graph.is_some() {
        return collectives(args, printed).await;
    }
    let Some(node) = &args.node else {
        return Err(UsageError(
            "mco inventory needs a node, or --list-collectives, --collective-graph FILE or --script FILE".into(),
        )
        .into());
    };
    one_node(args, node, printed).await
}

/// The replies of rpcutil `action` from the nodes the flags select.
async fn fleet_replies(
    args: &InventoryArgs,
    action: &str,
    printed: &mut Printed,
) -> Result<Vec<Reply>, Failure> {
    let (client, call) =
        crate::rpc::prepared_call(&args.common, "rpcutil", action, &[], None).await?;
    let mut result = client.call(call).await?.collect().await;
    if let Some(line) = crate::discovery::discovery_line(&result.stats, &args.common) {
        printed.err.push_str(&line);
    }
    for node in &result.stats.no_response_from {
        printed
            .err
            .push_str(&format!("mco: warning: no response from {node}\n"));
    }
    result.replies.retain(|r| r.statuscode.is_ok());
    result.replies.sort_by(|a, b| a.sender.cmp(&b.sender));
    Ok(result.replies)
}

/// `--list-collectives` and `--collective-graph`.
async fn collectives(args: &InventoryArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let replies = fleet_replies(args, "collective_info", printed).await?;
    if replies.is_empty() {
        printed.err.push_str("No nodes answered.\n");
        return Ok(1);
    }
    let members = collective_members(&replies);
    if let Some(file) = &args.collective_graph {
        std::fs::write(file, collective_graph(&members))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        printed.out.push_str(&format!(
            "Graph of {} nodes has been written to {}\n",
            replies.len(),
            file.display()
        ));
        return Ok(0);
    }
    if args.common.json {
        let counts: BTreeMap<&String, usize> = members.iter().map(|(c, n)| (c, n.len())).collect();
        printed.out.push_str(&format!(
            "{}\n",
            serde_json::json!({"collectives": counts, "total_nodes": replies.len()})
        ));
        return Ok(0);
    }
    printed
        .out
        .push_str(&collective_table(&members, replies.len()));
    Ok(0)
}

/// Each collective and the nodes in it, from rpcutil `collective_info` replies.
fn collective_members(replies: &[Reply]) -> BTreeMap<String, BTreeSet<String>> {
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for reply in replies {
        for collective in reply.data["collectives"].as_array().into_iter().flatten() {
            if let Some(name) = collective.as_str() {
                members
                    .entry(name.to_string())
                    .or_default()
                    .insert(reply.sender.clone());
            }
        }
    }
    members
}

/// MCollective's `--list-collectives` table.
fn collective_table(members: &BTreeMap<String, BTreeSet<String>>, total: usize) -> String {
    let width = members.keys().map(String::len).max().unwrap_or(0).max(10) + 4;
    let mut out = format!(
        "\n   {:<width$} Nodes\n   {:<width$} =====\n",
        "Collective", "=========="
    );
    for (collective, nodes) in members {
        out.push_str(&format!("   {collective:<width$} {}\n", nodes.len()));
    }
    out.push_str(&format!("\n   {:>width$} {total}\n", "Total nodes:"));
    out
}

/// The collectives as a Graphviz graph: a subgraph per collective, an edge per member.
fn collective_graph(members: &BTreeMap<String, BTreeSet<String>>) -> String {
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("graph {\n");
    for (collective, nodes) in members {
        out.push_str(&format!("   subgraph {} {{\n", quoted(collective)));
        for node in nodes {
            out.push_str(&format!(
                "      {} -- {};\n",
                quoted(node),
                quoted(collective)
            ));
        }
        out.push_str("   }\n");
    }
    out.push_str("}\n");
    out
}

/// `--script FILE`: a line per matching node.
async fn script(
    args: &InventoryArgs,
    file: &std::path::Path,
    printed: &mut Printed,
) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    // A script that does not read is an error before anything is sent.
    let script =
        InventoryScript::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?;
    let replies = fleet_replies(args, "inventory", printed).await?;
    for reply in &replies {
        let view = NodeView {
            identity: &reply.sender,
            facts: reply.data.get("facts"),
            classes: reply.data.get("classes"),
            agents: reply.data.get("agents"),
            collectives: reply.data.get("collectives"),
        };
        printed.out.push_str(&script.line(&view));
        printed.out.push('\n');
    }
    Ok(if replies.is_empty() { 1 } else { 0 })
}

/// `mco inventory NODE`.
async fn one_node(args: &InventoryArgs, node: &str, printed: &mut Printed) -> Result<u8, Failure> {
    let client = args.common.connect().await?;
    let ask = |action: &str| {
        let mut call = Call::new("rpcutil", action).nodes([node.to_string()]);
        if let Some(t) = &args.common.target {
            call = call.collective(t);
        }
        call
    };
    let inventory = client.call(ask("inventory")).await?.collect().await;
    let Some(reply) = inventory.replies.first() else {
        printed.err.push_str(&format!("No response from {node}\n"));
        return Ok(4);
    };
    if !reply.statuscode.is_ok() {
        printed
            .err
            .push_str(&format!("{node}: {}\n", reply.statusmsg));
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
    out.push_str(&format!("Inventory for {node}:\n\n"));
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

    fn reply(sender: &str, collectives: &[&str]) -> super::Reply {
        super::Reply {
            request_id: "r".into(),
            sender: sender.into(),
            agent: "rpcutil".into(),
            action: "collective_info".into(),
            time: 0,
            statuscode: mco_spec::StatusCode::Ok,
            statusmsg: "OK".into(),
            data: serde_json::json!({"collectives": collectives, "main_collective": collectives[0]}),
        }
    }

    #[test]
    fn collectives_are_counted_and_drawn_per_member() {
        let replies = [
            reply("web1", &["mco", "uk"]),
            reply("web2", &["mco"]),
            reply("db\"1", &["mco", "uk"]),
        ];
        let members = super::collective_members(&replies);
        assert_eq!(
            super::collective_table(&members, 3),
            "\n   Collective     Nodes\n   ==========     =====\n   mco            3\n   uk             2\n\n     Total nodes: 3\n"
        );
        assert_eq!(
            super::collective_graph(&members),
            "graph {\n   subgraph \"mco\" {\n      \"db\\\"1\" -- \"mco\";\n      \"web1\" -- \"mco\";\n      \"web2\" -- \"mco\";\n   }\n   subgraph \"uk\" {\n      \"db\\\"1\" -- \"uk\";\n      \"web1\" -- \"uk\";\n   }\n}\n"
        );
    }
}
