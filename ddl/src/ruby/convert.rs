//! From the parsed calls of an MCollective agent DDL to mco's [`AgentDdl`] model and Choria's
//! JSON: what each DSL method (`metadata`, `action`, `input`, `output`, `display`,
//! `summarize`, `aggregate`) takes and requires, following MCollective's `ddl/base.rb` and
//! `ddl/agentddl.rb` (an input without `:prompt`, a string input without `:validation` or
//! `:maxlength` is refused there and so here), and what JSON Choria writes for it.
//!
//! The JSON keeps Choria's key order and the DDL's order of inputs and outputs, so it reads
//! like Choria's own DDLs and diffs well against them; the model is the same content.
//!
//! Not for: reading Ruby ([`super::lex`], [`super::parse`]); checking the result against the
//! schema ([`crate::load::lint_json`], which `mco plugin convert` and the tests run on every
//! conversion).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Number, Value as Json};

use super::parse::{Call, Node, Value};
use super::{lex, parse, ConvertError, ConvertErrorKind, ConvertWarning, Pos};
use crate::model::{
    Action, AgentDdl, AggregateSpec, CompiledValidation, Display, Input, InputType, Metadata,
    Output,
};

/// The `$schema` Choria's agent DDLs declare.
pub const AGENT_SCHEMA_URL: &str = "https://choria.io/schemas/mcorpc/ddl/v1/agent.json";

/// A converted DDL.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The DDL as mco's model.
    pub ddl: AgentDdl,
    /// The DDL as Choria's JSON, pretty-printed with a final newline.
    pub json: String,
    /// What was dropped or read surprisingly, in source order.
    pub warnings: Vec<ConvertWarning>,
}

/// Converts the text of an MCollective agent DDL (see the [module](super) doc).
pub fn convert(text: &str) -> Result<Converted, ConvertError> {
    let parsed =
        lex::tokenize(text).and_then(|(tokens, warnings)| Ok((parse::parse(&tokens)?, warnings)));
    let (program, warnings) = match parsed {
        Ok(parsed) => parsed,
        // MCollective's own data DDLs run loops (agent_data.ddl): that a file is not an
        // agent's DDL at all is the more useful thing to say about it.
        Err(e) => return Err(plugin_type_by_its_lines(text).unwrap_or(e)),
    };
    refuse_other_plugin_types(&program)?;
    let mut converter = Converter {
        warnings,
        metadata: None,
        actions: Vec::new(),
    };
    for call in &program {
        converter.top_level(call)?;
    }
    let Some(metadata) = converter.metadata.take() else {
        return Err(invalid(
            Pos { line: 1, column: 1 },
            "the DDL has no `metadata`",
        ));
    };
    let json = render(&metadata, &converter.actions)?;
    let ddl = AgentDdl {
        metadata,
        actions: converter
            .actions
            .into_iter()
            .map(ActionParts::into_model)
            .collect(),
    };
    let mut warnings = converter.warnings;
    warnings.sort_by_key(|w| (w.line, w.column));
    Ok(Converted {
        ddl,
        json,
        warnings,
    })
}

/// MCollective's other plugin DDLs use the same language: each is recognised by what it
/// declares, so its author is told what it is rather than that a method is unknown.
fn refuse_other_plugin_types(program: &[Call]) -> Result<(), ConvertError> {
    if let Some(call) = program.iter().find(|c| plugin_kind(&c.name).is_some()) {
        return Err(not_an_agent(&call.name, call.at));
    }
    if !program.iter().any(|call| call.name == "action") {
        let at = program.first().map_or(Pos { line: 1, column: 1 }, |c| c.at);
        return Err(ConvertError::new(
            ConvertErrorKind::NotAnAgent,
            at,
            "this DDL declares no actions, so it is not an agent's (validator, aggregate and \
             connector DDLs declare only metadata): only agent DDLs convert",
        ));
    }
    Ok(())
}

/// The plugin type a top-level DSL method declares, other than an agent's.
fn plugin_kind(method: &str) -> Option<&'static str> {
    match method {
        "dataquery" => Some("a data plugin's"),
        "discovery" => Some("a discovery plugin's"),
        _ => None,
    }
}

fn not_an_agent(method: &str, at: Pos) -> ConvertError {
    let kind = plugin_kind(method).unwrap_or("another plugin's");
    ConvertError::new(
        ConvertErrorKind::NotAnAgent,
        at,
        format!("`{method}` makes this {kind} DDL: only agent DDLs convert"),
    )
}

/// For a file that does not parse: a line that starts with a data or discovery plugin's
/// method. Only ever replaces a parse error, so it cannot refuse an agent DDL that converts.
fn plugin_type_by_its_lines(text: &str) -> Option<ConvertError> {
    text.lines().enumerate().find_map(|(index, line)| {
        let word = line.trim_start();
        let method = word
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()?;
        plugin_kind(method)?;
        let column = line.chars().count() - word.chars().count() + 1;
        Some(not_an_agent(
            method,
            Pos {
                line: index + 1,
                column,
            },
        ))
    })
}

