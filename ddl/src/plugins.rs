//! Validator and aggregate plugins: named validators and aggregate functions a machine adds
//! without recompiling mco, so a plugin's own `validation: "site_fqdn"` is enforced on the
//! client before sending and on the node before running, and its own aggregate function is
//! summarised by the client.
//!
//! Both binaries read one plugin directory (`plugins_dir` in `client.toml` and `mcod.toml`,
//! `/etc/mco/plugins` by default):
//!
//! ```text
//! /etc/mco/plugins/validators.toml     declarative validators
//! /etc/mco/plugins/validator/<name>    external validators (executables)
//! /etc/mco/plugins/aggregate/<name>    external aggregate functions (executables)
//! ```
//!
//! `validators.toml` names each validator with a regular expression the whole value must
//! match somewhere (anchor it) and/or a maximum length in characters:
//!
//! ```toml
//! [validators.site_fqdn]
//! regex = '^[a-z0-9-]+(\.[a-z0-9-]+)*\.example\.net$'
//! max_length = 253
//! description = "a host name under example.net"
//! ```
//!
//! An external validator is run with `{"validator": "site_fqdn", "value": "web1"}` on stdin
//! and answers on stdout `{"valid": true}` or `{"valid": false, "message": "why"}`. It has
//! [`VALIDATOR_DEADLINE`] and [`ANSWER_LIMIT`] bytes of stdout; anything else (a timeout, a
//! crash, a non-zero exit, more output, no such JSON) refuses the value: a validator fails
//! closed. An external aggregate gets `{"aggregate": "name", "output": "x", "args": [...],
//! "values": [...]}` (the output's values in the successful replies; `args` the DDL's
//! arguments after the output) and answers `{"result": any, "format": "optional, %s is the
//! result"}`.
//!
//! Rules: a name is a plugin name only if it matches `^[a-z][a-z0-9_]{0,63}$` (checked before
//! any lookup, so no name is ever a path), built-in validators and functions always win over
//! plugins of the same name, a declarative validator wins over an executable of the same
//! name, executables are run only from this directory and through [`mco_runner`], at most
//! [`MAX_RUNNING`] at a time. A name that is neither built in nor installed is still not
//! enforced (the loader warns, [`Plugins::unresolved`]).
//!
//! Not for: the built-in validators ([`crate::validators`]) and aggregates
//! ([`crate::aggregate`]), or choosing the directory (the configurations do).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::aggregate::{AggregateResult, FUNCTIONS};
use crate::load::{Finding, FindingKind};
use crate::model::{Action, AgentDdl, AggregateSpec, InputType};
use crate::validate::{InputError, InputErrorKind};
use crate::validators::Validation;

/// Where both binaries look for plugins unless configured otherwise.
pub const DEFAULT_PLUGINS_DIR: &str = "/etc/mco/plugins";
/// How long an external validator may take: it runs for every request on every node.
pub const VALIDATOR_DEADLINE: Duration = Duration::from_secs(2);
/// How long an external aggregate may take: it runs once per call on the client.
pub const AGGREGATE_DEADLINE: Duration = Duration::from_secs(10);
/// The most stdout an external plugin may write; more is a failure.
pub const ANSWER_LIMIT: usize = 64 * 1024;
/// The most external validators running at once in one process; a value that cannot get a
/// turn within [`VALIDATOR_DEADLINE`] is refused, so a flood of requests cannot fork-bomb a
/// node.
pub const MAX_RUNNING: usize = 8;
/// The longest message from a validator that is passed on.
const MAX_MESSAGE_CHARS: usize = 200;

/// Why the plugin directory could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// `validators.toml` exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `validators.toml` is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (the validator named).
        reason: String,
    },
}

