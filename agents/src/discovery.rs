//! The `discovery` agent: answers the ping that broadcast discovery and `mco ping` send.
//! Every node serves it; it is not listed in `agent_inventory`.

use async_trait::async_trait;
use mco_ddl::AgentDdl;
use mco_spec::message::now_millis;
use serde_json::{json, Map, Value};

use crate::agent::{builtin_ddl, outputs, ActionContext, Agent, Outcome};

/// The discovery agent.
pub struct Discovery {
    ddl: AgentDdl,
}

impl Discovery {
    /// The agent with its built-in DDL.
    pub fn new() -> Discovery {
        Discovery {
            ddl: builtin_ddl(include_str!("../ddl/discovery.json"), "discovery.json"),
        }
    }
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery::new()
    }
}

#[async_trait]
impl Agent for Discovery {
    fn ddl(&self) -> &AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        _ctx: &ActionContext<'_>,
        action: &str,
        _data: &Map<String, Value>,
    ) -> Outcome {
        match action {
            "ping" => Outcome::ok(outputs([("pong", json!(now_millis() / 1000))])),
            other => Outcome::unknown_action("discovery", other),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_ddl_matches_the_ddl_schema() {
        let json = include_str!("../ddl/discovery.json");
        let checked = mco_ddl::AgentDdl::from_json(json, "discovery.json").unwrap();
        use crate::Agent;
        assert_eq!(&checked, super::Discovery::new().ddl());
    }
}
