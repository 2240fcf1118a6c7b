//! Text and JSON rendering for `mco`, as pure functions of replies and statistics, so the
//! formats are unit-tested without a fleet. The text follows MCollective's output.

use std::collections::BTreeMap;
use std::time::Duration;

use mco_ddl::Action;
use mco_spec::Reply;
use serde_json::Value;

use mco_client::{Mode, Stats};

use crate::format::Palette;

/// The exit code for a call's statistics (see the module docs of [`crate::cli`]).
pub fn exit_code(stats: &Stats) -> u8 {
    if stats.discovered == 0 {
        return 1;
    }
    if stats.responded == 0 {
        return if stats.mode == Some(Mode::Direct) {
            4
        } else {
            3
        };
    }
    if stats.failed > 0
        || !stats.no_response_from.is_empty()
        || !stats.not_contacted.is_empty()
        || !stats.clock_refused.is_empty()
    {
        return 2;
    }
    0
}

/// A value as a person reads it: strings bare, everything else compact JSON.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => printable(s),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Text from a node as it may reach a terminal: control characters other than newline and
/// tab written as `\u{..}`, so that a node cannot send escape sequences to the operator's
/// terminal (move the cursor, rewrite what was printed, set the window title).
pub fn printable(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if is_unsafe(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn is_unsafe(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// One node's block: `"%-40s %s"` (identity, status text when not OK), the status message
/// when not OK, then the outputs as right-aligned `label: value` lines.
/// A failed reply's first line is red when `palette` colours.
pub fn reply_block(
    reply: &Reply,
    action: Option<&Action>,
    verbose: bool,
    palette: Palette,
) -> String {
    let status = if reply.statuscode.is_ok() {
        ""
    } else {
        reply.statuscode.description()
    };
    let head = format!("{:<40} {}", reply.sender, status);
    let mut out = palette.failure(head.trim_end());
    out.push('\n');
    if !reply.statuscode.is_ok() {
        out.push_str(&format!("    {}\n", reply.statusmsg));
    }
    let data = reply.data.as_object().cloned().unwrap_or_default();
    let mut rows: Vec<(String, String)> = data
        .iter()
        .map(|(key, value)| {
            let label = action
                .and_then(|a| a.output.get(key))
                .filter(|_| !verbose)
                .map(|o| o.display_as.clone())
                .unwrap_or_else(|| key.clone());
            (label, show(value))
        })
        .collect();
    rows.sort();
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    for (label, value) in rows {
        let mut lines = value.lines();
        out.push_str(&format!(
            "    {label:>width$}: {}\n",
            lines.next().unwrap_or("")
        ));
        for more in lines {
            out.push_str(&format!("    {:>width$}  {more}\n", ""));
        }
    }
    out
}

/// The lines after the per-node output: `Finished processing…` and the missing nodes.
pub fn summary(stats: &Stats, verbose: bool, call: &str) -> String {
    let mut out = String::new();
    if verbose {
        out.push_str(&format!("---- {call} call stats ----\n"));
        out.push_str(&format!(
            "           Nodes: {} / {}\n",
            stats.responded, stats.discovered
        ));
        out.push_str(&format!(
            "     Pass / Fail: {} / {}\n",
            stats.ok, stats.failed
        ));
        if let Some(method) = stats.discovery_method {
            out.push_str(&format!("Discovery Method: {}\n", method.name()));
        }
        out.push_str(&format!("  Discovery Time: {}\n", ms(stats.discovery_time)));
        out.push_str(&format!("      Agent Time: {}\n", ms(stats.elapsed)));
        out.push_str(&format!(
            "      Total Time: {}\n\n",
            ms(stats.discovery_time + stats.elapsed)
        ));
    }
    out.push_str(&format!(
        "Finished processing {} / {} hosts in {:.2} ms\n",
        stats.responded,
        stats.discovered,
        stats.elapsed.as_secs_f64() * 1000.0
    ));
    if !stats.no_response_from.is_empty() {
        out.push_str("\nNo response from:\n\n");
        out.push_str(&columns(&stats.no_response_from));
    }
    if !stats.not_contacted.is_empty() {
        out.push_str(&format!(
            "\nNot contacted (stopped after batch {}):\n\n",
            stats.batches
        ));
        out.push_str(&columns(&stats.not_contacted));
    }
    if !stats.send_failures.is_empty() {
        out.push_str("\nRequest not queued for:\n\n");
        for (node, why) in &stats.send_failures {
            out.push_str(&format!("    {node}: {why}\n"));
        }
    }
    if stats.forged > 0 {
        out.push_str(&format!(
            "\nIgnored {} forged repl{} (bad signature or token)\n",
            stats.forged,
            if stats.forged == 1 { "y" } else { "ies" }
        ));
    }
    if !stats.unexpected_from.is_empty() {
        out.push_str("\nUnexpected response from:\n\n");
        out.push_str(&columns(&stats.unexpected_from));
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Names in indented columns, several per line.
pub fn columns(names: &[String]) -> String {
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(20) + 2;
    let per_line = (100 / width).max(1);
    let mut out = String::new();
    for chunk in names.chunks(per_line) {
        out.push_str("    ");
        for name in chunk {
            out.push_str(&format!("{name:<width$}"));
        }
        out = out.trim_end().to_string();
        out.push('\n');
    }
    out
}

/// `-j` output: a JSON array of `{sender, agent, action, statuscode, statusmsg, data}`.
pub fn replies_json(replies: &[Reply]) -> String {
    let array: Vec<Value> = replies.iter().map(mco_client::reply_json).collect();
    let mut text = serde_json::to_string_pretty(&array).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// `--json-full` output: [`mco_client::CallResult::to_json`], pretty.
pub fn full_json(result: &mco_client::CallResult) -> String {
    let doc = result.to_json();
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// `mco facts` text: value counts, most frequent first, nodes listed when verbose.
pub fn fact_report(fact: &str, values: &BTreeMap<String, Vec<String>>, verbose: bool) -> String {
    let mut out = format!("Report for fact: {fact}\n\n");
    let mut rows: Vec<(&String, &Vec<String>)> = values.iter().collect();
    rows.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
    for (value, nodes) in rows {
        out.push_str(&format!(
            "        {:<40} found {} times\n",
            value,
            nodes.len()
        ));
        if verbose {
            let mut nodes = nodes.clone();
            nodes.sort();
            out.push('\n');
            for n in nodes {
                out.push_str(&format!("            {n}\n"));
            }
            out.push('\n');
        }
    }
    out
}

/// A reply for the renderers' tests: failed ones say "it broke".
#[cfg(test)]
pub(crate) fn test_reply(sender: &str, status: mco_spec::StatusCode, data: Value) -> Reply {
    Reply {
        request_id: "r".into(),
        sender: sender.into(),
        agent: "service".into(),
        action: "status".into(),
        time: 0,
        statuscode: status,
        statusmsg: if status.is_ok() {
            "OK".into()
        } else {
            "it broke".into()
        },
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mco_spec::StatusCode;
    use serde_json::json;

    use super::test_reply as reply;

    fn stats(
        mode: Mode,
        discovered: usize,
        responded: usize,
        failed: usize,
        missing: &[&str],
    ) -> Stats {
        Stats {
            mode: Some(mode),
            discovered,
            responded,
            ok: responded - failed,
            failed,
            no_response_from: missing.iter().map(|s| s.to_string()).collect(),
            ..Stats::default()
        }
    }

    #[test]
    fn exit_codes() {
        let table = [
            (stats(Mode::Broadcast, 0, 0, 0, &[]), 1),
            (stats(Mode::Broadcast, 3, 3, 0, &[]), 0),
            (stats(Mode::Broadcast, 3, 3, 1, &[]), 2),
            (stats(Mode::Broadcast, 3, 2, 0, &["c"]), 2),
            (stats(Mode::Broadcast, 3, 0, 0, &["a", "b", "c"]), 3),
            (stats(Mode::Direct, 2, 0, 0, &["a", "b"]), 4),
            (stats(Mode::Direct, 2, 2, 0, &[]), 0),
            (stats(Mode::Direct, 2, 1, 1, &["b"]), 2),
        ];
        for (s, want) in table {
            assert_eq!(exit_code(&s), want, "{s:?}");
        }
    }

    #[test]
    fn reply_blocks_use_labels_and_status() {
        let ddl = mco_ddl::builtin::ddl("service").unwrap();
        let action = ddl.action("status");
        let ok = reply_block(
            &reply("web1", StatusCode::Ok, json!({"status": "running"})),
            action,
            false,
            Palette::PLAIN,
        );
        assert_eq!(ok, "web1\n    Service Status: running\n");
        let failed = reply_block(
            &reply("web2", StatusCode::Aborted, json!({"status": "unknown"})),
            action,
            false,
            Palette::PLAIN,
        );
        assert!(
            failed.starts_with(&format!("{:<40} Request Aborted\n    it broke\n", "web2")),
            "{failed:?}"
        );
        let raw = reply_block(
            &reply("web1", StatusCode::Ok, json!({"status": "running", "n": 1})),
            None,
            false,
            Palette::PLAIN,
        );
        assert_eq!(raw, "web1\n         n: 1\n    status: running\n");
        // restart displays failures only.
        let restart = ddl.action("restart").map(|a| a.display);
        assert!(!crate::format::shown(None, restart, false).shows(StatusCode::Ok));
        assert!(crate::format::shown(None, restart, false).shows(StatusCode::Aborted));
    }

    #[test]
    fn summaries_and_json() {
        let mut s = stats(Mode::Broadcast, 3, 2, 0, &["db1"]);
        s.elapsed = Duration::from_micros(12_345);
        let text = summary(&s, false, "rpcutil#ping");
        assert!(
            text.starts_with("Finished processing 2 / 3 hosts in 12.35 ms\n"),
            "{text}"
        );
        assert!(text.contains("No response from:\n\n    db1\n"), "{text}");
        let json: Value = serde_json::from_str(&replies_json(&[reply(
            "web1",
            StatusCode::Ok,
            json!({"x": 1}),
        )]))
        .unwrap();
        assert_eq!(
            json,
            json!([{"sender": "web1", "agent": "service", "action": "status", "statuscode": 0, "statusmsg": "OK", "data": {"x": 1}}])
        );
        let mut values = BTreeMap::new();
        values.insert("uk".to_string(), vec!["a".to_string(), "b".to_string()]);
        values.insert("de".to_string(), vec!["c".to_string()]);
        let report = fact_report("country", &values, false);
        assert_eq!(report, format!("Report for fact: country\n\n        {:<40} found 2 times\n        {:<40} found 1 times\n", "uk", "de"));
    }

    #[test]
    fn node_text_cannot_reach_the_terminal_as_control_sequences() {
        assert_eq!(super::printable("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(super::printable("\u{1b}[2Jx\u{9b}"), "\\u{1b}[2Jx\\u{9b}");
        assert_eq!(super::show(&serde_json::json!("a\u{7}")), "a\\u{7}");
    }
}
