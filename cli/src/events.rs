//! `mco events`: the fleet's events as they happen, or from a point in their history, one
//! line each (or one JSON object per line with `-j`), until `--count`, `--for`, Ctrl-C or
//! the reader going away. Filters (`-W`, `-F`, `-C`, `-I`, `-S`) choose nodes by discovery
//! at start, as an event carries only its node's identity; `--type` chooses types. Forged
//! and malformed events are dropped, each said on stderr and counted at the end.
//!
//! With `--run COMMAND` each event shown also runs a command ([`crate::callbacks`]); with
//! filters, the nodes are discovered again every `--rediscover` seconds so that a long watch
//! sees nodes that joined.
//!
//! Not for: what a callback does (the operator's command).

use std::io::Write;

use clap::Args;
use futures::StreamExt;
use mco_client::{EventItem, EventQuery, ReceivedEvent, Since};
use mco_spec::event::TypePattern;
use serde_json::Value;

use crate::{CommonArgs, Failure, Printed, UsageError};

/// Arguments of `mco events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this type: node.started, puppet.* (a category), *.started; repeat for
    /// more.
    #[arg(long = "type", visible_alias = "on", value_name = "PATTERN")]
    pub types: Vec<String>,
    /// Only events whose data has KEY equal to VALUE (e.g. service=httpd); repeat: all of
    /// them.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub conditions: Vec<String>,
    /// Run COMMAND (by /bin/sh) for each event shown, with the event as JSON on stdin and
    /// MCO_EVENT_TYPE, MCO_EVENT_IDENTITY, MCO_EVENT_DATA_<KEY>... in its environment.
    #[arg(long, value_name = "COMMAND")]
    pub run: Option<String>,
    /// How many --run commands may run at once (1: one at a time, in order).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "run")]
    pub concurrency: usize,
    /// Seconds a --run command may take before it is killed.
    #[arg(
        long = "run-timeout",
        value_name = "SECONDS",
        default_value_t = 300.0,
        requires = "run"
    )]
    pub run_timeout: f64,
    /// Print the events as one table when the tail ends (with --count or --for).
    #[arg(long, conflicts_with = "json")]
    pub table: bool,
    /// With filters: discover the matching nodes again every SECONDS.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub rediscover: f64,
    /// Start in the history: a time ago (30s, 10m, 2h, 1d) or an RFC 3339 time
    /// (2026-12-03T10:00:00Z); then go on with new events.
    #[arg(long, value_name = "WHEN", conflicts_with = "since_sequence")]
    pub since: Option<String>,
    /// Start in the history at this sequence number (the `sequence` of `-j`).
    #[arg(long = "since-sequence", value_name = "N")]
    pub since_sequence: Option<u64>,
    /// Stop after N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long = "for", value_name = "SECONDS")]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// `--since`: a time ago, or an RFC 3339 time, as Unix milliseconds.
pub fn since_millis(text: &str, now_ms: u64) -> Result<u64, UsageError> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    if let (Ok(n), Some(ms)) = (
        digits.parse::<u64>(),
        match unit {
            "ms" => Some(1),
            "s" => Some(1_000),
            "m" => Some(60_000),
            "h" => Some(3_600_000),
            "d" => Some(86_400_000),
            _ => None,
        },
    ) {
        return Ok(now_ms.saturating_sub(n.saturating_mul(ms)));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        .map_err(|_| {
            UsageError(format!(
                "--since {text:?}: give a time ago (30s, 10m, 2h, 1d) or an RFC 3339 time (2026-12-03T10:00:00Z)"
            ))
        })
}