/// A validator from `validators.toml`.
#[derive(Debug, Clone)]
struct Declared {
    regex: Option<Regex>,
    max_length: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclaredEntry {
    regex: Option<String>,
    max_length: Option<usize>,
    // Documentation for the file's readers; mco does not show it.
    #[allow(dead_code)]
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorsFile {
    #[serde(default)]
    validators: BTreeMap<String, DeclaredEntry>,
}

/// The validator and aggregate plugins installed in one directory.
#[derive(Debug)]
pub struct Plugins {
    dir: Option<PathBuf>,
    declared: BTreeMap<String, Declared>,
    running: tokio::sync::Semaphore,
}

impl Default for Plugins {
    fn default() -> Plugins {
        Plugins::none()
    }
}

/// Whether `name` may name a plugin: a lowercase word, so never a path or an option.
pub fn is_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Plugins {
    /// No plugins at all.
    pub fn none() -> Plugins {
        Plugins {
            dir: None,
            declared: BTreeMap::new(),
            running: tokio::sync::Semaphore::new(MAX_RUNNING),
        }
    }

    /// The plugins in `dir` (none when it does not exist). An error when `validators.toml`
    /// is there but unreadable or invalid, so a typo never silently disables a validator.
    pub fn load(dir: &Path) -> Result<Plugins, PluginError> {
        let mut plugins = Plugins::none();
        if !dir.is_dir() {
            return Ok(plugins);
        }
        plugins.dir = Some(dir.to_path_buf());
        let file = dir.join("validators.toml");
        let path = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(plugins),
            Err(source) => return Err(PluginError::Read { path, source }),
        };
        let parsed: ValidatorsFile = toml::from_str(&text).map_err(|e| PluginError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        for (name, entry) in parsed.validators {
            let invalid = |reason: String| PluginError::Invalid {
                path: path.clone(),
                reason: format!("validator {name:?}: {reason}"),
            };
            if !is_plugin_name(&name) {
                return Err(invalid(
                    "a validator name is a lowercase word (a-z, 0-9, _)".into(),
                ));
            }
            if entry.regex.is_none() && entry.max_length.is_none() {
                return Err(invalid("needs a regex or a max_length".into()));
            }
            let regex = entry
                .regex
                .as_deref()
                .map(mco_spec::filter::compile_regex)
                .transpose()
                .map_err(|e| invalid(format!("invalid regex: {e}")))?;
            plugins.declared.insert(
                name,
                Declared {
                    regex,
                    max_length: entry.max_length,
                },
            );
        }
        Ok(plugins)
    }

    /// The executable of plugin `name` of `kind` (`validator`, `aggregate`), if installed.
    fn executable(&self, kind: &str, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        if !is_plugin_name(name) {
            return None;
        }
        let path = self.dir.as_ref()?.join(kind).join(name);
        let metadata = std::fs::metadata(&path).ok()?;
        (metadata.is_file() && metadata.permissions().mode() & 0o111 != 0).then_some(path)
    }

    /// Whether a validator `name` is installed (declared or an executable).
    pub fn has_validator(&self, name: &str) -> bool {
        self.declared.contains_key(name) || self.executable("validator", name).is_some()
    }

    /// Whether an aggregate function `name` is installed.
    pub fn has_aggregate(&self, name: &str) -> bool {
        self.executable("aggregate", name).is_some()
    }

    /// `warnings` from loading `ddl` without those about validators and aggregates these
    /// plugins provide: what is still neither built in nor installed.
    pub fn unresolved(&self, ddl: &AgentDdl, warnings: Vec<Finding>) -> Vec<Finding> {
        warnings
            .into_iter()
            .filter(|finding| {
                let action = finding.action.as_deref().and_then(|a| ddl.action(a));
                let Some(action) = action else {
                    return true;
                };
                match finding.kind {
                    FindingKind::UnsupportedValidator => {
                        let input = finding
                            .field
                            .strip_prefix("input.")
                            .and_then(|f| f.strip_suffix(".validation"));
                        let validator = input
                            .and_then(|i| action.input.get(i))
                            .and_then(|i| i.validation.as_deref());
                        !validator.is_some_and(|v| self.has_validator(v))
                    }
                    FindingKind::UnknownAggregate => {
                        let index = finding
                            .field
                            .strip_prefix("aggregate[")
                            .and_then(|f| f.strip_suffix(']'))
                            .and_then(|i| i.parse::<usize>().ok());
                        let function = index.and_then(|i| action.aggregate.get(i));
                        !function.is_some_and(|f| self.has_aggregate(&f.function))
                    }
                    _ => true,
                }
            })
            .collect()
    }

    /// [`Action::validate_inputs`], then every plugin validator the action's string inputs
    /// name: the one input check of client and node.
    pub async fn validate_inputs(
        &self,
        action: &Action,
        data: &mut Map<String, Value>,
    ) -> Result<(), InputError> {
        action.validate_inputs(data)?;
        for (name, input) in &action.input {
            if input.kind != InputType::String {
                continue;
            }
            let Some(Ok(Validation::Unsupported(validator))) = input.validation_rule() else {
                continue;
            };
            let Some(value) = data.get(name).and_then(Value::as_str) else {
                continue;
            };
            self.check(validator, value)
                .await
                .map_err(|reason| InputError {
                    kind: InputErrorKind::Invalid,
                    action: action.action.clone(),
                    input: name.clone(),
                    reason,
                })?;
        }
        Ok(())
    }

    /// Checks `value` with plugin validator `validator`; a name nothing provides passes (it
    /// is not enforced, and the loader said so).
    pub async fn check(&self, validator: &str, value: &str) -> Result<(), String> {
        if let Some(declared) = self.declared.get(validator) {
            if let Some(max) = declared.max_length {
                let len = value.chars().count();
                if len > max {
                    return Err(format!(
                        "{len} characters is longer than the maximum of {max} for a {validator}"
                    ));
                }
            }
            return match &declared.regex {
                Some(regex) if !regex.is_match(value) => {
                    Err(format!("{value:?} is not a valid {validator}"))
                }
                _ => Ok(()),
            };
        }
        let Some(executable) = self.executable("validator", validator) else {
            return Ok(());
        };
        let failed = |why: String| format!("validator {validator} failed: {why}");
        let _turn = tokio::time::timeout(VALIDATOR_DEADLINE, self.running.acquire())
            .await
            .map_err(|_| failed("too many validations running; try again".into()))?
            .map_err(|_| failed("closed".into()))?;
        let request = json!({"validator": validator, "value": value}).to_string();
        let answer = run_plugin(&executable, request, VALIDATOR_DEADLINE)
            .await
            .map_err(failed)?;
        #[derive(Deserialize)]
        struct Answer {
            valid: bool,
            #[serde(default)]
            message: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&answer)
            .map_err(|e| failed(format!("its answer is not {{\"valid\": bool}}: {e}")))?;
        if answer.valid {
            return Ok(());
        }
        match answer
            .message
            .map(|m| printable(&m))
            .filter(|m| !m.is_empty())
        {
            Some(message) => Err(format!("{value:?} is not a valid {validator}: {message}")),
            None => Err(format!("{value:?} is not a valid {validator}")),
        }
    }

    /// The aggregates of `action` that these plugins compute (built-in functions are the
    /// [`crate::Aggregator`]'s), over the successful replies' `data`, in DDL order.
    pub async fn aggregates<'a>(
        &self,
        action: &Action,
        replies: impl IntoIterator<Item = &'a Map<String, Value>> + Clone,
    ) -> Vec<AggregateResult> {
        let mut results = Vec::new();
        for spec in &action.aggregate {
            if FUNCTIONS.contains(&spec.function.as_str()) {
                continue;
            }
            let Some(executable) = self.executable("aggregate", &spec.function) else {
                continue;
            };
            let Some(output) = spec.output() else {
                continue;
            };
            let values: Vec<&Value> = replies
                .clone()
                .into_iter()
                .filter_map(|data| data.get(output))
                .collect();
            let display_as = action
                .output
                .get(output)
                .map_or_else(|| output.to_string(), |o| o.display_as.clone());
            results.push(aggregate_with(&executable, spec, output, display_as, values).await);
        }
        results
    }
}

/// Runs one external aggregate; a failure is a result whose line says so.
async fn aggregate_with(
    executable: &Path,
    spec: &AggregateSpec,
    output: &str,
    display_as: String,
    values: Vec<&Value>,
) -> AggregateResult {
    let request = json!({
        "aggregate": spec.function,
        "output": output,
        "args": spec.args.get(1..).unwrap_or_default(),
        "values": values,
    })
    .to_string();
    let mut result = AggregateResult {
        function: spec.function.clone(),
        output: output.to_string(),
        display_as,
        counts: None,
        value: None,
        lines: Vec::new(),
    };
    #[derive(Deserialize)]
    struct Answer {
        result: Value,
        #[serde(default)]
        format: Option<String>,
    }
    let answer = run_plugin(executable, request, AGGREGATE_DEADLINE)
        .await
        .and_then(|bytes| {
            serde_json::from_slice::<Answer>(&bytes)
                .map_err(|e| format!("its answer is not {{\"result\": ...}}: {e}"))
        });
    match answer {
        Ok(answer) => {
            result.value = answer.result.as_f64();
            result.lines = match &answer.result {
                Value::Object(map) => map
                    .iter()
                    .map(|(k, v)| printable(&format!("{k}: {}", text(v))))
                    .collect(),
                Value::Array(items) => items.iter().map(text).collect(),
                scalar => vec![match &answer.format {
                    Some(format) => printable(&format.replace("%s", &text(scalar))),
                    None => text(scalar),
                }],
            };
        }
        Err(why) => result
            .lines
            .push(format!("aggregate {} failed: {why}", spec.function)),
    }
    result
}

/// Runs a plugin executable with `request` on stdin and returns its stdout, or why not.
async fn run_plugin(
    executable: &Path,
    request: String,
    deadline: Duration,
) -> Result<Vec<u8>, String> {
    let output = mco_runner::Command::new(executable)
        .stdin(request)
        .stdout_limit(ANSWER_LIMIT)
        .overflow(mco_runner::Overflow::Fail)
        .stderr_limit(4096)
        .deadline(deadline)
        .grace(Duration::from_millis(200))
        .run()
        .await
        .map_err(|e| e.to_string())?;
    if !output.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .trim()
            .lines()
            .last()
            .map(printable)
            .unwrap_or_default();
        return Err(if last.is_empty() {
            format!("exited with {}", output.status)
        } else {
            format!("exited with {}: {last}", output.status)
        });
    }
    Ok(output.stdout)
}

