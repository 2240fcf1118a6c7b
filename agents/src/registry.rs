//! The one place built-in agents are registered. Adding an agent means adding its file and
//! one line here.

use std::sync::Arc;

use crate::agent::Agent;

/// Every built-in agent, discovery included.
pub fn builtin_agents() -> Vec<Arc<dyn Agent>> {
    vec![
        Arc::new(crate::discovery::Discovery::new()),
        Arc::new(crate::rpcutil::Rpcutil::new()),
    ]
}
