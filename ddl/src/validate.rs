//! Input validation and CLI value conversion.
//!
//! The same [`Action::validate_inputs`] runs on the client before anything is sent and on the
//! node before the action runs, because a node never trusts its client. A missing required
//! input is status 3 (missing data); anything else wrong is status 4 (invalid data), with a
//! message that names the input and says why.

use std::fmt;

use serde_json::{Map, Number, Value};

use mco_spec::StatusCode;

use crate::model::{Action, Input, InputType};

/// Whether an input was missing or invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputErrorKind {
    /// A required input was not given (status 3).
    Missing,
    /// An input was given but is not acceptable (status 4).
    Invalid,
}

/// An input that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// Missing or invalid.
    pub kind: InputErrorKind,
    /// The action being called.
    pub action: String,
    /// The input at fault.
    pub input: String,
    /// Why.
    pub reason: String,
}

impl InputError {
    /// The reply status code this error becomes.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            InputErrorKind::Missing => StatusCode::MissingData,
            InputErrorKind::Invalid => StatusCode::InvalidData,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            InputErrorKind::Missing => {
                write!(f, "action {} needs a {} argument", self.action, self.input)
            }
            InputErrorKind::Invalid => write!(
                f,
                "invalid input {} for action {}: {}",
                self.input, self.action, self.reason
            ),
        }
    }
}

impl std::error::Error for InputError {}

impl Action {
    fn input_error(&self, kind: InputErrorKind, input: &str, reason: String) -> InputError {
        InputError {
            kind,
            action: self.action.clone(),
            input: input.to_string(),
            reason,
        }
    }

    /// Checks `data` against the declared inputs, filling in defaults for inputs not given.
    ///
    /// Refuses inputs the action does not declare, so a mistyped name is an error rather than
    /// silently ignored.
    pub fn validate_inputs(&self, data: &mut Map<String, Value>) -> Result<(), InputError> {
        if let Some(unknown) = data.keys().find(|k| !self.input.contains_key(*k)) {
            return Err(self.input_error(
                InputErrorKind::Invalid,
                unknown,
                self.unknown_input_reason(),
            ));
        }
        for (name, input) in &self.input {
            match data.get(name).filter(|v| !v.is_null()) {
                Some(value) => check_value_type(input, value)
                    .map_err(|reason| self.input_error(InputErrorKind::Invalid, name, reason))?,
                None => match input.default.as_ref().filter(|d| !d.is_null()) {
                    Some(default) => {
                        data.insert(name.clone(), default.clone());
                    }
                    None if !input.optional => {
                        return Err(self.input_error(
                            InputErrorKind::Missing,
                            name,
                            "required".into(),
                        ))
                    }
                    None => {
                        data.remove(name);
                    }
                },
            }
        }
        Ok(())
    }

    /// Converts `key=value` command-line arguments into typed inputs by their declared types
    /// (`true/yes/1` for booleans, numbers for integer/float/number, JSON for hash and array).
    pub fn convert_cli_args<'a>(
        &self,
        args: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Map<String, Value>, InputError> {
        let mut data = Map::new();
        for (key, raw) in args {
            let input = self.input.get(key).ok_or_else(|| {
                self.input_error(InputErrorKind::Invalid, key, self.unknown_input_reason())
            })?;
            let value = convert_cli_value(input.kind, raw)
                .map_err(|reason| self.input_error(InputErrorKind::Invalid, key, reason))?;
            data.insert(key.to_string(), value);
        }
        Ok(data)
    }

    fn unknown_input_reason(&self) -> String {
        if self.input.is_empty() {
            "the action takes no inputs".into()
        } else {
            let known: Vec<&str> = self.input.keys().map(String::as_str).collect();
            format!("not an input of this action (inputs: {})", known.join(", "))
        }
    }
}

/// Converts one command-line string by a DDL type.
pub fn convert_cli_value(kind: InputType, raw: &str) -> Result<Value, String> {
    match kind {
        InputType::String | InputType::List => Ok(Value::String(raw.to_string())),
        InputType::Boolean => match raw.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
            "false" | "f" | "no" | "n" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "{raw:?} is not a boolean (use true/false, yes/no, 1/0)"
            )),
        },
        InputType::Integer => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not an integer")),
        InputType::Float | InputType::Number => {
            if let Ok(i) = raw.trim().parse::<i64>() {
                return Ok(Value::from(i));
            }
            raw.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("{raw:?} is not a number"))
        }
        InputType::Hash | InputType::Array => {
            let value: Value =
                serde_json::from_str(raw).map_err(|e| format!("{raw:?} is not JSON: {e}"))?;
            let ok = match kind {
                InputType::Hash => value.is_object(),
                _ => value.is_array(),
            };
            if ok {
                Ok(value)
            } else {
                Err(format!(
                    "{raw:?} is not a JSON {}",
                    if kind == InputType::Hash {
                        "object"
                    } else {
                        "array"
                    }
                ))
            }
        }
    }
}

/// Checks one value against its input declaration: type, list membership, length, validator.
pub(crate) fn check_value_type(input: &Input, value: &Value) -> Result<(), String> {
    let type_error = || format!("expected {}, got {}", input.kind.as_str(), json_type(value));
    match input.kind {
        InputType::String => {
            let s = value.as_str().ok_or_else(type_error)?;
            if let Some(max) = input.maxlength.filter(|m| *m > 0) {
                let len = s.chars().count() as u64;
                if len > max {
                    return Err(format!(
                        "{len} characters is longer than the maximum of {max}"
                    ));
                }
            }
            if let Some(rule) = input.validation_rule() {
                rule.map_err(str::to_string)?.check(s)?;
            }
            Ok(())
        }
        InputType::List => {
            let s = value.as_str().ok_or_else(type_error)?;
            let list = input.list.as_deref().unwrap_or_default();
            if list.iter().any(|v| v == s) {
                Ok(())
            } else {
                Err(format!("{s:?} is not one of {}", list.join(", ")))
            }
        }
        InputType::Boolean => value.as_bool().map(|_| ()).ok_or_else(type_error),
        InputType::Integer => {
            if value.is_i64() || value.is_u64() {
                Ok(())
            } else {
                Err(type_error())
            }
        }
        InputType::Float | InputType::Number => {
            if value.is_number() {
                Ok(())
            } else {
                Err(type_error())
            }
        }
        InputType::Hash => value.as_object().map(|_| ()).ok_or_else(type_error),
        InputType::Array => value.as_array().map(|_| ()).ok_or_else(type_error),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