fn invalid(at: Pos, reason: impl Into<String>) -> ConvertError {
    ConvertError::new(ConvertErrorKind::InvalidDdl, at, reason)
}

/// An action while it is being read: inputs and outputs in DDL order, as the JSON lists them.
struct ActionParts {
    name: String,
    description: String,
    display: Display,
    inputs: Vec<(String, Input)>,
    outputs: Vec<(String, Output)>,
    aggregate: Vec<AggregateSpec>,
}

impl ActionParts {
    fn into_model(self) -> Action {
        Action {
            action: self.name,
            description: self.description,
            display: self.display,
            input: self.inputs.into_iter().collect(),
            output: self.outputs.into_iter().collect(),
            aggregate: self.aggregate,
        }
    }
}

struct Converter {
    warnings: Vec<ConvertWarning>,
    metadata: Option<Metadata>,
    actions: Vec<ActionParts>,
}

/// Replaces the entry of the same name in place, or appends it; true when it replaced one. A
/// Ruby hash keeps the later value, as MCollective does when a DDL declares an input, output
/// or action twice, and the place of the first, as the JSON lists it.
fn put<T>(entries: &mut Vec<T>, entry: T, name_of: impl Fn(&T) -> &str) -> bool {
    match entries.iter_mut().find(|e| name_of(e) == name_of(&entry)) {
        Some(earlier) => {
            *earlier = entry;
            true
        }
        None => {
            entries.push(entry);
            false
        }
    }
}

/// The name of an input or output entry.
fn entry_name<T>(entry: &(String, T)) -> &str {
    &entry.0
}

impl Converter {
    fn warn(&mut self, at: Pos, message: impl Into<String>) {
        self.warnings.push(ConvertWarning::new(at, message));
    }

    fn declared_again(&mut self, at: Pos, what: &str, name: &str) {
        self.warn(
            at,
            format!("{what} {name:?} declared again: the later one is kept, as in MCollective"),
        );
    }

    fn top_level(&mut self, call: &Call) -> Result<(), ConvertError> {
        match call.name.as_str() {
            "metadata" => {
                no_block(call)?;
                if self.metadata.is_some() {
                    return Err(invalid(call.at, "`metadata` is declared twice"));
                }
                let metadata = self.metadata(call)?;
                self.metadata = Some(metadata);
            }
            "requires" => {
                no_block(call)?;
                self.warn(
                    call.at,
                    "`requires` dropped: Choria's DDLs do not declare the MCollective version \
                     they need",
                );
            }
            "action" => {
                let action = self.action(call)?;
                let name = action.name.clone();
                if put(&mut self.actions, action, |a| &a.name) {
                    self.declared_again(call.at, "action", &name);
                }
            }
            "input" | "output" | "display" | "summarize" | "aggregate" => {
                return Err(invalid(
                    call.at,
                    format!("`{}` outside an action", call.name),
                ))
            }
            other => {
                return Err(ConvertError::outside(
                    call.at,
                    format!("the method `{other}`"),
                ))
            }
        }
        Ok(())
    }

    fn metadata(&mut self, call: &Call) -> Result<Metadata, ConvertError> {
        let [hash] = call.args.as_slice() else {
            return Err(invalid(
                call.at,
                "`metadata` takes one hash: :name => ..., ...",
            ));
        };
        let mut props = Props::new(hash, "metadata")?;
        let required_text = |props: &mut Props, key| -> Result<String, ConvertError> {
            text(props.require(key)?, &format!("metadata :{key}"))
        };
        let name = required_text(&mut props, "name")?;
        let description = required_text(&mut props, "description")?;
        let author = required_text(&mut props, "author")?;
        let license = required_text(&mut props, "license")?;
        let version = required_text(&mut props, "version")?;
        let url = required_text(&mut props, "url")?;
        let timeout = props.require("timeout")?;
        let timeout = whole_number(timeout).ok_or_else(|| {
            invalid(
                timeout.at,
                format!(
                    "metadata :timeout must be a whole number of seconds, not {}",
                    timeout.value.describe()
                ),
            )
        })?;
        props.finish(self, "Choria's metadata has no such key");
        Ok(Metadata {
            name,
            description,
            author,
            license,
            version,
            url,
            timeout,
            provider: None,
            service: None,
        })
    }

    fn action(&mut self, call: &Call) -> Result<ActionParts, ConvertError> {
        let (name_node, hash) = match call.args.as_slice() {
            [name, hash] => (name, Some(hash)),
            [name] => (name, None),
            _ => {
                return Err(invalid(
                    call.at,
                    "`action` takes a name and :description => ...",
                ))
            }
        };
        let name = text(name_node, "the action name")?;
        let description = match hash {
            Some(hash) => {
                let mut props = Props::new(hash, &format!("action {name:?}"))?;
                let description = text(props.require("description")?, "an action's :description")?;
                props.finish(self, "an action takes only a :description");
                description
            }
            None => {
                return Err(invalid(
                    call.at,
                    format!("action {name:?} needs a :description"),
                ))
            }
        };
        let mut action = ActionParts {
            name,
            description,
            display: Display::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            aggregate: Vec::new(),
        };
        for statement in call.block.iter().flatten() {
            self.action_statement(&mut action, statement)?;
        }
        Ok(action)
    }

