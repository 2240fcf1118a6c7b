//! Loading a DDL two ways: as Choria loads it, and as an author checks it.
//!
//! Choria's agent loader decodes the JSON and applies its JSON Schema only when generating
//! DDLs, so real DDLs break the schema in harmless ways (upper-case input names, a hyphen in
//! an action name, no `optional` key, `default: ""` on a required input) and use validators
//! and aggregates of their own. [`AgentDdl::load`] (client and node) therefore accepts what
//! Choria accepts and returns [`Finding`]s to warn about for what mco will not enforce or
//! will skip; only a DDL mco cannot run safely (not JSON, not the shape of a DDL, an action
//! declared twice, a zero timeout, a name that is not its file's) is refused.
//!
//! [`lint`] and [`AgentDdl::from_json`] are the strict path (`mco plugin lint`): the schema
//! (`ddl/schemas/agent.json`, Choria's own, unmodified) catches shape errors; the semantic
//! checks catch what a schema cannot: an aggregate over an output the action does not
//! declare, a regular expression that does not compile, an unknown validator or aggregate, a
//! default of the wrong type. Every finding names the action and the field.
//!
//! Not for: validating inputs ([`crate::validate`]).

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use crate::aggregate::FUNCTIONS as AGGREGATE_FUNCTIONS;
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

/// What kind of departure from the schema or mco's checks a [`Finding`] is, which decides
/// what [`AgentDdl::load`] does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// The DDL breaks Choria's JSON Schema; Choria's loader does not check it, nor does mco's.
    Schema,
    /// A validator name mco does not know: loaded, and the input is checked only by its type
    /// and length (Choria: "Unsupported validator").
    UnsupportedValidator,
    /// An aggregate function mco does not know: loaded, and the aggregate is skipped.
    UnknownAggregate,
    /// A `validation` regex that does not compile: loaded, and every value is refused.
    InvalidRegex,
    /// A list input with no values: loaded, and every value is refused.
    EmptyList,
    /// A default that fails its own input's checks; Choria never checks defaults at load.
    InvalidDefault,
    /// An aggregate over an output the action does not declare (or names none).
    UndeclaredOutput,
    /// An action declared twice: which one a request means is ambiguous, so refused.
    DuplicateAction,
    /// A zero timeout would stop every action at once, so refused.
    ZeroTimeout,
    /// `metadata.name` is not the file's name, so the agent would be found under another.
    NameMismatch,
}

impl FindingKind {
    /// Whether [`AgentDdl::load`] refuses a DDL with this finding.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            FindingKind::DuplicateAction | FindingKind::ZeroTimeout | FindingKind::NameMismatch
        )
    }

    /// What loading does about it, for the findings [`AgentDdl::load`] warns about; `None`
    /// for those it accepts silently, as Choria does.
    pub fn effect(self) -> Option<&'static str> {
        match self {
            FindingKind::UnsupportedValidator => {
                Some("not enforced: only the type and length are checked, the agent must validate")
            }
            FindingKind::UnknownAggregate => Some("skipped"),
            FindingKind::InvalidRegex | FindingKind::EmptyList => Some("every value is refused"),
            _ => None,
        }
    }
}

/// One problem in a DDL: what, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of problem.
    pub kind: FindingKind,
    /// The action at fault, if the problem is in one.
    pub action: Option<String>,
    /// The field at fault (`input.service.validation`, `aggregate[0]`, or for schema findings
    /// a JSON pointer such as `/actions/0/action`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(action) = &self.action {
            write!(f, "action {action}: ")?;
        }
        write!(f, "{}: {}", self.field, self.reason)?;
        if let Some(effect) = self.kind.effect() {
            write!(f, " ({effect})")?;
        }
        Ok(())
    }
}

impl Finding {
    fn into_error(self, file: &str) -> DdlError {
        DdlError::Invalid {
            file: file.to_string(),
            action: self.action,
            field: self.field,
            reason: self.reason,
        }
    }
}

/// A DDL loaded as Choria loads it, with what mco will not enforce or will skip.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The DDL.
    pub ddl: AgentDdl,
    /// Findings to show the operator (on `mco plugin doc`, in mcod's log); each has an
    /// [`FindingKind::effect`].
    pub warnings: Vec<Finding>,
}

