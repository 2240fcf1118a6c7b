//! What each discovery method can answer, and the filter applied to a node list.
//!
//! A method that cannot serve a filter refuses it with [`DiscoveryError::Unsupported`]; it
//! never ignores part of the filter, which would widen the selection silently (MCollective's
//! "Cannot use fact filters while using the 'flatfile' discovery method").
//!
//! Not for: running any method (the client does, with the pieces of this crate).

use mco_spec::Filter;

use crate::DiscoveryError;

/// The discovery methods, as `--dm` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// A discovery ping on the broker (`broadcast`, MCollective's `mc`).
    Broadcast,
    /// A file of node names (`--nodes FILE`).
    Flatfile,
    /// Node names piped on stdin.
    Stdin,
    /// The registry database.
    Registry,
    /// An external program.
    External,
}

impl MethodKind {
    /// Every method, for help texts and errors.
    pub const ALL: [MethodKind; 5] = [
        MethodKind::Broadcast,
        MethodKind::Flatfile,
        MethodKind::Stdin,
        MethodKind::Registry,
        MethodKind::External,
    ];

    /// Parses a `--dm` value (`mc` is MCollective's name for broadcast).
    pub fn from_name(name: &str) -> Result<MethodKind, DiscoveryError> {
        match name {
            "broadcast" | "mc" => Ok(MethodKind::Broadcast),
            "flatfile" | "file" => Ok(MethodKind::Flatfile),
            "stdin" => Ok(MethodKind::Stdin),
            "registry" => Ok(MethodKind::Registry),
            "external" => Ok(MethodKind::External),
            other => Err(DiscoveryError::InvalidOption(format!(
                "unknown discovery method {other:?} (known: broadcast, flatfile, stdin, registry, external)"
            ))),
        }
    }

    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Broadcast => "broadcast",
            MethodKind::Flatfile => "flatfile",
            MethodKind::Stdin => "stdin",
            MethodKind::Registry => "registry",
            MethodKind::External => "external",
        }
    }

    /// Whether the method yields a node list that the request then addresses directly.
    pub fn yields_node_list(self) -> bool {
        self != MethodKind::Broadcast
    }
}

/// Applies `filter` to a node list from a file or stdin. Such a list knows node names only:
/// identity filters (`-I`, exact or `/regex/`) select from it, and any other filter is refused.
pub fn select_from_list(
    method: MethodKind,
    nodes: Vec<String>,
    filter: &Filter,
) -> Result<Vec<String>, DiscoveryError> {
    let refuse = |what: &str| DiscoveryError::Unsupported {
        method: method.name().to_string(),
        what: what.to_string(),
    };
    if !filter.fact.is_empty() {
        return Err(refuse("fact filters (-F, or facts in -W)"));
    }
    if !filter.class.is_empty() {
        return Err(refuse("class filters (-C, or classes in -W)"));
    }
    if !filter.agent.is_empty() {
        return Err(refuse("agent filters (-A)"));
    }
    if !filter.compound.is_empty() {
        return Err(refuse("compound filters (-S)"));
    }
    if filter.identity.is_empty() {
        return Ok(nodes);
    }
    let identities_only = Filter {
        identity: filter.identity.clone(),
        ..Filter::default()
    };
    let compiled = identities_only
        .compile()
        .map_err(|e| DiscoveryError::InvalidOption(e.to_string()))?;
    let empty_facts = serde_json::Value::Object(serde_json::Map::new());
    Ok(nodes
        .into_iter()
        .filter(|n| {
            compiled.matches(&mco_spec::NodeView {
                identity: n,
                facts: &empty_facts,
                classes: &[],
                agents: &[],
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Vec<String> {
        ["db1", "web1", "web2"].map(String::from).to_vec()
    }

    #[test]
    fn identity_filters_select_from_a_list() {
        let mut filter = Filter::default();
        assert_eq!(
            select_from_list(MethodKind::Flatfile, list(), &filter).unwrap(),
            list()
        );
        filter.add_identity("/^web/").unwrap();
        filter.add_identity("db1").unwrap();
        assert_eq!(
            select_from_list(MethodKind::Stdin, list(), &filter).unwrap(),
            list()
        );
        let mut only = Filter::default();
        only.add_identity("/2$/").unwrap();
        assert_eq!(
            select_from_list(MethodKind::Stdin, list(), &only).unwrap(),
            ["web2"]
        );
    }

    #[test]
    fn other_filters_are_refused_with_the_method_named() {
        type AddFilter = fn(&mut Filter);
        let table: &[(&str, AddFilter)] = &[
            ("fact filters", |f| f.add_fact("country=uk").unwrap()),
            ("class filters", |f| f.add_class("webserver").unwrap()),
            ("agent filters", |f| f.add_agent("service").unwrap()),
            ("compound filters", |f| {
                f.add_compound("country=uk").unwrap()
            }),
        ];
        for (want, add) in table {
            let mut filter = Filter::default();
            add(&mut filter);
            let message = select_from_list(MethodKind::Flatfile, list(), &filter)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(&format!("the flatfile discovery method cannot use {want}")),
                "{message}"
            );
        }
    }

    #[test]
    fn method_names_parse() {
        for kind in MethodKind::ALL {
            assert_eq!(MethodKind::from_name(kind.name()).unwrap(), kind);
        }
        assert_eq!(MethodKind::from_name("mc").unwrap(), MethodKind::Broadcast);
        assert!(MethodKind::from_name("puppetdb")
            .unwrap_err()
            .to_string()
            .contains("unknown discovery method \"puppetdb\""));
    }
}