    fn action_statement(
        &mut self,
        action: &mut ActionParts,
        call: &Call,
    ) -> Result<(), ConvertError> {
        match call.name.as_str() {
            "display" => {
                no_block(call)?;
                let rule = match call.args.as_slice() {
                    [Node {
                        value: Value::Symbol(rule),
                        ..
                    }] => rule.as_str(),
                    _ => "",
                };
                action.display = match rule {
                    "always" => Display::Always,
                    "ok" => Display::Ok,
                    "failed" => Display::Failed,
                    _ => return Err(invalid(call.at, "`display` takes :always, :ok or :failed")),
                };
            }
            "input" => {
                no_block(call)?;
                let (name, input) = self.input(call)?;
                if put(&mut action.inputs, (name.clone(), input), entry_name) {
                    self.declared_again(call.at, "input", &name);
                }
            }
            "output" => {
                no_block(call)?;
                let (name, output) = self.output(call)?;
                if put(&mut action.outputs, (name.clone(), output), entry_name) {
                    self.declared_again(call.at, "output", &name);
                }
            }
            "summarize" => {
                if !call.args.is_empty() {
                    return Err(invalid(call.at, "`summarize` takes only a block"));
                }
                let Some(block) = &call.block else {
                    return Err(invalid(call.at, "`summarize` needs a block of aggregates"));
                };
                for statement in block {
                    action.aggregate.push(aggregate(statement)?);
                }
            }
            "aggregate" => return Err(invalid(call.at, "`aggregate` outside `summarize`")),
            other => {
                return Err(ConvertError::outside(
                    call.at,
                    format!("the method `{other}` in an action"),
                ))
            }
        }
        Ok(())
    }

    fn input(&mut self, call: &Call) -> Result<(String, Input), ConvertError> {
        let (name, hash) = name_and_properties(call, "input")?;
        let what = format!("input {name:?}");
        let mut props = Props::new(hash, &what)?;
        let prompt = text(props.require("prompt")?, &format!("{what} :prompt"))?;
        let description = text(
            props.require("description")?,
            &format!("{what} :description"),
        )?;
        let kind = data_type(props.require("type")?, &what)?;
        let optional = match props.take("optional") {
            Some(Node {
                value: Value::Bool(optional),
                ..
            }) => *optional,
            Some(other) => {
                return Err(invalid(
                    other.at,
                    format!("{what} :optional must be true or false"),
                ))
            }
            None => {
                self.warn(
                    call.at,
                    format!(
                        "{what} has no :optional: written as false (required), as MCollective reads it"
                    ),
                );
                false
            }
        };
        let default = default_value(&mut props)?;
        let (mut validation, mut maxlength, mut list) = (None, None, None);
        match kind {
            InputType::String => {
                validation = Some(validation_rule(
                    props.require_for("validation", "a string input")?,
                    &what,
                )?);
                let limit = props.require_for("maxlength", "a string input")?;
                maxlength = Some(whole_number(limit).ok_or_else(|| {
                    invalid(
                        limit.at,
                        format!("{what} :maxlength must be a whole number"),
                    )
                })?);
            }
            InputType::List => {
                let values = props.require_for("list", "a list input")?;
                list = Some(list_values(values, &what)?);
            }
            _ => {}
        }
        props.finish(self, "MCollective ignores it for this input's type");
        Ok((
            name,
            Input {
                prompt,
                description,
                kind,
                optional,
                default,
                validation,
                maxlength,
                list,
                compiled: CompiledValidation::default(),
            },
        ))
    }

    fn output(&mut self, call: &Call) -> Result<(String, Output), ConvertError> {
        let (name, hash) = name_and_properties(call, "output")?;
        let what = format!("output {name:?}");
        let mut props = Props::new(hash, &what)?;
        let description = text(
            props.require("description")?,
            &format!("{what} :description"),
        )?;
        let display_as = text(props.require("display_as")?, &format!("{what} :display_as"))?;
        let default = default_value(&mut props)?;
        let kind = props
            .take("type")
            .map(|t| data_type(t, &what))
            .transpose()?;
        props.finish(
            self,
            "an output takes :description, :display_as, :default and :type",
        );
        Ok((
            name,
            Output {
                description,
                display_as,
                default,
                kind,
            },
        ))
    }
}

/// A `:default`; `nil` is no default, as the JSON's `null` reads.
fn default_value(props: &mut Props) -> Result<Option<Json>, ConvertError> {
    Ok(props
        .take("default")
        .map(json)
        .transpose()?
        .filter(|value| !value.is_null()))
}