impl AgentDdl {
    /// Reads the DDL at `path` as Choria does (see the module doc). Its `metadata.name` must
    /// equal the file stem.
    pub fn load(path: &Path) -> Result<Loaded, DdlError> {
        let file = path.display().to_string();
        let text = read(path)?;
        let loaded = AgentDdl::from_json_lenient(&text, &file)?;
        let stem = path.file_stem().and_then(|s| s.to_str());
        match stem.and_then(|stem| name_mismatch(&loaded.ddl, stem)) {
            Some(finding) => Err(finding.into_error(&file)),
            None => Ok(loaded),
        }
    }

    /// Parses a DDL from JSON text as Choria does; `file` is used in error messages.
    pub fn from_json_lenient(text: &str, file: &str) -> Result<Loaded, DdlError> {
        let ddl = decode(parse(text, file)?, file)?;
        let findings = check(&ddl);
        if let Some(fatal) = findings.iter().find(|f| f.kind.is_fatal()) {
            return Err(fatal.clone().into_error(file));
        }
        let warnings = findings
            .into_iter()
            .filter(|f| f.kind.effect().is_some())
            .collect();
        Ok(Loaded { ddl, warnings })
    }

    /// Parses and strictly checks a DDL from JSON text (schema, then the first semantic
    /// problem); `file` is used in error messages. For DDLs mco ships and for tests.
    pub fn from_json(text: &str, file: &str) -> Result<AgentDdl, DdlError> {
        let value = parse(text, file)?;
        let problems = schema_findings(&value);
        if !problems.is_empty() {
            return Err(DdlError::Schema {
                file: file.to_string(),
                problems: problems
                    .into_iter()
                    .map(|f| format!("{}: {}", f.field, f.reason))
                    .collect(),
            });
        }
        let ddl = decode(value, file)?;
        match check(&ddl).into_iter().next() {
            Some(finding) => Err(finding.into_error(file)),
            None => Ok(ddl),
        }
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

/// Every problem in the DDL at `path`, strictly: schema, semantics and its file name, in that
/// order; empty when it is clean. An error only when the file cannot be read or is not JSON.
/// What an author runs (`mco plugin lint`).
pub fn lint(path: &Path) -> Result<Vec<Finding>, DdlError> {
    let file = path.display().to_string();
    lint_json(
        &read(path)?,
        &file,
        path.file_stem().and_then(|s| s.to_str()),
    )
}

/// [`lint`] for JSON text not (yet) in a file, such as a conversion's output: `file` is used
/// in error messages, and the agent's name is checked against `file_stem` when there is one.
pub fn lint_json(
    text: &str,
    file: &str,
    file_stem: Option<&str>,
) -> Result<Vec<Finding>, DdlError> {
    let value = parse(text, file)?;
    let mut findings = schema_findings(&value);
    findings.extend(missing_optional(&value));
    match decode(value, file) {
        Ok(ddl) => {
            findings.extend(check(&ddl));
            findings.extend(file_stem.and_then(|stem| name_mismatch(&ddl, stem)));
        }
        // The schema findings say why, unless the schema allows what the types do not.
        Err(e) if findings.is_empty() => return Err(e),
        Err(_) => {}
    }
    Ok(findings)
}

fn read(path: &Path) -> Result<String, DdlError> {
    std::fs::read_to_string(path).map_err(|source| DdlError::Io {
        file: path.display().to_string(),
        source,
    })
}

fn parse(text: &str, file: &str) -> Result<Value, DdlError> {
    serde_json::from_str(text).map_err(|e| DdlError::Parse {
        file: file.to_string(),
        reason: e.to_string(),
    })
}

fn decode(value: Value, file: &str) -> Result<AgentDdl, DdlError> {
    serde_json::from_value(value).map_err(|e| DdlError::Parse {
        file: file.to_string(),
        reason: e.to_string(),
    })
}

fn name_mismatch(ddl: &AgentDdl, stem: &str) -> Option<Finding> {
    (stem != ddl.metadata.name).then(|| Finding {
        kind: FindingKind::NameMismatch,
        action: None,
        field: "metadata.name".into(),
        reason: format!(
            "the agent is called {:?} but the file is named {stem:?}",
            ddl.metadata.name
        ),
    })
}

/// Inputs without an `optional` key: the schema reports them only as an input that fits
/// none of its types, so lint says what is actually missing.
fn missing_optional(value: &Value) -> Vec<Finding> {
    let actions = value.get("actions").and_then(Value::as_array);
    let mut findings = Vec::new();
    for (index, action) in actions.into_iter().flatten().enumerate() {
        let inputs = action.get("input").and_then(Value::as_object);
        for (name, input) in inputs.into_iter().flatten() {
            if input.is_object() && input.get("optional").is_none() {
                findings.push(Finding {
                    kind: FindingKind::Schema,
                    action: None,
                    field: format!("/actions/{index}/input/{name}"),
                    reason: "has no \"optional\" key (read as false: the input is required)".into(),
                });
            }
        }
    }
    findings
}

fn schema_findings(value: &Value) -> Vec<Finding> {
    schema()
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().to_string();
            Finding {
                kind: FindingKind::Schema,
                action: None,
                field: if at.is_empty() { "/".into() } else { at },
                reason: e.to_string(),
            }
        })
        .collect()
}

