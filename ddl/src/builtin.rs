//! The DDLs mco ships: `rpcutil`, `service`, `package` and `puppet`, exactly as their
//! upstream projects publish them (the same files the compatibility tests load), so the
//! client can convert, validate and render for these agents without any DDL on disk. The one
//! addition is mco's own `daemon_stats` counter `clockskew`, an extra output that Choria's
//! clients ignore.

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
    // The files are compiled in and checked against the schema by the tests; failing here
    // is a build defect.
    match AgentDdl::from_embedded_json(json, &format!("builtin {agent}.json")) {
        Ok(ddl) => Some(ddl),
        Err(e) => panic!("built-in DDL {agent} is invalid: {e}"),
    }
}

/// The DDL of `agent` from `<dir>/<agent>.json` or `<dir>/<agent>/<agent>.json` in the first
/// of `dirs` that has one, else the built-in one; `None` when there is neither. Loaded as
/// Choria loads it; [`find_with_warnings`] also says what is not enforced.
pub fn find(agent: &str, dirs: &[std::path::PathBuf]) -> Result<Option<AgentDdl>, crate::DdlError> {
    Ok(find_with_warnings(agent, dirs)?.map(|loaded| loaded.ddl))
}

/// [`find`], with the load warnings (none for the built-in DDLs, which are clean).
pub fn find_with_warnings(
    agent: &str,
    dirs: &[std::path::PathBuf],
) -> Result<Option<crate::Loaded>, crate::DdlError> {
    for dir in dirs {
        for path in [
            dir.join(format!("{agent}.json")),
            dir.join(agent).join(format!("{agent}.json")),
        ] {
            if path.is_file() {
                return AgentDdl::load(&path).map(Some);
            }
        }
    }
    Ok(ddl(agent).map(|ddl| crate::Loaded {
        ddl,
        warnings: Vec::new(),
    }))
}

/// Every agent with a DDL in `dirs` or built in, sorted.
pub fn all_names(dirs: &[std::path::PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = names().map(str::to_string).collect();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = if path.is_dir() {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| path.join(format!("{n}.json")).is_file())
                    .map(str::to_string)
            } else {
                path.extension()
                    .filter(|e| *e == "json")
                    .and(path.file_stem())
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
            };
            names.extend(name);
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_loads_and_matches_the_schema() {
        for (name, json) in super::BUILTIN {
            assert_eq!(super::ddl(name).unwrap().metadata.name, name);
            let checked = crate::AgentDdl::from_json(json, name).unwrap();
            assert_eq!(checked, super::ddl(name).unwrap());
        }
        assert!(super::ddl("nope").is_none());
    }

    #[test]
    fn directories_come_before_built_ins() {
        let dir = std::env::temp_dir().join(format!("mco-ddl-find-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        let text = include_str!("../tests/data/service.json")
            .replace("Manages Operating System Services", "Local copy");
        std::fs::write(dir.join("service.json"), text).unwrap();
        std::fs::write(
            dir.join("nested/nested.json"),
            include_str!("../tests/data/service.json")
                .replace("\"name\": \"service\"", "\"name\": \"nested\""),
        )
        .unwrap();
        let dirs = vec![dir.clone()];
        assert_eq!(
            super::find("service", &dirs)
                .unwrap()
                .unwrap()
                .metadata
                .description,
            "Local copy"
        );
        assert_eq!(
            super::find("nested", &dirs).unwrap().unwrap().metadata.name,
            "nested"
        );
        assert_eq!(
            super::find("puppet", &dirs).unwrap().unwrap().metadata.name,
            "puppet"
        );
        assert!(super::find("none", &dirs).unwrap().is_none());
        assert!(super::all_names(&dirs).contains(&"nested".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
