//! Test helpers for agents' unit tests: a node with fixed data and a way to call an action
//! as the node's pipeline would (inputs validated against the DDL first). Tests only.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::agent::{ActionContext, Agent, AgentSummary, NodeInfo, Outcome};

/// A node with fixed facts and no agents of its own.
pub struct TestNode;

impl NodeInfo for TestNode {
    fn identity(&self) -> &str {
        "test1"
    }
    fn facts(&self) -> Arc<Value> {
        Arc::new(json!({}))
    }
    fn classes(&self) -> Arc<Vec<String>> {
        Arc::new(Vec::new())
    }
    fn collectives(&self) -> Vec<String> {
        vec!["mco".into()]
    }
    fn main_collective(&self) -> String {
        "mco".into()
    }
    fn agents(&self) -> Vec<AgentSummary> {
        Vec::new()
    }
    fn stats(&self) -> Map<String, Value> {
        Map::new()
    }
    fn config_item(&self, _item: &str) -> Option<Value> {
        None
    }
    fn fstat_policy(&self) -> Arc<crate::fstat::FstatPolicy> {
        Arc::new(crate::fstat::FstatPolicy::default())
    }
    fn data_task(&self, plugin: &str, query: Option<&str>) -> crate::data::DataTask {
        crate::data::builtin_task(plugin, query, self)
            .unwrap_or_else(|| crate::data::ready(Err(format!("no data plugin called {plugin:?}"))))
    }
}

/// Calls `action` of `agent` with `data`, validating and defaulting inputs first and filling
/// output defaults afterwards, as the node does; an input the DDL refuses is the outcome.
pub async fn call(agent: &dyn Agent, node: &dyn NodeInfo, action: &str, data: Value) -> Outcome {
    let mut data = data.as_object().cloned().unwrap_or_default();
    let request = mco_spec::Request {
        id: "test".into(),
        collective: "mco".into(),
        agent: agent.ddl().metadata.name.as_str().into(),
        action: action.into(),
        data: data.clone(),
        filter: Default::default(),
        caller: "alice".into(),
        sender: "admin".into(),
        time: 0,
        ttl: 60,
        targets: None,
        reply_to: "x".into(),
    };
    let Some(declared) = agent.ddl().action(action) else {
        return Outcome::unknown_action(&request.agent, action);
    };
    if let Err(e) = declared.validate_inputs(&mut data) {
        return Outcome::fail(e.status(), e.to_string());
    }
    let ctx = ActionContext {
        request: &request,
        node,
    };
    let mut outcome = agent.call(&ctx, action, &data).await;
    declared.apply_output_defaults(&mut outcome.data);
    outcome
}
