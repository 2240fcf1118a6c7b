//! Any filter text as typed after -F, -W, -I or -S: parse, compile and evaluate. Nothing may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_spec::compound::Expr;
use mco_spec::{FactFilter, Filter, NodeView};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let facts = serde_json::json!({"country": "uk", "cpus": 4, "os": {"family": "debian"}, "roles": ["web"]});
    let classes = vec!["role::web".to_string()];
    let node = NodeView { identity: "web1", facts: &facts, classes: &classes, agents: &[] };
    let _ = FactFilter::parse(text);
    let mut filter = Filter::default();
    let _ = filter.add_with(text);
    let _ = filter.add_identity(text);
    let _ = filter.add_compound(text);
    if let Ok(compiled) = filter.compile() {
        let _ = compiled.matches(&node);
    }
    if let Ok(expr) = Expr::parse(text) {
        let _ = expr.matches(&node, &mco_spec::compound::NoData);
    }
});
