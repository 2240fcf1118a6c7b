//! Any filter text as typed after -F, -W, -I or -S: parse, compile and evaluate, also buried
//! deep in parentheses and `not`s (the first byte says how deep, up to 25,500 levels, far past
//! the parser's limit). Nothing may panic, overflow the stack or take unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_spec::compound::Expr;
use mco_spec::{FactFilter, Filter, NodeView};

fuzz_target!(|data: &[u8]| {
    let Some((&depth, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let facts = serde_json::json!({"country": "uk", "cpus": 4, "os": {"family": "debian"}, "roles": ["web"]});
    let classes = vec!["role::web".to_string()];
    let node = NodeView { identity: "web1", facts: &facts, classes: &classes, agents: &[] };
    let levels = usize::from(depth) * 100;
    let deep = match depth % 2 {
        0 => format!("{}{text}{}", "(".repeat(levels), ")".repeat(levels)),
        _ => format!("{}{text}", "not ".repeat(levels)),
    };
    for text in [text, deep.as_str()] {
        let _ = FactFilter::parse(text);
        let mut filter = Filter::default();
        let _ = filter.add_with(text);
        let _ = filter.add_identity(text);
        let _ = filter.add_compound(text);
        // What a node does with a filter that came over the wire, unchecked by a client.
        filter.compound.push(text.to_string());
        filter.class.push(format!("/{text}/"));
        if let Ok(compiled) = filter.compile() {
            let _ = compiled.matches(&node);
        }
        if let Ok(expr) = Expr::parse(text) {
            let _ = expr.matches(&node, &mco_spec::compound::NoData);
        }
    }
});
