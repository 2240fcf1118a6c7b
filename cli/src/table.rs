//! `mco events --table` ([`events_table`]): the events as one table when the tail ends.
//!
//! `mco rpc --table`: the replies as one table, a row per node and a column per output,
//! headed by the DDL's `display_as` labels (the output names with `-v` or without a DDL).
//! A failed reply's status column says what failed and why; on a terminal the row's node
//! and status are red.
//!
//! Not for: choosing which replies are shown ([`crate::format`]) or the default text
//! ([`crate::output`]).

use std::collections::BTreeSet;

use mco_ddl::Action;
use mco_spec::Reply;
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::format::Palette;
use crate::output::show;

/// The table of `replies` (already chosen and ordered); empty when there are none.
pub fn replies_table(
    replies: &[&Reply],
    action: Option<&Action>,
    verbose: bool,
    palette: Palette,
) -> String {
    if replies.is_empty() {
        return String::new();
    }
    let columns = output_columns(replies, action);
    let mut builder = Builder::default();
    let mut header = vec!["Node".to_string(), "Status".to_string()];
    header.extend(columns.iter().map(|key| {
        action
            .and_then(|a| a.output.get(key))
            .filter(|_| !verbose)
            .map(|o| o.display_as.clone())
            .unwrap_or_else(|| key.clone())
    }));
    builder.push_record(header);
    for reply in replies {
        let (node, status) = if reply.statuscode.is_ok() {
            (reply.sender.clone(), "OK".to_string())
        } else {
            let status = format!("{}: {}", reply.statuscode.description(), reply.statusmsg);
            (palette.failure(&reply.sender), palette.failure(&status))
        };
        let mut row = vec![node, status];
        let data = reply.data.as_object();
        row.extend(
            columns
                .iter()
                .map(|key| data.and_then(|d| d.get(key)).map(show).unwrap_or_default()),
        );
        builder.push_record(row);
    }
    let mut table = builder.build();
    table.with(Style::sharp());
    let mut text = table.to_string();
    text.push('\n');
    text
}

/// The outputs to show as columns: the DDL's, then any others the replies carry, each
/// group sorted by name.
fn output_columns(replies: &[&Reply], action: Option<&Action>) -> Vec<String> {
    let declared: Vec<String> = action
        .map(|a| a.output.keys().cloned().collect())
        .unwrap_or_default();
    let others: BTreeSet<&String> = replies
        .iter()
        .filter_map(|r| r.data.as_object())
        .flat_map(|d| d.keys())
        .filter(|k| !declared.contains(k))
        .collect();
    declared
        .iter()
        .cloned()
        .chain(others.into_iter().cloned())
        .collect()
}

/// The table of events: time, node, type, severity and the data as `key=value`s.
pub fn events_table(events: &[mco_client::ReceivedEvent]) -> String {
    if events.is_empty() {
        return String::new();
    }
    let mut builder = Builder::default();
    builder.push_record(["Time", "Node", "Type", "Severity", "Data"].map(String::from));
    for received in events {
        let event = &received.event;
        let data = match &event.data {
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{}={}", crate::output::printable(k), show(v)))
                .collect::<Vec<_>>()
                .join(" "),
            other => show(other),
        };
        builder.push_record([
            crate::events::event_time(event.time),
            event.identity.clone(),
            event.kind.clone(),
            event.severity.name().to_string(),
            data,
        ]);
    }
    let mut table = builder.build();
    table.with(Style::sharp());
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mco_spec::StatusCode;
    use serde_json::json;

    use crate::output::test_reply as reply;

    #[test]
    fn a_row_per_node_a_column_per_output_and_failures_say_why() {
        let ddl = mco_ddl::builtin::ddl("service").unwrap_or_else(|| panic!("no service DDL"));
        let web1 = reply("web1", StatusCode::Ok, json!({"status": "running"}));
        let web2 = reply("web2", StatusCode::Aborted, json!({"status": "unknown"}));
        let text = replies_table(&[&web1, &web2], ddl.action("status"), false, Palette::PLAIN);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(
            lines[1].contains("Node") && lines[1].contains("Service Status"),
            "{text}"
        );
        assert!(
            lines[3].contains("web1") && lines[3].contains("running"),
            "{text}"
        );
        assert!(
            lines[4].contains("web2") && lines[4].contains("Request Aborted: it broke"),
            "{text}"
        );
        let raw = replies_table(&[&web1], None, false, Palette::PLAIN);
        assert!(
            raw.contains("status") && !raw.contains("Service Status"),
            "{raw}"
        );
        assert_eq!(replies_table(&[], None, false, Palette::PLAIN), "");
    }
}
