//! Any policy file text: parse it, and decide a request with it on a node whose data plugins
//! all fail. Nothing may panic, and a rule that could not be decided never allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_policy::{Decision, Groups, Policy, PolicyRequest};
use mco_spec::compound::NoData;
use mco_spec::NodeView;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let groups = Groups::parse(text);
    let Ok(policy) = Policy::parse(text, "fuzz.policy") else { return };
    let facts = serde_json::json!({"country": "uk", "cpus": 4});
    let classes = vec!["role::web".to_string()];
    let node = NodeView { identity: "web1", facts: &facts, classes: &classes, agents: &[] };
    for caller in ["alice", "guest1", ""] {
        let verdict = policy.decide(&PolicyRequest { caller, action: "restart", node, data: &NoData }, &groups);
        if verdict.decision == Decision::Allow {
            assert!(!verdict.reason.contains("could not be decided"), "{}", verdict.reason);
        }
    }
});