/// A non-negative integer literal.
fn whole_number(node: &Node) -> Option<u64> {
    match node.value {
        Value::Int(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

fn no_block(call: &Call) -> Result<(), ConvertError> {
    match call.block {
        Some(_) => Err(invalid(call.at, format!("`{}` takes no block", call.name))),
        None => Ok(()),
    }
}

/// `input :name, :key => value, ...` and the same for outputs.
fn name_and_properties<'a>(
    call: &'a Call,
    method: &str,
) -> Result<(String, &'a Node), ConvertError> {
    match call.args.as_slice() {
        [name, hash] => Ok((text(name, &format!("the {method} name"))?, hash)),
        _ => Err(invalid(
            call.at,
            format!(
                "`{method}` takes a name and its properties ({method} :name, :description => ...)"
            ),
        )),
    }
}

/// `aggregate summary(:x)`, `aggregate average(:y, :format => "%d")`,
/// `aggregate summary(:x), :format => "%s"`: Choria writes each as
/// `{"function": "summary", "args": ["x", {"format": "%s"}]}`.
fn aggregate(call: &Call) -> Result<AggregateSpec, ConvertError> {
    if call.name != "aggregate" {
        return Err(ConvertError::outside(
            call.at,
            format!("the method `{}` in `summarize`", call.name),
        ));
    }
    let (function, format) = match call.args.as_slice() {
        [Node {
            value: Value::Call(function),
            ..
        }] => (function, None),
        [Node {
            value: Value::Call(function),
            ..
        }, format] => (function, Some(format)),
        _ => {
            return Err(invalid(
                call.at,
                "`aggregate` takes a function call such as summary(:output)",
            ))
        }
    };
    let mut args = function
        .args
        .iter()
        .map(json)
        .collect::<Result<Vec<_>, _>>()?;
    if !matches!(
        function.args.first().map(|a| &a.value),
        Some(Value::Symbol(_) | Value::Str(_))
    ) {
        return Err(invalid(
            function.at,
            format!(
                "{}(...) must name the output first, as :output",
                function.name
            ),
        ));
    }
    if let Some(format) = format {
        let Json::Object(mut options) = json(format)? else {
            return Err(invalid(
                format.at,
                "an aggregate's format must be :format => \"...\"",
            ));
        };
        let Some(value) = options.remove("format") else {
            return Err(invalid(
                format.at,
                "an aggregate's options must have a :format key",
            ));
        };
        match args.get_mut(1) {
            None => args.push(Json::Object(Map::from_iter([("format".into(), value)]))),
            Some(Json::Object(existing)) => {
                existing.insert("format".into(), value);
            }
            Some(_) => {
                return Err(invalid(
                    format.at,
                    "the function's second argument is not a hash the format can join",
                ))
            }
        }
    }
    Ok(AggregateSpec {
        function: function.name.clone(),
        args,
    })
}

/// The `key => value` pairs of a DSL call, taken one by one so that what is left can be
/// reported as dropped.
struct Props<'a> {
    what: String,
    at: Pos,
    pairs: Vec<(String, &'a Node)>,
}

impl<'a> Props<'a> {
    fn new(node: &'a Node, what: &str) -> Result<Self, ConvertError> {
        let Value::Hash(pairs) = &node.value else {
            return Err(invalid(
                node.at,
                format!(
                    "{what}: expected :key => value properties, found {}",
                    node.value.describe()
                ),
            ));
        };
        let mut props = Props {
            what: what.to_string(),
            at: node.at,
            pairs: Vec::new(),
        };
        for (key, value) in pairs {
            match &key.value {
                Value::Symbol(name) => {
                    // A repeated key: Ruby keeps the last.
                    props.pairs.retain(|(n, _)| n != name);
                    props.pairs.push((name.clone(), value));
                }
                other => {
                    return Err(invalid(
                        key.at,
                        format!(
                            "{what}: a key must be a symbol (:name), not {}: MCollective looks \
                             properties up by symbol",
                            other.describe()
                        ),
                    ))
                }
            }
        }
        Ok(props)
    }

    fn take(&mut self, key: &str) -> Option<&'a Node> {
        let index = self.pairs.iter().position(|(name, _)| name == key)?;
        Some(self.pairs.remove(index).1)
    }

    fn require(&mut self, key: &str) -> Result<&'a Node, ConvertError> {
        let (what, at) = (self.what.clone(), self.at);
        self.take(key)
            .ok_or_else(|| invalid(at, format!("{what} needs a :{key}")))
    }

    fn require_for(&mut self, key: &str, kind: &str) -> Result<&'a Node, ConvertError> {
        let (what, at) = (self.what.clone(), self.at);
        self.take(key).ok_or_else(|| {
            invalid(
                at,
                format!("{what} needs a :{key}, as {kind} does in MCollective"),
            )
        })
    }

    /// Warns about each key nobody took.
    fn finish(self, converter: &mut Converter, why: &str) {
        for (key, node) in self.pairs {
            converter.warn(node.at, format!("{} :{key} dropped: {why}", self.what));
        }
    }
}

