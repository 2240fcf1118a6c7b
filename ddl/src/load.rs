//! Loading a DDL: JSON, then the JSON Schema, then semantic checks.
//!
//! The schema (`ddl/schemas/agent.json`, Choria's own, unmodified) catches shape errors; the
//! semantic checks catch what a schema cannot: an action declared twice, an aggregate over an
//! output the action does not declare, a regular expression that does not compile, a default
//! of the wrong type, a DDL whose name is not its file name. Every error names the file, and
//! where it applies the action and the field.

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use crate::model::{AgentDdl, InputType};
use crate::validate::check_value_type;
use crate::validators::Validation;

/// Choria's JSON Schema for agent DDLs, as published.
pub const AGENT_DDL_SCHEMA: &str = include_str!("../schemas/agent.json");

/// Why a DDL could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DdlError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON, or not the shape of a DDL.
    #[error("{file}: not a valid DDL: {reason}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message.
        reason: String,
    },
    /// The DDL does not satisfy the DDL JSON Schema.
    #[error("{file}: does not match the DDL schema: {}", .problems.join("; "))]
    Schema {
        /// The file.
        file: String,
        /// Each violation, with its JSON path.
        problems: Vec<String>,
    },
    /// The DDL is well-formed but inconsistent.
    #[error("{file}: {}{field}: {reason}", .action.as_ref().map(|a| format!("action {a}: ")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: String,
        /// The action at fault, if the problem is in one.
        action: Option<String>,
        /// The field at fault (`input.service.validation`, `aggregate[0]`, `metadata.name`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The schema is compiled into the binary and covered by tests, so failing here is a
        // build defect, not something input can cause.
        let value: Value =
            serde_json::from_str(AGENT_DDL_SCHEMA).expect("embedded DDL schema is JSON");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&value)
            .expect("embedded DDL schema compiles")
    })
}

impl AgentDdl {
    /// Reads and checks the DDL at `path`. Its `metadata.name` must equal the file stem.
    pub fn load(path: &Path) -> Result<AgentDdl, DdlError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DdlError::Io {
            file: file.clone(),
            source,
        })?;
        let ddl = AgentDdl::from_json(&text, &file)?;
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            if stem != ddl.metadata.name {
                return Err(DdlError::Invalid {
                    file,
                    action: None,
                    field: "metadata.name".into(),
                    reason: format!(
                        "the agent is called {:?} but the file is named {stem:?}",
                        ddl.metadata.name
                    ),
                });
            }
        }
        Ok(ddl)
    }

    /// Parses and checks a DDL from JSON text; `file` is used in error messages.
    pub fn from_json(text: &str, file: &str) -> Result<AgentDdl, DdlError> {
        let value: Value = serde_json::from_str(text).map_err(|e| DdlError::Parse {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        check_schema(&value, file)?;
        let ddl: AgentDdl = serde_json::from_value(value).map_err(|e| DdlError::Parse {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        check(&ddl, file)?;
        Ok(ddl)
    }

    /// Parses a DDL compiled into the binary without checking it: each such DDL goes
    /// through [`Self::from_json`] (schema and semantic checks) in the tests of the crate
    /// that embeds it, which also compare the two results. Skipping the checks at run time
    /// keeps the schema validator (a fifth of mcod's code) and the regular-expression
    /// compiler out of the start of a daemon that loads only compiled-in DDLs, so that code
    /// is never paged in; validation regexes compile on first use instead.
    pub fn from_embedded_json(text: &str, file: &str) -> Result<AgentDdl, DdlError> {
        serde_json::from_str(text).map_err(|e| DdlError::Parse {
            file: file.to_string(),
            reason: e.to_string(),
        })
    }
}

fn check_schema(value: &Value, file: &str) -> Result<(), DdlError> {
    let problems: Vec<String> = schema()
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { at.as_str() })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DdlError::Schema {
            file: file.to_string(),
            problems,
        })
    }
}

const AGGREGATE_FUNCTIONS: [&str; 4] = ["summary", "boolean_summary", "average", "sum"];

fn check(ddl: &AgentDdl, file: &str) -> Result<(), DdlError> {
    let invalid = |action: Option<&str>, field: String, reason: String| DdlError::Invalid {
        file: file.to_string(),
        action: action.map(str::to_string),
        field,
        reason,
    };
    if ddl.metadata.timeout == 0 {
        return Err(invalid(
            None,
            "metadata.timeout".into(),
            "must be at least 1 second".into(),
        ));
    }
    let mut seen = HashSet::new();
    for action in &ddl.actions {
        let name = Some(action.action.as_str());
        if !seen.insert(action.action.as_str()) {
            return Err(invalid(
                name,
                "action".into(),
                "declared more than once".into(),
            ));
        }
        for (input_name, input) in &action.input {
            let field = |what: &str| format!("input.{input_name}.{what}");
            match input.kind {
                InputType::String => {
                    if let Some(rule) = &input.validation {
                        Validation::parse(rule)
                            .map_err(|reason| invalid(name, field("validation"), reason))?;
                    }
                }
                InputType::List if input.list.as_ref().is_none_or(|l| l.is_empty()) => {
                    return Err(invalid(
                        name,
                        field("list"),
                        "a list input needs at least one value".into(),
                    ));
                }
                _ => {}
            }
            if let Some(default) = input.default.as_ref().filter(|d| !d.is_null()) {
                check_value_type(input, default)
                    .map_err(|reason| invalid(name, field("default"), reason))?;
            }
        }
        for (index, aggregate) in action.aggregate.iter().enumerate() {
            let field = format!("aggregate[{index}]");
            if !AGGREGATE_FUNCTIONS.contains(&aggregate.function.as_str()) {
                return Err(invalid(
                    name,
                    field,
                    format!(
                        "unknown aggregate function {:?} (known: {})",
                        aggregate.function,
                        AGGREGATE_FUNCTIONS.join(", ")
                    ),
                ));
            }
            match aggregate.output() {
                None => {
                    return Err(invalid(
                        name,
                        field,
                        "the first argument must name an output".into(),
                    ))
                }
                Some(output) if !action.output.contains_key(output) => {
                    return Err(invalid(
                        name,
                        field,
                        format!("{} over undeclared output {output:?}", aggregate.function),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
