//! The DDL types, deserialised from Choria's JSON DDL format.
//!
//! Field names follow the JSON. Maps are `BTreeMap`s so that rendering (`mco plugin doc`,
//! per-node output) is in a stable order. This module only describes; checking is in
//! [`crate::load`], validation in [`crate::validate`].

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mco_spec::StatusCode;

use crate::validators::Validation;

/// An agent's DDL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDdl {
    /// Who wrote the agent and how long its actions may run.
    pub metadata: Metadata,
    /// The actions, in the order the DDL lists them.
    pub actions: Vec<Action>,
}

impl AgentDdl {
    /// The action called `name`.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.action == name)
    }

    /// The action names, in DDL order.
    pub fn action_names(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.action.as_str())
    }
}

/// The `metadata` block of a DDL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Agent name, `^[a-z0-9_]*$`.
    pub name: String,
    /// What the agent does.
    pub description: String,
    /// Who maintains it.
    pub author: String,
    /// Its licence.
    pub license: String,
    /// Its version.
    pub version: String,
    /// Where to read more.
    pub url: String,
    /// How long an action may run, in seconds.
    pub timeout: u64,
    /// `external` for agents implemented by an executable; absent for built-in agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Choria's service-agent flag; carried but not used by mco.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<bool>,
}

/// Which nodes' replies the CLI prints for an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Display {
    /// Only nodes whose action succeeded.
    Ok,
    /// Only nodes whose action did not succeed (the default).
    #[default]
    Failed,
    /// Every node.
    Always,
}

impl Display {
    /// Whether a reply with `status` is printed under this rule.
    pub fn shows(self, status: StatusCode) -> bool {
        match self {
            Display::Ok => status.is_ok(),
            Display::Failed => !status.is_ok(),
            Display::Always => true,
        }
    }
}

/// One action of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// The action name.
    pub action: String,
    /// What it does.
    pub description: String,
    /// Which replies the CLI prints.
    #[serde(default)]
    pub display: Display,
    /// Its inputs by name.
    #[serde(default)]
    pub input: BTreeMap<String, Input>,
    /// Its outputs by name.
    #[serde(default)]
    pub output: BTreeMap<String, Output>,
    /// Aggregates the client computes over all replies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregate: Vec<AggregateSpec>,
}

impl Action {
    /// Fills in every declared output that `data` lacks with its default (or `null`).
    ///
    /// Applied to every reply, so clients can rely on the declared keys being present.
    pub fn apply_output_defaults(&self, data: &mut Map<String, Value>) {
        for (name, output) in &self.output {
            if !data.contains_key(name) {
                data.insert(name.clone(), output.default.clone().unwrap_or(Value::Null));
            }
        }
    }
}

/// The type of an input (or output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputType {
    /// A string, checked by `validation` and `maxlength`.
    #[serde(rename = "string")]
    String,
    /// One of the values in `list`.
    #[serde(rename = "list")]
    List,
    /// `true` or `false`.
    #[serde(rename = "boolean")]
    Boolean,
    /// A whole number.
    #[serde(rename = "integer")]
    Integer,
    /// A number with a fractional part (whole numbers are accepted).
    #[serde(rename = "float")]
    Float,
    /// Any number.
    #[serde(rename = "number")]
    Number,
    /// A JSON object.
    #[serde(rename = "hash", alias = "Hash")]
    Hash,
    /// A JSON array.
    #[serde(rename = "array", alias = "Array")]
    Array,
}

impl InputType {
    /// The name as written in DDLs.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::List => "list",
            InputType::Boolean => "boolean",
            InputType::Integer => "integer",
            InputType::Float => "float",
            InputType::Number => "number",
            InputType::Hash => "hash",
            InputType::Array => "array",
        }
    }
}

/// One input of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Text to prompt with in interfaces.
    pub prompt: String,
    /// What the input means.
    pub description: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Whether it may be left out; absent means required, as Choria reads it.
    #[serde(default)]
    pub optional: bool,
    /// The value used when it is left out (`null` means none).
    #[serde(default)]
    pub default: Option<Value>,
    /// For strings: a validator name or a regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// For strings: the longest accepted value, in characters; 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxlength: Option<u64>,
    /// For lists: the accepted values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<String>>,
    /// `validation` compiled once, on first use: validation runs for every request on every
    /// node, and compiling a regex costs far more than matching it.
    #[serde(skip)]
    pub(crate) compiled: CompiledValidation,
}

impl Input {
    /// The compiled `validation` rule, if the input has one.
    pub(crate) fn validation_rule(&self) -> Option<Result<&Validation, &str>> {
        let rule = self.validation.as_ref()?;
        Some(
            self.compiled
                .0
                .get_or_init(|| Validation::parse(rule))
                .as_ref()
                .map_err(String::as_str),
        )
    }
}

/// A lazily compiled validation rule; it derives from `validation`, so it never affects
/// equality.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompiledValidation(OnceLock<Result<Validation, String>>);

impl PartialEq for CompiledValidation {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// One output of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// What the output means.
    pub description: String,
    /// The label the CLI prints.
    pub display_as: String,
    /// Filled in when a reply lacks the output. Real DDLs sometimes give a default of another
    /// type than `type` (puppet's `since_lastrun`), so it is kept as any JSON value.
    #[serde(default)]
    pub default: Option<Value>,
    /// The declared type, informational.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<InputType>,
}

/// An `aggregate` entry: a function and its arguments (`["status"]`,
/// `["enabled", {"true": "enabled", "false": "disabled"}]`, `["x", {"format": "%0.2f"}]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateSpec {
    /// `summary`, `boolean_summary`, `average` or `sum`.
    pub function: String,
    /// The output it summarises first, then function-specific options.
    #[serde(default)]
    pub args: Vec<Value>,
}

impl AggregateSpec {
    /// The output the aggregate is computed over.
    pub fn output(&self) -> Option<&str> {
        self.args.first().and_then(Value::as_str)
    }

    /// The options object (second argument), if any.
    pub fn options(&self) -> Option<&Map<String, Value>> {
        self.args.get(1).and_then(Value::as_object)
    }
}
