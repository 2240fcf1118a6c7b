//! Node lists written by people and by other programs: the `flatfile` method (`--nodes FILE`)
//! and the `stdin` method (`mco ... -j | jq ... | mco ...`).
//!
//! [`parse`] accepts, and tells apart by their first character:
//! - a JSON array of identities (`["web1", "web2"]`), or of objects with a `sender`
//!   (`mco rpc ... -j` output), `identity` or `certname` (PuppetDB) field;
//! - a JSON object with a `replies` array of such objects (`mco rpc ... --json-full`,
//!   Choria's `-j`) or a `nodes` array;
//! - JSON lines: one such object or string per line;
//! - a YAML list (`- web1`);
//! - plain text: one identity per line, `#` starting a comment.
//!
//! Every identity is checked ([`mco_spec::subjects::is_valid_identity`]) and the list comes
//! back sorted without duplicates. An empty input is an empty list, not an error: a pipeline
//! whose filter kept nothing must act on nothing.
//!
//! Not for: reading files or stdin (the caller does), or filtering (see [`crate::method`]).

use serde_json::Value;

use crate::DiscoveryError;

/// Parses a node list in any of the accepted formats; `source` names it in errors.
pub fn parse(text: &str, source: &str) -> Result<Vec<String>, DiscoveryError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    let invalid = |reason: String| DiscoveryError::InvalidNodeList {
        origin: source.to_string(),
        reason,
    };
    let mut nodes = if trimmed.is_empty() {
        Vec::new()
    } else if trimmed.starts_with('[') || trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(value) => from_json(&value).map_err(invalid)?,
            // Not one JSON document: JSON lines, one value per line.
            Err(whole) if trimmed.starts_with('{') => {
                let mut nodes = Vec::new();
                for (n, line) in trimmed.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    let value: Value = serde_json::from_str(line).map_err(|e| {
                        invalid(format!(
                            "line {}: not JSON ({e}); as one document: {whole}",
                            n + 1
                        ))
                    })?;
                    nodes.extend(
                        from_json(&value).map_err(|r| invalid(format!("line {}: {r}", n + 1)))?,
                    );
                }
                nodes
            }
            Err(e) => return Err(invalid(format!("not valid JSON: {e}"))),
        }
    } else if trimmed.starts_with("- ") || trimmed.starts_with("---") {
        let value: Value = serde_yaml_ng::from_str(trimmed)
            .map_err(|e| invalid(format!("not a valid YAML list: {e}")))?;
        from_json(&value).map_err(invalid)?
    } else {
        trimmed
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    if let Some(bad) = nodes
        .iter()
        .find(|n| !mco_spec::subjects::is_valid_identity(n))
    {
        return Err(invalid(format!("{bad:?} is not a valid node identity")));
    }
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// The identities in a parsed JSON (or YAML) value.
fn from_json(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => items.iter().map(identity_of).collect(),
        Value::Object(map) => {
            if let Some(Value::Array(items)) = map.get("replies").or_else(|| map.get("nodes")) {
                items.iter().map(identity_of).collect()
            } else {
                identity_of(value).map(|n| vec![n])
            }
        }
        Value::String(s) => Ok(vec![s.clone()]),
        other => Err(format!("expected a list of nodes, found {other}")),
    }
}

/// The identity one list entry names.
fn identity_of(item: &Value) -> Result<String, String> {
    match item {
        Value::String(s) => Ok(s.clone()),
        Value::Object(map) => ["sender", "identity", "certname"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .ok_or_else(|| {
                let shown = item.to_string();
                let shown: String = shown.chars().take(80).collect();
                format!("an entry has no sender, identity or certname: {shown}")
            }),
        other => Err(format!("an entry is not a node name: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_gives_the_same_sorted_list() {
        let table: &[(&str, &str)] = &[
            (
                "plain lines",
                "web2\n# a comment\nweb1  # trailing\n\nweb2\n",
            ),
            ("json strings", r#"["web2", "web1"]"#),
            (
                "mco rpc -j",
                r#"[{"sender":"web2","statuscode":0,"data":{}},{"sender":"web1","data":{"version":"1.2.3"}}]"#,
            ),
            (
                "json-full / choria",
                r#"{"replies":[{"sender":"web1"},{"sender":"web2"}],"stats":{}}"#,
            ),
            ("nodes object", r#"{"nodes":["web1","web2"]}"#),
            ("puppetdb", r#"[{"certname":"web1"},{"certname":"web2"}]"#),
            (
                "json lines",
                "{\"sender\":\"web2\",\"data\":{}}\n{\"sender\":\"web1\"}\n",
            ),
            ("yaml", "---\n- web1\n- web2\n"),
            ("yaml without header", "- web2\n- web1\n"),
        ];
        for (name, text) in table {
            assert_eq!(parse(text, "t").unwrap(), ["web1", "web2"], "{name}");
        }
    }

    #[test]
    fn empty_input_is_an_empty_list() {
        for text in [
            "",
            "\n  \n",
            "[]",
            "# only a comment\n",
            r#"{"replies":[]}"#,
        ] {
            assert!(parse(text, "t").unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn bad_input_is_an_error_naming_the_problem() {
        let table: &[(&str, &str)] = &[
            (
                "web1\nnot valid!\n",
                "\"not valid!\" is not a valid node identity",
            ),
            (r#"[{"data":1}]"#, "has no sender, identity or certname"),
            ("[1, 2]", "not a node name"),
            ("[\"web1\"", "not valid JSON"),
            ("{\"sender\":\"a\"}\n{oops}\n", "line 2: not JSON"),
            ("web1;reboot", "is not a valid node identity"),
        ];
        for (text, want) in table {
            let message = parse(text, "nodes.txt").unwrap_err().to_string();
            assert!(message.contains(want), "{want:?} not in {message:?}");
            assert!(message.starts_with("nodes.txt"), "{message}");
        }
    }
}
