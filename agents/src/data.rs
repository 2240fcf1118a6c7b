//! Data plugins: small named queries a node answers about itself, used by compound filters
//! (`fstat('/etc/hosts').size>=100`) and by `rpcutil get_data`.
//!
//! Built in: `fstat(path)` (see [`crate::fstat`]), `fact(path)` → `{value}`, `agent(name)` →
//! `{present}` plus the agent's metadata, `collective(name)` → `{member}`. Agents add their
//! own through [`crate::Agent::data_query`]; the node ([`NodeInfo::data`]) tries the built-in
//! plugins first, then the agent of that name.

use mco_spec::compound::{DataError, DataSource};
use mco_spec::filter::lookup;
use serde_json::{json, Value};

use crate::agent::NodeInfo;

/// The names of the built-in data plugins.
pub const PLUGINS: [&str; 4] = ["agent", "collective", "fact", "fstat"];

/// Whether `name` is a data plugin this version knows (clients check `-S` filters with it).
pub fn is_known(name: &str) -> bool {
    PLUGINS.contains(&name)
}

/// Answers built-in `plugin(query)` on `node`.
pub fn query(plugin: &str, query: Option<&str>, node: &dyn NodeInfo) -> Result<Value, String> {
    let needs_query = || query.ok_or_else(|| format!("the {plugin} data plugin needs a query"));
    match plugin {
        "fstat" => Ok(crate::fstat::fstat(needs_query()?)),
        "fact" => {
            let facts = node.facts();
            Ok(json!({ "value": lookup(&facts, needs_query()?).cloned().unwrap_or(Value::Null) }))
        }
        "agent" => {
            let name = needs_query()?;
            match node.agents().into_iter().find(|a| a.agent == name) {
                Some(a) => Ok(
                    json!({"present": true, "version": a.version, "author": a.author,
                    "license": a.license, "timeout": a.timeout, "description": a.description}),
                ),
                None => Ok(json!({"present": false})),
            }
        }
        "collective" => {
            let name = needs_query()?;
            Ok(json!({ "member": node.collectives().iter().any(|c| c == name) }))
        }
        other => Err(format!(
            "no data plugin called {other:?} (known: {})",
            PLUGINS.join(", ")
        )),
    }
}

/// A [`DataSource`] over a node, for evaluating compound filters.
pub struct NodeData<'a>(pub &'a dyn NodeInfo);

impl DataSource for NodeData<'_> {
    fn query(&self, plugin: &str, q: Option<&str>) -> Result<Value, DataError> {
        self.0.data(plugin, q).map_err(|reason| DataError {
            plugin: plugin.to_string(),
            reason,
        })
    }
}
