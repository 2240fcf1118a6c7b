//! Pictures of numbers in text: a DDL summary's counts as proportional bars, a numeric
//! output across the fleet as min/avg/max with a sparkline, and the histogram `mco plot`
//! draws. Pure functions of the values, so they are unit-tested without a fleet.
//!
//! Not for: deciding when to draw them (on a terminal: [`crate::rpc`]) or the PNG
//! ([`crate::plot`]).

use mco_ddl::{Action, AggregateResult};
use mco_spec::Reply;
use serde_json::Value;

/// The widest bar, in characters.
const BAR_WIDTH: usize = 40;

/// Eighths of a character cell, for bars that end between two cells.
const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];

/// Sparkline heights, lowest to highest.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A bar `value / max` of `BAR_WIDTH` long, to an eighth of a cell; empty for 0.
pub fn bar(value: f64, max: f64) -> String {
    if !(value > 0.0 && max > 0.0) {
        return String::new();
    }
    let eighths = ((value / max).min(1.0) * (BAR_WIDTH * 8) as f64).round() as usize;
    let eighths = eighths.max(1);
    let mut out = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        out.push(EIGHTHS[eighths % 8 - 1]);
    }
    out
}

/// A summary with counts drawn as bars after each `value = count` line; the other
/// functions (average, sum) as MCollective prints them.
pub fn aggregate_with_bars(aggregate: &AggregateResult) -> String {
    let Some(counts) = aggregate.counts.as_ref().filter(|c| !c.is_empty()) else {
        return aggregate.render();
    };
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0) as f64;
    let width = counts
        .iter()
        .map(|(v, _)| v.chars().count())
        .max()
        .unwrap_or(0);
    let count_width = counts
        .iter()
        .map(|(_, n)| n.to_string().len())
        .max()
        .unwrap_or(0);
    let mut out = format!("Summary of {}:\n\n", aggregate.display_as);
    for (value, count) in counts {
        out.push_str(&format!(
            "   {value:>width$} = {count:<count_width$} {}\n",
            bar(*count as f64, max)
        ));
    }
    out
}

/// One histogram bucket: values in `[low, high)` (the last one includes `high`).
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Its lower bound.
    pub low: f64,
    /// Its upper bound.
    pub high: f64,
    /// How many values fell in it.
    pub count: usize,
}

/// `values` in `buckets` equal buckets from their minimum to their maximum (one bucket when
/// they are all equal); empty without values.
pub fn histogram(values: &[f64], buckets: usize) -> Vec<Bucket> {
    let (Some(min), Some(max)) = (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) else {
        return Vec::new();
    };
    let buckets = if max > min { buckets.max(1) } else { 1 };
    let step = (max - min) / buckets as f64;
    let mut out: Vec<Bucket> = (0..buckets)
        .map(|i| Bucket {
            low: min + step * i as f64,
            high: if i + 1 == buckets {
                max
            } else {
                min + step * (i + 1) as f64
            },
            count: 0,
        })
        .collect();
    for value in values {
        let index = if step > 0.0 {
            (((value - min) / step) as usize).min(buckets - 1)
        } else {
            0
        };
        out[index].count += 1;
    }
    out
}

/// The buckets as a line of block characters, higher for fuller buckets.
pub fn sparkline(buckets: &[Bucket]) -> String {
    let most = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    buckets
        .iter()
        .map(|b| match b.count {
            0 => ' ',
            n => SPARKS[((n * (SPARKS.len() - 1)) + most / 2) / most.max(1)],
        })
        .collect()
}

/// What a numeric output came to across the replies.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericSummary {
    /// The output's name.
    pub output: String,
    /// Its label (the DDL's `display_as`, or the name).
    pub label: String,
    /// The values, one per successful reply that had a number.
    pub values: Vec<f64>,
}