/// `--where KEY=VALUE`: the data field KEY, as text, is VALUE.
pub fn parse_conditions(conditions: &[String]) -> Result<Vec<(String, String)>, UsageError> {
    conditions
        .iter()
        .map(|c| match c.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(UsageError(format!("--where {c:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// Whether `event`'s data meets every condition (a value compares as its text: strings as
/// they are, numbers and booleans as JSON writes them).
pub fn meets(conditions: &[(String, String)], data: &Value) -> bool {
    conditions.iter().all(|(key, want)| {
        data.get(key)
            .filter(|v| !v.is_null())
            .is_some_and(|v| data_text(v) == *want)
    })
}

/// A data field as text: a string as it is, anything else as JSON writes it.
pub fn data_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An event's time (Unix ms) as RFC 3339, UTC.
pub fn event_time(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// An event as one line of text: time, node, type, severity, then the data as key=value.
pub fn event_line(received: &ReceivedEvent) -> String {
    let event = &received.event;
    let when = event_time(event.time);
    // Identity and type are checked to be plain; the data is the node's to choose.
    let mut line = format!(
        "{when} {} {} {}",
        event.identity,
        event.kind,
        event.severity.name()
    );
    if let Value::Object(data) = &event.data {
        for (key, value) in data {
            line.push_str(&format!(
                " {}={}",
                crate::output::printable(key),
                crate::output::show(value)
            ));
        }
    }
    line
}

/// An event as one JSON line: the event's fields and its history `sequence`.
pub fn event_json(received: &ReceivedEvent) -> String {
    let mut value = serde_json::to_value(&received.event).unwrap_or(Value::Null);
    if let (Value::Object(map), Some(sequence)) = (&mut value, received.sequence) {
        map.insert("sequence".into(), sequence.into());
    }
    value.to_string()
}

pub(super) async fn run(args: &EventsArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let types = args
        .types
        .iter()
        .map(|t| t.parse::<TypePattern>().map_err(UsageError))
        .collect::<Result<Vec<_>, _>>()?;
    let since = match (&args.since, args.since_sequence) {
        (Some(text), _) => Some(Since::Time(since_millis(
            text,
            mco_spec::message::now_millis(),
        )?)),
        (None, Some(n)) => Some(Since::Sequence(n)),
        (None, None) => None,
    };
    let duration = crate::seconds("--for", args.duration)?;
    let conditions = parse_conditions(&args.conditions)?;
    let rediscover = crate::seconds("--rediscover", Some(args.rediscover))?
        .filter(|d| !d.is_zero())
        .ok_or_else(|| UsageError("--rediscover must be more than 0 seconds".into()))?;
    let mut callbacks = match &args.run {
        Some(command) => {
            if args.concurrency == 0 {
                return Err(UsageError("--concurrency must be at least 1".into()).into());
            }
            let timeout = crate::seconds("--run-timeout", Some(args.run_timeout))?
                .filter(|d| !d.is_zero())
                .ok_or_else(|| UsageError("--run-timeout must be more than 0 seconds".into()))?;
            Some(crate::callbacks::Callbacks::new(
                command.clone(),
                args.concurrency,
                timeout,
            ))
        }
        None => None,
    };
    let filter = args.common.filter()?;
    let client = args.common.connect().await?;
    let mut query = EventQuery::new().types(types);
    if let Some(since) = since {
        query = query.since(since);
    }
    if let Some(t) = &args.common.target {
        query = query.collective(t);
    }
    // With filters the nodes are chosen here, from a discovery made again now and then.
    let filtered = !filter.is_empty() || args.common.nodes.is_some();
    let mut nodes = if filtered {
        Some(
            args.common
                .discover_nodes(&client, &filter, &mut printed.err)
                .await?
                .nodes
                .into_iter()
                .collect::<std::collections::BTreeSet<String>>(),
        )
    } else {
        None
    };
    let mut events = client.events(query).await?;
    let mut again = tokio::time::interval(rediscover);
    again.tick().await;
    // What came before (the discovery line) goes out before the events.
    let _ = std::io::stderr().write_all(printed.err.as_bytes());
    printed.err.clear();

    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    if args.table && args.count.is_none() && args.duration.is_none() {
        return Err(
            UsageError("--table prints when the tail ends: give --count or --for".into()).into(),
        );
    }
    let mut shown = 0u64;
    let mut rejected = 0u64;
    let mut tabled = Vec::new();
    let mut stdout = std::io::stdout().lock();
    loop {
        let next = tokio::select! {
            item = events.next() => item,
            _ = tokio::signal::ctrl_c() => break,
            _ = sleep_until(deadline) => break,
            _ = again.tick(), if filtered => {
                let mut quiet = String::new();
                match args.common.discover_nodes(&client, &filter, &mut quiet).await {
                    Ok(found) => nodes = Some(found.nodes.into_iter().collect()),
                    Err(Failure(e)) => {
                        let _ = writeln!(std::io::stderr(), "mco: warning: discovering the nodes again: {e}; keeping the last ones");
                    }
                }
                continue;
            }
        };
        let Some(item) = next else { break };
        match item {
            EventItem::Event(received) => {
                if nodes
                    .as_ref()
                    .is_some_and(|n| !n.contains(&received.event.identity))
                    || !meets(&conditions, &received.event.data)
                {
                    continue;
                }
                if let Some(callbacks) = &mut callbacks {
                    callbacks.start(&received);
                }
                if args.table {
                    shown += 1;
                    tabled.push(received);
                    if args.count.is_some_and(|n| shown >= n) {
                        break;
                    }
                    continue;
                }
                let line = if args.common.json {
                    event_json(&received)
                } else {
                    event_line(&received)
                };
                if writeln!(stdout, "{line}")
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    // `| head`: whoever reads has what they wanted.
                    return Ok(0);
                }
                shown += 1;
                if args.count.is_some_and(|n| shown >= n) {
                    break;
                }
            }
            EventItem::Trouble(what) => {
                let _ = writeln!(std::io::stderr(), "mco: warning: {what}");
            }
            EventItem::Rejected(why) => {
                rejected += 1;
                let _ = writeln!(std::io::stderr(), "mco: warning: dropped {why}");
            }
        }
    }
    if args.table {
        let _ = stdout.write_all(crate::table::events_table(&tabled).as_bytes());
    }
    let mut code = 0;
    if let Some(callbacks) = &mut callbacks {
        // The commands already started finish; a watch ends when its last callback does.
        callbacks.finish().await;
        if callbacks.failed + callbacks.skipped > 0 {
            printed.err.push_str(&format!(
                "mco: {} callback(s) failed, {} not run\n",
                callbacks.failed, callbacks.skipped
            ));
            code = 2;
        }
    }
    if rejected > 0 {
        printed.err.push_str(&format!(
            "mco: {rejected} event(s) dropped as forged or malformed\n"
        ));
    }
    Ok(code)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mco_spec::event::{Event, Severity};
    use serde_json::json;

    #[test]
    fn since_reads_a_time_ago_or_a_time() {
        let now = 10_000_000;
        assert_eq!(since_millis("30s", now).unwrap(), now - 30_000);
        assert_eq!(since_millis("10m", now).unwrap(), now - 600_000);
        assert_eq!(since_millis("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(since_millis("1d", now).unwrap(), 0);
        assert_eq!(
            since_millis("2026-12-03T10:00:00Z", now).unwrap(),
            1_796_292_000_000
        );
        for bad in ["10 minutes", "yesterday", "5w", ""] {
            assert!(since_millis(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_compare_data_fields_as_text() {
        let conditions = parse_conditions(&["service=httpd".into(), "pid=42".into()]).unwrap();
        assert!(meets(
            &conditions,
            &json!({"service": "httpd", "pid": 42, "x": 1})
        ));
        assert!(!meets(&conditions, &json!({"service": "httpd", "pid": 43})));
        assert!(!meets(&conditions, &json!({"service": "httpd"})));
        assert!(meets(&[], &json!({})));
        assert!(parse_conditions(&["=x".into()]).is_err());
        assert!(parse_conditions(&["novalue".into()]).is_err());
    }

    #[test]
    fn an_event_prints_as_a_line_or_as_json() {
        let received = ReceivedEvent {
            event: Event {
                id: "0".repeat(32),
                kind: "service.state_changed".into(),
                identity: "web1".into(),
                collective: "mco".into(),
                time: 1_796_292_000_123,
                severity: Severity::Info,
                data: json!({"service": "httpd", "state": "running", "pid": 42}),
            },
            sequence: Some(7),
        };
        assert_eq!(
            event_line(&received),
            "2026-12-03T10:00:00.123Z web1 service.state_changed info pid=42 service=httpd state=running"
        );
        let json: Value = serde_json::from_str(&event_json(&received)).unwrap();
        assert_eq!(json["sequence"], 7);
        assert_eq!(json["type"], "service.state_changed");
        let mut hostile = received.clone();
        hostile.event.data = json!({"msg": "\u{1b}]0;pwned\u{7}ok\n", "k\u{1b}": 1});
        let line = event_line(&hostile);
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{7}'),
            "{line:?}"
        );
        assert!(line.contains("msg=\\u{1b}]0;pwned\\u{7}ok\n"), "{line:?}");
    }
}
