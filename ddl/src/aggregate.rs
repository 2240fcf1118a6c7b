//! Aggregates a client computes over the replies of one call: `summary`, `boolean_summary`,
//! `average` and `sum`, as an action's DDL declares them.
//!
//! Only successful replies (status 0) are counted, because a failed reply carries output
//! defaults rather than observations. Results render as MCollective prints them after the
//! per-node lines, and serialise for `-j` output.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{Action, AggregateSpec};

/// The aggregate functions mco computes. A DDL may name others (plugins ship their own); as
/// in Choria, those are skipped, and loading the DDL warns about them.
pub const FUNCTIONS: [&str; 4] = ["summary", "boolean_summary", "average", "sum"];

/// Accumulates the aggregates of one action over many replies.
#[derive(Debug, Clone)]
pub struct Aggregator {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    spec: AggregateSpec,
    display_as: String,
    counts: BTreeMap<String, u64>,
    sum: f64,
    numbers: u64,
}

/// One computed aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateResult {
    /// The function (`summary`, `boolean_summary`, `average`, `sum`).
    pub function: String,
    /// The output it was computed over.
    pub output: String,
    /// The output's label.
    pub display_as: String,
    /// For summaries: how often each value occurred, most frequent first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Vec<(String, u64)>>,
    /// For average and sum: the number, when any reply had a numeric value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The lines printed under the heading.
    pub lines: Vec<String>,
}