impl NumericSummary {
    /// The smallest value.
    pub fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The largest value.
    pub fn max(&self) -> f64 {
        self.values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The mean.
    pub fn avg(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len().max(1) as f64
    }

    /// `Summary of LABEL:` with min, avg and max and a sparkline of their spread.
    pub fn render(&self) -> String {
        format!(
            "Summary of {}:\n\n   min {}  avg {}  max {}  {}  ({} nodes)\n",
            self.label,
            number(self.min()),
            number(self.avg()),
            number(self.max()),
            sparkline(&histogram(&self.values, 16)).trim_end(),
            self.values.len()
        )
    }
}

/// A number as people read it: integers without a fraction, others to 2 decimals.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The numeric value of `output` in `reply`, if it has one.
pub fn numeric(reply: &Reply, output: &str) -> Option<f64> {
    reply.data.get(output).and_then(Value::as_f64)
}

/// The outputs that are numbers in at least two successful replies and in no successful
/// reply anything else (a missing or null value is fine), except those a DDL summary
/// already covers; in output name order.
pub fn numeric_summaries(replies: &[Reply], action: Option<&Action>) -> Vec<NumericSummary> {
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.statuscode.is_ok()).collect();
    let mut names: Vec<&String> = ok
        .iter()
        .filter_map(|r| r.data.as_object())
        .flat_map(|d| d.keys())
        .collect();
    names.sort();
    names.dedup();
    let summarised =
        |name: &str| action.is_some_and(|a| a.aggregate.iter().any(|s| s.output() == Some(name)));
    names
        .into_iter()
        .filter(|name| !summarised(name))
        .filter_map(|name| {
            let mut values = Vec::new();
            for reply in &ok {
                match reply.data.get(name.as_str()) {
                    None | Some(Value::Null) => {}
                    Some(Value::Number(n)) => values.push(n.as_f64()?),
                    Some(_) => return None,
                }
            }
            let label = action
                .and_then(|a| a.output.get(name.as_str()))
                .map(|o| o.display_as.clone())
                .unwrap_or_else(|| name.clone());
            (values.len() >= 2).then(|| NumericSummary {
                output: name.clone(),
                label,
                values,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::test_reply;
    use mco_spec::StatusCode;
    use serde_json::json;

    #[test]
    fn bars_are_proportional_to_an_eighth_of_a_cell() {
        assert_eq!(bar(0.0, 4.0), "");
        assert_eq!(bar(4.0, 4.0).chars().count(), BAR_WIDTH);
        assert_eq!(bar(2.0, 4.0), "█".repeat(BAR_WIDTH / 2));
        assert_eq!(bar(1.0, 1000.0), "▏", "a non-zero count always shows");
        let aggregate = AggregateResult {
            function: "summary".into(),
            output: "value".into(),
            display_as: "Value".into(),
            counts: Some(vec![("uk".into(), 3), ("de".into(), 1)]),
            value: None,
            lines: vec![],
        };
        let text = aggregate_with_bars(&aggregate);
        let want_uk = format!("   uk = 3 {}\n", "█".repeat(BAR_WIDTH));
        assert!(text.starts_with("Summary of Value:\n\n"), "{text}");
        assert!(text.contains(&want_uk), "{text}");
        assert!(
            text.contains(&format!("   de = 1 {}\n", "█".repeat(BAR_WIDTH / 3) + "▍")),
            "{text}"
        );
    }

    #[test]
    fn histograms_cover_the_range_and_count_every_value() {
        let values = [2.0, 4.0, 8.0, 8.0, 16.0];
        let buckets = histogram(&values, 7);
        assert_eq!(buckets.len(), 7);
        assert_eq!((buckets[0].low, buckets[6].high), (2.0, 16.0));
        assert_eq!(buckets.iter().map(|b| b.count).sum::<usize>(), 5);
        assert_eq!(buckets[6].count, 1, "the maximum falls in the last bucket");
        assert_eq!(buckets[3].count, 2, "8 is in [8, 10): {buckets:?}");
        assert_eq!(histogram(&[3.0, 3.0], 10).len(), 1);
        assert!(histogram(&[], 10).is_empty());
        assert_eq!(sparkline(&histogram(&[1.0, 1.0, 1.0, 9.0], 2)), "█▃");
    }

    #[test]
    fn numeric_outputs_are_summarised_unless_mixed_or_already_summarised() {
        let replies = vec![
            test_reply("a", StatusCode::Ok, json!({"t": 0.5, "n": 1, "s": "x"})),
            test_reply("b", StatusCode::Ok, json!({"t": 3.5, "n": "two", "s": "y"})),
            test_reply("c", StatusCode::Ok, json!({"t": null})),
            test_reply("d", StatusCode::Aborted, json!({"t": 100})),
        ];
        let found = numeric_summaries(&replies, None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].values, [0.5, 3.5]);
        assert_eq!(
            (found[0].min(), found[0].avg(), found[0].max()),
            (0.5, 2.0, 3.5)
        );
        let text = found[0].render();
        assert!(
            text.starts_with("Summary of t:\n\n   min 0.50  avg 2  max 3.50  █"),
            "{text}"
        );
        assert!(text.ends_with("(2 nodes)\n"), "{text}");
        let ddl = mco_ddl::builtin::ddl("rpcutil").unwrap_or_else(|| panic!("no rpcutil"));
        let fact = vec![
            test_reply("a", StatusCode::Ok, json!({"value": 1})),
            test_reply("b", StatusCode::Ok, json!({"value": 2})),
        ];
        assert!(
            numeric_summaries(&fact, ddl.action("get_fact")).is_empty(),
            "get_fact's DDL summarises value already"
        );
    }
}