/// A value as a line shows it: strings as they are, anything else as JSON.
fn text(value: &Value) -> String {
    printable(&match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `text` without control characters and at most [`MAX_MESSAGE_CHARS`] long: a plugin's
/// words end up on operators' terminals and in logs.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn plugin_dir(validators_toml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("validators.toml"), validators_toml).unwrap();
        std::fs::create_dir(dir.path().join("validator")).unwrap();
        std::fs::create_dir(dir.path().join("aggregate")).unwrap();
        dir
    }

    fn executable(dir: &Path, kind: &str, name: &str, body: &str) {
        let path = dir.join(kind).join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    const FQDN: &str = r#"
[validators.site_fqdn]
regex = '^[a-z0-9-]+\.example\.net$'
max_length = 30
description = "a host under example.net"
"#;

    fn action(validation: &str) -> Action {
        let ddl = format!(
            r#"{{"metadata":{{"name":"a","description":"d","author":"a","license":"l","version":"1","url":"u","timeout":5}},
              "actions":[{{"action":"go","description":"d","input":{{"host":{{"prompt":"h","description":"h","type":"string","optional":false,"validation":"{validation}","maxlength":0}}}},
              "output":{{"size":{{"description":"s","display_as":"Size"}}}},
              "aggregate":[{{"function":"median","args":["size",{{"x":1}}]}},{{"function":"summary","args":["size"]}}]}}]}}"#
        );
        AgentDdl::from_embedded_json(&ddl, "a.json")
            .unwrap()
            .actions
            .remove(0)
    }

    async fn validate(plugins: &Plugins, validation: &str, value: &str) -> Result<(), InputError> {
        let mut data = Map::new();
        data.insert("host".into(), value.into());
        plugins
            .validate_inputs(&action(validation), &mut data)
            .await
    }

    #[tokio::test]
    async fn declared_validators_are_enforced_like_built_in_ones() {
        let dir = plugin_dir(FQDN);
        let plugins = Plugins::load(dir.path()).unwrap();
        assert!(plugins.has_validator("site_fqdn"));
        assert!(validate(&plugins, "site_fqdn", "web1.example.net")
            .await
            .is_ok());
        let err = validate(&plugins, "site_fqdn", "web1.evil.org")
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.status()),
            (InputErrorKind::Invalid, mco_spec::StatusCode::InvalidData)
        );
        assert_eq!(
            err.to_string(),
            "invalid input host for action go: \"web1.evil.org\" is not a valid site_fqdn"
        );
        let long = format!("{}.example.net", "a".repeat(30));
        let err = validate(&plugins, "site_fqdn", &long).await.unwrap_err();
        assert!(
            err.reason.contains("longer than the maximum of 30"),
            "{err}"
        );
        // A name nothing provides is still not enforced; built-ins still win.
        assert!(validate(&plugins, "other_fqdn", "a;b").await.is_ok());
        assert!(validate(&plugins, "shellsafe", "a;b").await.is_err());
        assert!(Plugins::none().check("site_fqdn", "x").await.is_ok());
    }

    #[test]
    fn bad_validator_files_are_errors() {
        let table = [
            ("[validators.x]\nregex = '^('\n", "invalid regex"),
            (
                "[validators.x]\ndescription = 'nothing'\n",
                "needs a regex or a max_length",
            ),
            ("[validators.\"../x\"]\nregex = 'a'\n", "lowercase word"),
            ("[validators.x]\nregx = 'a'\n", "unknown field"),
            ("nope = ", "validators.toml"),
        ];
        for (text, want) in table {
            let dir = plugin_dir(text);
            let err = Plugins::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let missing = Plugins::load(Path::new("/nonexistent/mco-plugins")).unwrap();
        assert!(!missing.has_validator("x"));
    }

    #[test]
    fn plugin_names_are_never_paths() {
        for bad in [
            "",
            "../../bin/sh",
            "/bin/sh",
            "a/b",
            "A",
            "-x",
            "a.b",
            "1a",
            "a b",
        ] {
            assert!(!is_plugin_name(bad), "{bad:?}");
        }
        assert!(is_plugin_name("site_fqdn2"));
        assert!(!is_plugin_name(&"a".repeat(65)));
        let dir = plugin_dir("");
        executable(
            dir.path(),
            "validator",
            "ok",
            "#!/bin/sh\necho '{\"valid\":true}'\n",
        );
        let plugins = Plugins::load(dir.path()).unwrap();
        assert!(plugins.has_validator("ok"));
        assert!(!plugins.has_validator("../validator/ok"));
        assert!(plugins.executable("validator", "../aggregate/x").is_none());
    }

    #[tokio::test]
    async fn external_validators_answer_by_json_and_fail_closed() {
        let dir = plugin_dir("");
        executable(
            dir.path(),
            "validator",
            "even_len",
            "#!/bin/sh\nread -r req\ncase \"$req\" in\n*'\"value\":\"ok\"'*) echo '{\"valid\":true}';;\n*) echo '{\"valid\":false,\"message\":\"not ok\\u001b[31m\"}';;\nesac\n",
        );
        executable(dir.path(), "validator", "hang", "#!/bin/sh\nsleep 30\n");
        executable(
            dir.path(),
            "validator",
            "crash",
            "#!/bin/sh\necho boom >&2\nexit 2\n",
        );
        executable(
            dir.path(),
            "validator",
            "garbage",
            "#!/bin/sh\necho 'yes, fine'\n",
        );
        executable(
            dir.path(),
            "validator",
            "flood",
            "#!/bin/sh\nhead -c 10000000 /dev/zero\n",
        );
        let plugins = Plugins::load(dir.path()).unwrap();
        assert!(validate(&plugins, "even_len", "ok").await.is_ok());
        let err = validate(&plugins, "even_len", "nope").await.unwrap_err();
        assert_eq!(err.reason, "\"nope\" is not a valid even_len: not ok[31m");
        let started = std::time::Instant::now();
        let table = [
            ("hang", "did not finish within 2s"),
            ("crash", "exited with exit status: 2: boom"),
            ("garbage", "its answer is not"),
            ("flood", "wrote more than 65536 bytes to stdout"),
        ];
        for (validator, want) in table {
            let err = validate(&plugins, validator, "ok").await.unwrap_err();
            assert_eq!(err.status(), mco_spec::StatusCode::InvalidData);
            assert!(
                err.reason
                    .starts_with(&format!("validator {validator} failed: "))
                    && err.reason.contains(want),
                "{want:?} not in {err}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn external_aggregates_summarise_and_unknown_ones_are_skipped() {
        let dir = plugin_dir("");
        executable(
            dir.path(),
            "aggregate",
            "median",
            "#!/usr/bin/env python3\nimport json,sys\nr=json.load(sys.stdin)\nv=sorted(r['values'])\nprint(json.dumps({'result': v[len(v)//2], 'format': 'median %s of ' + str(len(v)) + ' ' + json.dumps(r['args'])}))\n",
        );
        let plugins = Plugins::load(dir.path()).unwrap();
        let replies: Vec<Map<String, Value>> = [3, 1, 2]
            .iter()
            .map(|n| {
                let mut m = Map::new();
                m.insert("size".into(), json!(n));
                m
            })
            .collect();
        let results = plugins.aggregates(&action("x"), replies.iter()).await;
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(results[0].function, "median");
        assert_eq!(results[0].display_as, "Size");
        assert_eq!(results[0].value, Some(2.0));
        assert_eq!(results[0].lines, ["median 2 of 3 [{\"x\": 1}]"]);
        assert!(Plugins::none()
            .aggregates(&action("x"), replies.iter())
            .await
            .is_empty());
    }

    #[test]
    fn only_what_is_not_installed_is_still_warned_about() {
        let dir = plugin_dir(FQDN);
        executable(dir.path(), "aggregate", "median", "#!/bin/sh\n");
        let plugins = Plugins::load(dir.path()).unwrap();
        let warnings_for = |validation: &str| {
            let mut action = serde_json::to_value(action(validation)).unwrap();
            action["aggregate"]
                .as_array_mut()
                .unwrap()
                .push(json!({"function": "nope", "args": ["size"]}));
            let text = json!({
                "metadata": {"name":"a","description":"d","author":"a","license":"l","version":"1","url":"u","timeout":5},
                "actions": [action]
            })
            .to_string();
            let loaded = AgentDdl::from_json_lenient(&text, "a.json").unwrap();
            plugins
                .unresolved(&loaded.ddl, loaded.warnings)
                .into_iter()
                .map(|f| f.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(warnings_for("site_fqdn"), ["aggregate[2]"]);
        assert_eq!(
            warnings_for("host_fqdn"),
            ["input.host.validation", "aggregate[2]"]
        );
    }
}
