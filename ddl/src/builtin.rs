//! The DDLs mco ships: `rpcutil`, `service`, `package` and `puppet`, exactly as their
//! upstream projects publish them (the same files the compatibility tests load), so the
//! client can convert, validate and render for these agents without any DDL on disk.

use crate::model::AgentDdl;

const BUILTIN: [(&str, &str); 4] = [
    ("rpcutil", include_str!("../tests/data/rpcutil.json")),
    ("service", include_str!("../tests/data/service.json")),
    ("package", include_str!("../tests/data/package.json")),
    ("puppet", include_str!("../tests/data/puppet.json")),
];

/// The names of the built-in DDLs.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _)| *n)
}

/// The built-in DDL of `agent`, if mco ships one.
pub fn ddl(agent: &str) -> Option<AgentDdl> {
    let (_, json) = BUILTIN.iter().find(|(n, _)| *n == agent)?;
    // The files are compiled in and loaded by the tests; failing here is a build defect.
    match AgentDdl::from_json(json, &format!("builtin {agent}.json")) {
        Ok(ddl) => Some(ddl),
        Err(e) => panic!("built-in DDL {agent} is invalid: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_loads() {
        for name in super::names() {
            assert_eq!(super::ddl(name).unwrap().metadata.name, name);
        }
        assert!(super::ddl("nope").is_none());
    }
}
