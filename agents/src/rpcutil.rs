//! The `rpcutil` agent: what a node is and how it is doing. Actions and outputs follow
//! Choria's rpcutil DDL (shipped by `mco_ddl::builtin`), so existing tooling reads them.

use async_trait::async_trait;
use mco_ddl::AgentDdl;
use mco_spec::filter::lookup;
use mco_spec::message::now_millis;
use serde_json::{json, Map, Value};

use crate::agent::{outputs, shipped_ddl, ActionContext, Agent, Outcome};
use crate::data;
use crate::providers::command::Deadline;

/// The rpcutil agent.
pub struct Rpcutil {
    ddl: AgentDdl,
}

impl Rpcutil {
    /// The agent with Choria's rpcutil DDL, which mco ships.
    pub fn new() -> Rpcutil {
        Rpcutil {
            ddl: shipped_ddl("rpcutil"),
        }
    }
}

impl Default for Rpcutil {
    fn default() -> Self {
        Rpcutil::new()
    }
}

fn input<'a>(data: &'a Map<String, Value>, name: &str) -> &'a str {
    // The node validated inputs against the DDL before calling, so required strings are here.
    data.get(name).and_then(Value::as_str).unwrap_or_default()
}

#[async_trait]
impl Agent for Rpcutil {
    fn ddl(&self) -> &AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        ctx: &ActionContext<'_>,
        action: &str,
        data: &Map<String, Value>,
    ) -> Outcome {
        let node = ctx.node;
        match action {
            "ping" => Outcome::ok(outputs([("pong", json!(now_millis() / 1000))])),
            "collective_info" => Outcome::ok(outputs([
                ("main_collective", json!(node.main_collective())),
                ("collectives", json!(node.collectives())),
            ])),
            "agent_inventory" => Outcome::ok(outputs([("agents", json!(node.agents()))])),
            "inventory" => {
                let agents: Vec<String> = node.agents().into_iter().map(|a| a.agent).collect();
                Outcome::ok(outputs([
                    ("agents", json!(agents)),
                    ("facts", (*node.facts()).clone()),
                    ("classes", json!(*node.classes())),
                    ("version", json!(node.version())),
                    ("main_collective", json!(node.main_collective())),
                    ("collectives", json!(node.collectives())),
                    ("data_plugins", json!(data::PLUGINS)),
                    ("machines", json!({})),
                    ("upgradable", json!(false)),
                ]))
            }
            "get_fact" => {
                let fact = input(data, "fact");
                let facts = node.facts();
                let value = lookup(&facts, fact).cloned().unwrap_or(Value::Null);
                Outcome::ok(outputs([("fact", json!(fact)), ("value", value)]))
            }
            "get_facts" => {
                let facts = node.facts();
                let values: Map<String, Value> = input(data, "facts")
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(|f| {
                        (
                            f.to_string(),
                            lookup(&facts, f).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                Outcome::ok(outputs([("values", Value::Object(values))]))
            }
            "daemon_stats" => Outcome::ok(node.stats()),
            "get_config_item" => {
                let item = input(data, "item");
                match node.config_item(item) {
                    Some(value) => Outcome::ok(outputs([("item", json!(item)), ("value", value)])),
                    None => Outcome::invalid(format!(
                        "{item} is not a configuration item this node shares"
                    )),
                }
            }
            "get_data" => {
                let source = input(data, "source");
                let query = data.get("query").and_then(Value::as_str);
                // Off the runtime, and answered before the node gives up on the action.
                let limit = Deadline::for_timeout(self.ddl.metadata.timeout).remaining();
                match data::run_off_runtime(node.data_task(source, query), limit).await {
                    Ok(Value::Object(map)) => Outcome::ok(map),
                    Ok(other) => Outcome::ok(outputs([("value", other)])),
                    Err(reason) => Outcome::aborted(reason),
                }
            }
            other => Outcome::unknown_action("rpcutil", other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentSummary, NodeInfo};
    use mco_spec::StatusCode;
    use std::sync::Arc;

    pub(crate) struct FakeNode;

    impl NodeInfo for FakeNode {
        fn identity(&self) -> &str {
            "web1"
        }
        fn facts(&self) -> Arc<Value> {
            Arc::new(json!({"country": "uk", "os": {"family": "debian"}, "cpus": 4}))
        }
        fn classes(&self) -> Arc<Vec<String>> {
            Arc::new(vec!["webserver".into()])
        }
        fn collectives(&self) -> Vec<String> {
            vec!["mco".into(), "uk".into()]
        }
        fn main_collective(&self) -> String {
            "mco".into()
        }
        fn agents(&self) -> Vec<AgentSummary> {
            vec![AgentSummary::of(Rpcutil::new().ddl())]
        }
        fn stats(&self) -> Map<String, Value> {
            outputs([("total", json!(3))])
        }
        fn config_item(&self, item: &str) -> Option<Value> {
            (item == "identity").then(|| json!("web1"))
        }
        fn fstat_policy(&self) -> Arc<crate::fstat::FstatPolicy> {
            Arc::new(crate::fstat::FstatPolicy::default())
        }
        fn data_task(&self, plugin: &str, query: Option<&str>) -> data::DataTask {
            data::builtin_task(plugin, query, self)
                .unwrap_or_else(|| data::ready(Err(format!("no data plugin called {plugin:?}"))))
        }
    }

    async fn call(action: &str, data: Value) -> Outcome {
        let request = mco_spec::Request {
            id: "r".into(),
            collective: "mco".into(),
            agent: "rpcutil".into(),
            action: action.into(),
            data: Map::new(),
            filter: Default::default(),
            caller: "alice".into(),
            sender: "admin".into(),
            time: 0,
            ttl: 60,
            targets: None,
            reply_to: "x".into(),
        };
        let ctx = ActionContext {
            request: &request,
            node: &FakeNode,
        };
        Rpcutil::new()
            .call(&ctx, action, data.as_object().unwrap())
            .await
    }

    #[tokio::test]
    async fn every_action_answers() {
        let ping = call("ping", json!({})).await;
        assert!(ping.data["pong"].as_u64().unwrap() > 1_700_000_000);
        let info = call("collective_info", json!({})).await;
        assert_eq!(info.data["collectives"], json!(["mco", "uk"]));
        assert_eq!(info.data["main_collective"], "mco");
        let inv = call("agent_inventory", json!({})).await;
        assert_eq!(inv.data["agents"][0]["agent"], "rpcutil");
        assert_eq!(inv.data["agents"][0]["timeout"], 2);
        let inventory = call("inventory", json!({})).await;
        assert_eq!(inventory.data["agents"], json!(["rpcutil"]));
        assert_eq!(inventory.data["facts"]["country"], "uk");
        assert_eq!(inventory.data["classes"], json!(["webserver"]));
        assert!(inventory.data["data_plugins"]
            .as_array()
            .unwrap()
            .contains(&json!("fstat")));
        let fact = call("get_fact", json!({"fact": "os.family"})).await;
        assert_eq!(
            (fact.data["fact"].as_str(), &fact.data["value"]),
            (Some("os.family"), &json!("debian"))
        );
        let missing = call("get_fact", json!({"fact": "nope"})).await;
        assert_eq!(missing.statuscode, StatusCode::Ok);
        assert_eq!(missing.data["value"], Value::Null);
        let facts = call("get_facts", json!({"facts": "country, cpus,nope"})).await;
        assert_eq!(
            facts.data["values"],
            json!({"country": "uk", "cpus": 4, "nope": null})
        );
        assert_eq!(call("daemon_stats", json!({})).await.data["total"], 3);
        let item = call("get_config_item", json!({"item": "identity"})).await;
        assert_eq!(item.data["value"], "web1");
        let unknown = call("get_config_item", json!({"item": "nope"})).await;
        assert_eq!(unknown.statuscode, StatusCode::InvalidData);
        let data = call("get_data", json!({"source": "fact", "query": "country"})).await;
        assert_eq!(data.data["value"], "uk");
        let bad = call("get_data", json!({"source": "nope"})).await;
        assert_eq!(bad.statuscode, StatusCode::Aborted);
        let pagemap = call(
            "get_data",
            json!({"source": "fstat", "query": "/proc/self/pagemap"}),
        )
        .await;
        assert_eq!(
            (pagemap.statuscode, pagemap.statusmsg.as_ref()),
            (
                StatusCode::Aborted,
                "fstat is not permitted to look at \"/proc/self/pagemap\" on this node"
            )
        );
        let hosts = call(
            "get_data",
            json!({"source": "fstat", "query": "/etc/hosts"}),
        )
        .await;
        assert_eq!(hosts.data["present"], true, "{hosts:?}");
        assert_eq!(
            call("explode", json!({})).await.statuscode,
            StatusCode::UnknownAction
        );
    }
}