/// A string, or a symbol read as its name (Choria's JSON writes symbols as strings).
fn text(node: &Node, what: &str) -> Result<String, ConvertError> {
    match &node.value {
        Value::Str(text) | Value::Symbol(text) => Ok(text.clone()),
        other => Err(invalid(
            node.at,
            format!("{what} must be a string, not {}", other.describe()),
        )),
    }
}

fn data_type(node: &Node, what: &str) -> Result<InputType, ConvertError> {
    let name = match &node.value {
        Value::Symbol(name) | Value::Str(name) => name.as_str(),
        other => {
            return Err(invalid(
                node.at,
                format!(
                    "{what} :type must be a symbol such as :string, not {}",
                    other.describe()
                ),
            ))
        }
    };
    Ok(match name {
        "string" => InputType::String,
        "integer" => InputType::Integer,
        "float" => InputType::Float,
        "number" => InputType::Number,
        "boolean" => InputType::Boolean,
        "list" => InputType::List,
        "hash" => InputType::Hash,
        "array" => InputType::Array,
        other => {
            return Err(invalid(
                node.at,
                format!(
                    "{what}: unknown type :{other} (known: :string, :integer, :float, :number, \
                     :boolean, :list, :hash, :array)"
                ),
            ))
        }
    })
}

/// A `:validation`: a validator's name (`:shellsafe`), a regex string, or a `/regex/`, whose
/// flags become the inline flags Choria's and mco's regex engines read.
fn validation_rule(node: &Node, what: &str) -> Result<String, ConvertError> {
    match &node.value {
        Value::Str(rule) | Value::Symbol(rule) => Ok(rule.clone()),
        Value::Regex { source, flags } => {
            let mut inline = String::new();
            for flag in flags.chars() {
                inline.push(match flag {
                    'i' => 'i',
                    'x' => 'x',
                    // Ruby's /m lets `.` match a line end, which is (?s) elsewhere.
                    'm' => 's',
                    other => {
                        return Err(ConvertError::outside(
                            node.at,
                            format!("the regex flag /{other}"),
                        ))
                    }
                });
            }
            if inline.is_empty() {
                Ok(source.clone())
            } else {
                Ok(format!("(?{inline}){source}"))
            }
        }
        other => Err(invalid(
            node.at,
            format!(
                "{what} :validation must be a string, a /regex/ or a validator such as :shellsafe, not {}",
                other.describe()
            ),
        )),
    }
}

fn list_values(node: &Node, what: &str) -> Result<Vec<String>, ConvertError> {
    let Value::Array(items) = &node.value else {
        return Err(invalid(node.at, format!("{what} :list must be an array")));
    };
    let what = format!("{what} :list value");
    items.iter().map(|item| text(item, &what)).collect()
}

/// A literal as JSON: symbols become strings, as Choria writes them.
fn json(node: &Node) -> Result<Json, ConvertError> {
    Ok(match &node.value {
        Value::Str(text) | Value::Symbol(text) => Json::String(text.clone()),
        Value::Int(n) => Json::Number((*n).into()),
        Value::Float(n) => Json::Number(
            Number::from_f64(*n)
                .ok_or_else(|| invalid(node.at, format!("{n} is not a number JSON can hold")))?,
        ),
        Value::Bool(b) => Json::Bool(*b),
        Value::Nil => Json::Null,
        Value::Array(items) => Json::Array(items.iter().map(json).collect::<Result<_, _>>()?),
        Value::Hash(pairs) => {
            let mut object = Map::new();
            for (key, value) in pairs {
                object.insert(text(key, "a hash key")?, json(value)?);
            }
            Json::Object(object)
        }
        Value::Regex { .. } | Value::Call(_) => {
            return Err(invalid(
                node.at,
                format!(
                    "{} is not a value a DDL can hold here",
                    node.value.describe()
                ),
            ))
        }
    })
}

/// Entries serialised as a JSON object in their order.
struct InOrder<'a, T>(Vec<(&'a str, T)>);

impl<T: Serialize> Serialize for InOrder<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A DDL in Choria's key order.
#[derive(Serialize)]
struct ChoriaDdl<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    metadata: &'a Metadata,
    actions: Vec<ChoriaAction<'a>>,
}

/// An action in Choria's key order (`action`, `input`, `output`, `display`, `description`,
/// `aggregate`).
#[derive(Serialize)]
struct ChoriaAction<'a> {
    action: &'a str,
    input: InOrder<'a, &'a Input>,
    output: InOrder<'a, ChoriaOutput<'a>>,
    display: Display,
    description: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    aggregate: &'a [AggregateSpec],
}

/// An output as Choria's DDLs write one: without `default` or `type` keys when it has none
/// (the model writes `"default": null`, which says the same at more length).
#[derive(Serialize)]
struct ChoriaOutput<'a> {
    description: &'a str,
    display_as: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<&'a Json>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<InputType>,
}