impl AggregateResult {
    /// The text block the CLI prints: a heading, a blank line and the result lines.
    pub fn render(&self) -> String {
        let mut out = format!("Summary of {}:\n\n", self.display_as);
        for line in &self.lines {
            out.push_str("   ");
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

impl Aggregator {
    /// An aggregator for the aggregates `action` declares (none is fine), skipping those
    /// whose function mco does not know.
    pub fn new(action: &Action) -> Aggregator {
        let entries = action
            .aggregate
            .iter()
            .filter(|spec| FUNCTIONS.contains(&spec.function.as_str()))
            .filter_map(|spec| {
                let output = spec.output()?;
                let display_as = action
                    .output
                    .get(output)
                    .map(|o| o.display_as.clone())
                    .unwrap_or_else(|| output.to_string());
                Some(Entry {
                    spec: spec.clone(),
                    display_as,
                    counts: BTreeMap::new(),
                    sum: 0.0,
                    numbers: 0,
                })
            })
            .collect();
        Aggregator { entries }
    }

    /// Whether there is anything to compute.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds one successful reply's data.
    pub fn add(&mut self, data: &Map<String, Value>) {
        for entry in &mut self.entries {
            let Some(value) = entry.spec.output().and_then(|o| data.get(o)) else {
                continue;
            };
            match entry.spec.function.as_str() {
                "summary" => match value {
                    Value::Array(items) => {
                        for item in items {
                            *entry.counts.entry(label(item)).or_default() += 1;
                        }
                    }
                    other => *entry.counts.entry(label(other)).or_default() += 1,
                },
                "boolean_summary" => {
                    let key = match truthiness(value) {
                        Some(b) => {
                            let options = entry.spec.options();
                            let custom = options
                                .and_then(|o| o.get(if b { "true" } else { "false" }))
                                .and_then(Value::as_str);
                            custom.map(str::to_string).unwrap_or_else(|| b.to_string())
                        }
                        None => label(value),
                    };
                    *entry.counts.entry(key).or_default() += 1;
                }
                _ => {
                    if let Some(n) = number(value) {
                        entry.sum += n;
                        entry.numbers += 1;
                    }
                }
            }
        }
    }

    /// The results, in DDL order.
    pub fn results(&self) -> Vec<AggregateResult> {
        self.entries.iter().map(Entry::result).collect()
    }
}

impl Entry {
    fn result(&self) -> AggregateResult {
        let output = self.spec.output().unwrap_or_default().to_string();
        let format = self
            .spec
            .options()
            .and_then(|o| o.get("format"))
            .and_then(Value::as_str);
        let mut result = AggregateResult {
            function: self.spec.function.clone(),
            output,
            display_as: self.display_as.clone(),
            counts: None,
            value: None,
            lines: Vec::new(),
        };
        match self.spec.function.as_str() {
            "average" | "sum" => {
                if self.numbers == 0 {
                    result.lines.push("no numeric values".into());
                    return result;
                }
                let value = if self.spec.function == "sum" {
                    self.sum
                } else {
                    self.sum / self.numbers as f64
                };
                let default_format = if self.spec.function == "sum" {
                    format!("Sum of {}: %f", self.display_as)
                } else {
                    format!("Average of {}: %f", self.display_as)
                };
                result.value = Some(value);
                result.lines.push(printf(
                    format.unwrap_or(&default_format),
                    &[Value::from(value)],
                ));
            }
            _ => {
                let mut counts: Vec<(String, u64)> =
                    self.counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
                counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let width = counts
                    .iter()
                    .map(|(k, _)| k.chars().count())
                    .max()
                    .unwrap_or(0);
                for (key, count) in &counts {
                    let line = match format {
                        Some(f) => printf(f, &[Value::String(key.clone()), Value::from(*count)]),
                        None => format!("{key:>width$} = {count}"),
                    };
                    result.lines.push(line);
                }
                result.counts = Some(counts);
            }
        }
        result
    }
}

fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn truthiness(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" => Some(true),
            "false" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Formats values with a printf-style format as DDL aggregate options use them:
/// `%d`/`%i`, `%f` (with `.precision`), `%s`, `%%`, an optional width and `-`/`0` flags.
/// Each conversion takes the next value; unknown conversions, and conversions beyond the
/// values given, are left as written.
pub fn printf(format: &str, values: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut values = values.iter();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut spec = String::from("%");
        let mut left = false;
        let mut zero = false;
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            spec.push(f);
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            spec.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            spec.push('.');
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                spec.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(conv) = chars.next() else {
            out.push_str(&spec);
            break;
        };
        let Some(value) = values.clone().next() else {
            spec.push(conv);
            out.push_str(&spec);
            continue;
        };
        let text = match conv {
            'd' | 'i' => number(value).map(|n| format!("{}", n.round() as i64)),
            'f' => number(value).map(|n| format!("{:.*}", precision.unwrap_or(6), n)),
            's' => Some(label(value)),
            _ => None,
        };
        let Some(mut text) = text else {
            spec.push(conv);
            out.push_str(&spec);
            continue;
        };
        values.next();
        let width: usize = width.parse().unwrap_or(0);
        let len = text.chars().count();
        if len < width {
            let pad = width - len;
            if left {
                text.push_str(&" ".repeat(pad));
            } else if zero && conv != 's' {
                let (sign, digits) = match text.strip_prefix('-') {
                    Some(rest) => ("-", rest.to_string()),
                    None => ("", text.clone()),
                };
                text = format!("{sign}{}{digits}", "0".repeat(pad));
            } else {
                text = format!("{}{text}", " ".repeat(pad));
            }
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printf_formats_like_c() {
        let table: &[(&str, Value, &str)] = &[
            ("Average: %0.2f", json!(1.23456), "Average: 1.23"),
            ("Average: %d", json!(2.6), "Average: 3"),
            ("%f", json!(1), "1.000000"),
            ("%5d|", json!(42), "   42|"),
            ("%-5d|", json!(42), "42   |"),
            ("%05.1f", json!(2.25), "002.2"),
            ("%s items", json!("x"), "x items"),
            ("100%% %d", json!(7), "100% 7"),
            ("%q", json!(1), "%q"),
        ];
        for (format, value, want) in table {
            assert_eq!(
                printf(format, std::slice::from_ref(value)),
                *want,
                "{format}"
            );
        }
        assert_eq!(
            printf("%s = %d", &[json!("running"), json!(3)]),
            "running = 3"
        );
        assert_eq!(printf("%s %s", &[json!("a")]), "a %s");
    }
}