/// The semantic findings, in DDL order.
fn check(ddl: &AgentDdl) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |kind, action: Option<&str>, field: String, reason: String| {
        findings.push(Finding {
            kind,
            action: action.map(str::to_string),
            field,
            reason,
        })
    };
    if ddl.metadata.timeout == 0 {
        add(
            FindingKind::ZeroTimeout,
            None,
            "metadata.timeout".into(),
            "must be at least 1 second".into(),
        );
    }
    let mut seen = HashSet::new();
    for action in &ddl.actions {
        let name = Some(action.action.as_str());
        if !seen.insert(action.action.as_str()) {
            add(
                FindingKind::DuplicateAction,
                name,
                "action".into(),
                "declared more than once".into(),
            );
        }
        for (input_name, input) in &action.input {
            let field = |what: &str| format!("input.{input_name}.{what}");
            match input.kind {
                InputType::String => match input.validation.as_deref().map(Validation::parse) {
                    Some(Err(reason)) => {
                        add(FindingKind::InvalidRegex, name, field("validation"), reason)
                    }
                    Some(Ok(Validation::Unsupported(validator))) => add(
                        FindingKind::UnsupportedValidator,
                        name,
                        field("validation"),
                        format!(
                            "unknown validator {validator:?} (known: {})",
                            Validation::known_names().join(", ")
                        ),
                    ),
                    _ => {}
                },
                InputType::List if input.list.as_ref().is_none_or(|l| l.is_empty()) => add(
                    FindingKind::EmptyList,
                    name,
                    field("list"),
                    "a list input needs at least one value".into(),
                ),
                _ => {}
            }
            if let Some(default) = input.default.as_ref().filter(|d| !d.is_null()) {
                if let Err(reason) = check_value_type(input, default) {
                    add(FindingKind::InvalidDefault, name, field("default"), reason);
                }
            }
        }
        for (index, aggregate) in action.aggregate.iter().enumerate() {
            let field = format!("aggregate[{index}]");
            if !AGGREGATE_FUNCTIONS.contains(&aggregate.function.as_str()) {
                add(
                    FindingKind::UnknownAggregate,
                    name,
                    field,
                    format!(
                        "unknown aggregate function {:?} (known: {})",
                        aggregate.function,
                        AGGREGATE_FUNCTIONS.join(", ")
                    ),
                );
                continue;
            }
            match aggregate.output() {
                None => add(
                    FindingKind::UndeclaredOutput,
                    name,
                    field,
                    "the first argument must name an output".into(),
                ),
                Some(output) if !action.output.contains_key(output) => add(
                    FindingKind::UndeclaredOutput,
                    name,
                    field,
                    format!("{} over undeclared output {output:?}", aggregate.function),
                ),
                Some(_) => {}
            }
        }
    }
    findings
}