fn render(metadata: &Metadata, actions: &[ActionParts]) -> Result<String, ConvertError> {
    let document = ChoriaDdl {
        schema: AGENT_SCHEMA_URL,
        metadata,
        actions: actions
            .iter()
            .map(|a| ChoriaAction {
                action: &a.name,
                input: InOrder(a.inputs.iter().map(|(n, i)| (n.as_str(), i)).collect()),
                output: InOrder(
                    a.outputs
                        .iter()
                        .map(|(name, o)| {
                            let output = ChoriaOutput {
                                description: &o.description,
                                display_as: &o.display_as,
                                default: o.default.as_ref(),
                                kind: o.kind,
                            };
                            (name.as_str(), output)
                        })
                        .collect(),
                ),
                display: a.display,
                description: &a.description,
                aggregate: &a.aggregate,
            })
            .collect(),
    };
    // Every value is a string, a finite number, a boolean or a JSON value, so this cannot
    // fail; the error is still reported rather than unwrapped.
    let mut json = serde_json::to_string_pretty(&document).map_err(|e| {
        invalid(
            Pos { line: 1, column: 1 },
            format!("cannot write the JSON: {e}"),
        )
    })?;
    json.push('\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const METADATA: &str =
        "metadata :name => \"demo\", :description => \"Demo\", :author => \"ops\",
         :license => \"Apache-2.0\", :version => \"1.0\", :url => \"https://example.net\",
         :timeout => 5
";

    /// `body` inside one action of a demo agent; the action starts on line 4.
    fn action(body: &str) -> Result<Converted, ConvertError> {
        convert(&format!(
            "{METADATA}action \"go\", :description => \"Go\" do\n{body}\nend\n"
        ))
    }

    fn json_of(converted: &Converted) -> Json {
        serde_json::from_str(&converted.json).unwrap()
    }

    fn error(text: &str) -> (ConvertErrorKind, usize, usize, String) {
        let e = convert(text).unwrap_err();
        (e.kind, e.line, e.column, e.reason)
    }

    #[test]
    fn metadata_becomes_choria_metadata() {
        let converted = action("").unwrap();
        let value = json_of(&converted);
        assert_eq!(value["$schema"], AGENT_SCHEMA_URL);
        assert_eq!(
            value["metadata"],
            json!({"name": "demo", "description": "Demo", "author": "ops",
                   "license": "Apache-2.0", "version": "1.0", "url": "https://example.net",
                   "timeout": 5})
        );
        assert_eq!(converted.ddl.metadata.timeout, 5);
        assert!(converted.json.ends_with("}\n"));
        // Choria's key order, so the file reads like Choria's own DDLs.
        let keys: Vec<usize> = [
            "\"action\"",
            "\"input\"",
            "\"output\"",
            "\"display\"",
            "\"description\": \"Go\"",
        ]
        .iter()
        .map(|k| converted.json.find(k).unwrap())
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{}", converted.json);
    }

    #[test]
    fn every_input_type_and_property_converts() {
        let converted = action(
            "  display :ok
  input :name, :prompt => 'Name', :description => 'Which', :type => :string,
        :validation => :shellsafe, :optional => false, :maxlength => 30
  input :pattern, prompt: 'Pattern', description: 'Regex', type: :string,
        validation: /^[a-z]+$/i, optional: true, maxlength: 0, default: 'abc'
  input :count, :prompt => 'Count', :description => 'How many', :type => :integer,
        :optional => true, :default => 3
  input :ratio, :prompt => 'Ratio', :description => 'How much', :type => :float,
        :optional => true, :default => 0.5
  input :size, :prompt => 'Size', :description => 'Any number', :type => :number,
        :optional => true
  input :force, :prompt => 'Force', :description => 'Really', :type => :boolean,
        :optional => true, :default => false
  input :mode, :prompt => 'Mode', :description => 'Which mode', :type => :list,
        :optional => true, :list => %w[fast slow], :default => :fast",
        )
        .unwrap();
        assert_eq!(converted.warnings, vec![]);
        let value = json_of(&converted);
        let action = &value["actions"][0];
        assert_eq!(action["display"], "ok");
        let input = &action["input"];
        assert_eq!(
            input["name"],
            json!({"prompt": "Name", "description": "Which", "type": "string",
                   "optional": false, "default": null, "validation": "shellsafe", "maxlength": 30})
        );
        assert_eq!(input["pattern"]["validation"], "(?i)^[a-z]+$");
        assert_eq!(input["pattern"]["default"], "abc");
        assert_eq!(input["count"]["default"], 3);
        assert_eq!(input["ratio"]["default"], 0.5);
        assert_eq!(input["size"]["type"], "number");
        assert_eq!(input["force"]["default"], false);
        assert_eq!(input["mode"]["list"], json!(["fast", "slow"]));
        assert_eq!(input["mode"]["default"], "fast");
        // DDL order, as the author wrote them.
        let names: Vec<&String> = input.as_object().unwrap().keys().collect();
        assert_eq!(names.len(), 7);
        let model = &converted.ddl.actions[0];
        assert_eq!(model.input["count"].kind, InputType::Integer);
        assert!(model.input["pattern"].optional);
        // The JSON is the model.
        assert_eq!(
            AgentDdl::from_json(&converted.json, "demo.json").unwrap(),
            converted.ddl
        );
    }

    #[test]
    fn outputs_and_aggregates_convert_as_choria_writes_them() {
        let converted = action(
            "  output :status, :description => 'State', :display_as => 'Status', :type => :string
  output :enabled, :description => 'On?', :display_as => 'Enabled', :default => false
  output :load, :description => 'Load', :display_as => 'Load', :type => :float
  summarize do
    aggregate summary(:status)
    aggregate summary(:status), :format => '%s'
    aggregate average(:load, :format => 'Average: %0.2f')
    aggregate boolean_summary(:enabled, {:true => 'on', :false => 'off'})
  end",
        )
        .unwrap();
        let value = json_of(&converted);
        let action = &value["actions"][0];
        assert_eq!(
            action["output"]["status"],
            json!({"description": "State", "display_as": "Status", "type": "string"})
        );
        assert_eq!(action["output"]["enabled"]["default"], false);
        assert_eq!(
            action["aggregate"],
            json!([
                {"function": "summary", "args": ["status"]},
                {"function": "summary", "args": ["status", {"format": "%s"}]},
                {"function": "average", "args": ["load", {"format": "Average: %0.2f"}]},
                {"function": "boolean_summary", "args": ["enabled", {"true": "on", "false": "off"}]},
            ])
        );
        assert_eq!(action["display"], "failed", "MCollective's default");
        assert_eq!(
            AgentDdl::from_json(&converted.json, "demo.json").unwrap(),
            converted.ddl
        );
    }

    #[test]
    fn dropped_and_surprising_things_are_warnings_with_their_line() {
        let converted = convert(&format!(
            "requires :mcollective => '2.2.1'\n{METADATA}action 'go', :description => 'Go' do
  input :x, :prompt => 'X', :description => 'X', :type => :integer, :maxlength => 3
  input :y, :prompt => 'Y', :description => \"Y\\d\", :type => :boolean, :optional => true
  output :z, :description => 'Z', :display_as => 'Z', :colour => :red
  output :z, :description => 'Z', :display_as => 'Zed'
end
action 'go', :description => 'Go again' do
end
"
        ))
        .unwrap();
        let warnings: Vec<(usize, usize, &str)> = converted
            .warnings
            .iter()
            .map(|w| (w.line, w.column, w.message.as_str()))
            .collect();
        assert_eq!(
            warnings,
            [
                (1, 1, "`requires` dropped: Choria's DDLs do not declare the MCollective version they need"),
                (6, 3, "input \"x\" has no :optional: written as false (required), as MCollective reads it"),
                (6, 83, "input \"x\" :maxlength dropped: MCollective ignores it for this input's type"),
                (7, 47, "\"\\d\" in a double-quoted string is 'd' in Ruby (the backslash is dropped, as MCollective read it); use single quotes or a /regex/ to keep it"),
                (8, 66, "output \"z\" :colour dropped: an output takes :description, :display_as, :default and :type"),
                (9, 3, "output \"z\" declared again: the later one is kept, as in MCollective"),
                (11, 1, "action \"go\" declared again: the later one is kept, as in MCollective"),
            ]
        );
        assert_eq!(converted.ddl.actions.len(), 1);
        assert_eq!(converted.ddl.actions[0].description, "Go again");
    }

    #[test]
    fn invalid_ddls_are_refused_where_mcollective_refuses_them() {
        use ConvertErrorKind::*;
        let table: &[(&str, usize, usize, &str)] = &[
            ("  input :x, :prompt => 'X', :description => 'X'", 5, 13, "input \"x\" needs a :type"),
            ("  input :x, :description => 'X', :type => :string", 5, 13, "input \"x\" needs a :prompt"),
            (
                "  input :x, :prompt => 'X', :description => 'X', :type => :string, :maxlength => 1",
                5, 13,
                "input \"x\" needs a :validation, as a string input does in MCollective",
            ),
            (
                "  input :x, :prompt => 'X', :description => 'X', :type => :list, :optional => true",
                5, 13,
                "input \"x\" needs a :list, as a list input does in MCollective",
            ),
            (
                "  input :x, :prompt => 'X', :description => 'X', :type => :text",
                5, 59,
                "input \"x\": unknown type :text (known: :string, :integer, :float, :number, :boolean, :list, :hash, :array)",
            ),
            ("  output :x, :description => 'X'", 5, 14, "output \"x\" needs a :display_as"),
            (
                "  input :x, :prompt => 'X', :description => 'X', :type => :list, :optional => true, :list => ['a', 1]",
                5, 100,
                "input \"x\" :list value must be a string, not an integer",
            ),
            (
                "  output :x, :description => 'X', :display_as => 'X', :default => {[1] => 2}",
                5, 68,
                "a hash key must be a string, not an array",
            ),
            ("  display :sometimes", 5, 3, "`display` takes :always, :ok or :failed"),
            ("  aggregate summary(:x)", 5, 3, "`aggregate` outside `summarize`"),
            ("  summarize do\n    aggregate :x\n  end", 6, 5, "`aggregate` takes a function call such as summary(:output)"),
            ("  summarize do\n    aggregate summary(:x), 3\n  end", 6, 28, "an aggregate's format must be :format => \"...\""),
            ("  summarize do\n    aggregate summary(:x), :fmt => 1\n  end", 6, 28, "an aggregate's options must have a :format key"),
            ("  input 'x' => 1", 5, 3, "`input` takes a name and its properties (input :name, :description => ...)"),
        ];
        for (body, line, column, reason) in table {
            assert_eq!(
                error(&format!(
                    "{METADATA}action \"go\", :description => \"Go\" do\n{body}\nend\n"
                )),
                (InvalidDdl, *line, *column, reason.to_string()),
                "{body}"
            );
        }
        let whole: &[(&str, usize, usize, &str)] = &[
            ("action 'a', :description => 'A' do\nend\n", 1, 1, "the DDL has no `metadata`"),
            ("metadata :name => 'x'\naction 'a', :description => 'A'", 1, 10, "metadata needs a :description"),
            (
                "metadata :name => 'x', :description => 'x', :author => 'x', :license => 'x',\n  :version => '1', :url => 'x', :timeout => 1.5\naction 'a', :description => 'A'",
                2, 45,
                "metadata :timeout must be a whole number of seconds, not a float",
            ),
            ("input :x, :prompt => 'x'\naction 'a', :description => 'A'", 1, 1, "`input` outside an action"),
            ("action 'a'\n", 1, 1, "action \"a\" needs a :description"),
            ("action 'a', 'b' => 'c'\n", 1, 13, "action \"a\": a key must be a symbol (:name), not a string: MCollective looks properties up by symbol"),
        ];
        for (text, line, column, reason) in whole {
            assert_eq!(
                error(text),
                (InvalidDdl, *line, *column, reason.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn ruby_outside_the_subset_is_refused_with_its_line() {
        let outside = "is outside the DDL subset mco converts";
        let table: &[(&str, usize, usize, &str)] = &[
            ("  puts 'hello'", 5, 3, "`puts`"),
            (
                "  validate_inputs",
                5,
                3,
                "the method `validate_inputs` in an action",
            ),
            (
                "  summarize do\n    total(:x)\n  end",
                6,
                5,
                "the method `total` in `summarize`",
            ),
            (
                "  output :x, :description => \"#{1}\", :display_as => 'X'",
                5,
                31,
                "string interpolation",
            ),
            ("  [1, 2].each do |n|", 5, 9, "a method call with `.`"),
        ];
        for (body, line, column, start) in table {
            let e = action(body).unwrap_err();
            assert_eq!((e.line, e.column), (*line, *column), "{body}: {e}");
            assert!(e.reason.starts_with(start), "{body}: {e}");
            if e.kind == ConvertErrorKind::OutsideSubset {
                assert!(e.reason.ends_with(outside), "{body}: {e}");
            }
        }
        let e = convert("helper = 1\n").unwrap_err();
        assert_eq!(
            (e.kind, e.line, e.column),
            (ConvertErrorKind::OutsideSubset, 1, 8)
        );
        let e = convert(&format!("{METADATA}def helper\nend\n")).unwrap_err();
        assert_eq!(
            (e.line, e.column, e.reason.as_str()),
            (4, 1, "`def` is outside the DDL subset mco converts")
        );
    }

    #[test]
    fn other_plugin_ddls_are_named_and_refused() {
        let table: &[(&str, usize, &str)] = &[
            ("dataquery :description => 'x' do\nend", 4, "`dataquery` makes this a data plugin's DDL: only agent DDLs convert"),
            ("discovery do\n  capabilities [:classes]\nend", 4, "`discovery` makes this a discovery plugin's DDL: only agent DDLs convert"),
            ("usage <<-USAGE\n  text\nUSAGE", 1, "this DDL declares no actions, so it is not an agent's (validator, aggregate and connector DDLs declare only metadata): only agent DDLs convert"),
        ];
        for (body, line, reason) in table {
            let e = convert(&format!("{METADATA}{body}\n")).unwrap_err();
            assert_eq!(
                (e.kind, e.line, e.reason.as_str()),
                (ConvertErrorKind::NotAnAgent, *line, *reason)
            );
        }
        // A data DDL that runs code, as MCollective's agent_data.ddl does, is still named.
        let e = convert(&format!(
            "{METADATA}\n  dataquery :description => 'x' do\n  [:a].each do |x|\nend\n"
        ))
        .unwrap_err();
        assert_eq!(
            (e.kind, e.line, e.column),
            (ConvertErrorKind::NotAnAgent, 5, 3)
        );
        // An agent DDL that does not parse keeps its own error.
        let e = action("  x.y").unwrap_err();
        assert_eq!((e.kind, e.line), (ConvertErrorKind::OutsideSubset, 5));
    }
}
