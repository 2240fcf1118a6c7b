//! Puppet's state and commands for the puppet agent: where Puppet keeps its files (asked
//! from `puppet config print`), `last_run_summary.yaml` and the logs of
//! `last_run_report.yaml`, the disable lock in Puppet's own format, the `status` outputs, and
//! the argv of `runonce` (`puppet agent --onetime` or `puppet apply MANIFEST`) and of
//! `resource`.
//!
//! Pure functions over file contents and options; the agent does the I/O, the locking and
//! the background runs.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

/// The files through which Puppet tells its state, as Puppet's own settings name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuppetPaths {
    /// `lastrunfile`: `last_run_summary.yaml`.
    pub lastrunfile: PathBuf,
    /// `lastrunreport`: `last_run_report.yaml`.
    pub lastrunreport: PathBuf,
    /// `agent_disabled_lockfile`: present while Puppet is disabled.
    pub agent_disabled_lockfile: PathBuf,
    /// `agent_catalog_run_lockfile`: holds the pid of an agent applying a catalog.
    pub agent_catalog_run_lockfile: PathBuf,
    /// `pidfile` of the agent daemon.
    pub pidfile: PathBuf,
    /// `resourcefile`: the resources the last agent run managed, one `type[title]` a line.
    pub resourcefile: PathBuf,
}

/// The settings [`PuppetPaths`] is made of, in the order `puppet config print` is asked.
const PATH_SETTINGS: [&str; 6] = [
    "lastrunfile",
    "lastrunreport",
    "agent_disabled_lockfile",
    "agent_catalog_run_lockfile",
    "pidfile",
    "resourcefile",
];

/// The argv that prints [`PuppetPaths`] as JSON, as the agent run mode sees them with the
/// configured extra arguments (`--confdir`, `--vardir`...).
pub fn config_print_argv(command: &str, args: &[String]) -> Vec<String> {
    let mut argv = vec![command.to_string(), "config".into(), "print".into()];
    argv.extend(args.iter().cloned());
    argv.extend(["--render-as", "json", "--section", "agent"].map(String::from));
    argv.extend(PATH_SETTINGS.map(String::from));
    argv
}

/// Parses the output of [`config_print_argv`].
pub fn parse_config_print(stdout: &str) -> Result<PuppetPaths, String> {
    let doc: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("puppet config print did not print JSON: {e}"))?;
    let path = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| format!("puppet config print gave no {name}"))
    };
    Ok(PuppetPaths {
        lastrunfile: path("lastrunfile")?,
        lastrunreport: path("lastrunreport")?,
        agent_disabled_lockfile: path("agent_disabled_lockfile")?,
        agent_catalog_run_lockfile: path("agent_catalog_run_lockfile")?,
        pidfile: path("pidfile")?,
        resourcefile: path("resourcefile")?,
    })
}

/// Parses YAML that Puppet wrote (Ruby object tags included) into JSON.
pub fn parse_puppet_yaml(text: &str, what: &str) -> Result<Value, String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("{what}: {e}"))?;
    serde_json::to_value(untag(doc)).map_err(|e| format!("{what}: {e}"))
}

/// Drops YAML tags (`!ruby/object:Puppet::Transaction::Report`), keeping what they tag.
fn untag(value: serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Tagged(tagged) => untag(tagged.value),
        Y::Sequence(items) => Y::Sequence(items.into_iter().map(untag).collect()),
        Y::Mapping(map) => Y::Mapping(map.into_iter().map(|(k, v)| (untag(k), untag(v))).collect()),
        other => other,
    }
}

/// The puppet DDL's `last_run_summary` outputs from `last_run_summary.yaml`, with the
/// resource counts per type (see [`type_distribution`]).
pub fn last_run_summary(
    summary: &Value,
    type_distribution: Map<String, Value>,
    now_secs: u64,
) -> Map<String, Value> {
    let figure = |section: &str, key: &str| {
        summary
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(Value::as_f64)
    };
    // A summary is written whole, so a figure it lacks is zero, as Puppet's own tools read it.
    let count = |key: &str| json!(figure("resources", key).unwrap_or(0.0) as i64);
    let mut out = Map::new();
    out.insert("out_of_sync_resources".into(), count("out_of_sync"));
    out.insert("failed_resources".into(), count("failed"));
    out.insert("corrected_resources".into(), count("corrective_change"));
    out.insert("changed_resources".into(), count("changed"));
    out.insert("total_resources".into(), count("total"));
    out.insert(
        "config_retrieval_time".into(),
        json!(figure("time", "config_retrieval").unwrap_or(0.0)),
    );
    out.insert(
        "total_time".into(),
        json!(figure("time", "total").unwrap_or(0.0)),
    );
    let last_run = figure("time", "last_run").map_or(0, |v| v as u64);
    out.insert("lastrun".into(), json!(last_run));
    out.insert("since_lastrun".into(), since(last_run, now_secs));
    let config_version = match summary.get("version").and_then(|v| v.get("config")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    out.insert("config_version".into(), json!(config_version));
    out.insert("type_distribution".into(), Value::Object(type_distribution));
    out.insert("summary".into(), summary.clone());
    out
}

fn since(last_run: u64, now_secs: u64) -> Value {
    if last_run > 0 {
        json!(now_secs.saturating_sub(last_run))
    } else {
        json!("Unknown")
    }
}

/// The resources a run managed, as `type[title]` with a lower-case type: from Puppet's
/// `resources.txt` when it wrote one (agent runs), else from the report's resource statuses
/// (`puppet apply` writes no resources.txt).
pub fn managed_resources(resources_txt: Option<&str>, report: Option<&Value>) -> Vec<String> {
    if let Some(text) = resources_txt {
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    }
    report
        .and_then(|r| r.get("resource_statuses"))
        .and_then(Value::as_object)
        .map(|statuses| {
            statuses
                .keys()
                .filter_map(|key| {
                    let (kind, rest) = key.split_once('[')?;
                    Some(format!("{}[{rest}", kind.to_ascii_lowercase()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many resources of each type were managed (`File` → 3), types capitalised per `::`
/// segment as Puppet writes them.
pub fn type_distribution(managed: &[String]) -> Map<String, Value> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for resource in managed {
        let kind = resource.split('[').next().unwrap_or_default();
        *counts.entry(capitalise_type(kind)).or_default() += 1;
    }
    counts.into_iter().map(|(k, v)| (k, json!(v))).collect()
}

/// `foo::bar` → `Foo::Bar`, as Puppet names a resource type in references.
pub fn capitalise_type(kind: &str) -> String {
    kind.split("::")
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("::")
}

/// Most `puppet.resource_changed` events one run says; a run that changes more says how many
/// it left out in `puppet.run_finished`.
pub const MAX_RESOURCE_EVENTS: usize = 500;

/// What a finished run says: a `puppet.resource_changed` for each resource the report shows
/// changed (up to [`MAX_RESOURCE_EVENTS`]), then `puppet.run_finished` with the run's status
/// and the summary's metrics. From the parsed `last_run_report.yaml` and
/// `last_run_summary.yaml` (either may be missing: a run that failed early writes no report).
pub fn run_events(
    report: Option<&Value>,
    summary: Option<&Value>,
    exit_code: Option<i32>,
) -> Vec<(&'static str, Value)> {
    let mut events = Vec::new();
    let mut changed: Vec<(&String, &Value)> = report
        .and_then(|r| r.get("resource_statuses"))
        .and_then(Value::as_object)
        .map(|statuses| {
            statuses
                .iter()
                .filter(|(_, status)| status.get("changed").and_then(Value::as_bool) == Some(true))
                .collect()
        })
        .unwrap_or_default();
    changed.sort_by(|a, b| a.0.cmp(b.0));
    let left_out = changed.len().saturating_sub(MAX_RESOURCE_EVENTS);
    for (reference, status) in changed.iter().take(MAX_RESOURCE_EVENTS) {
        let text = |key: &str| status.get(key).and_then(Value::as_str).unwrap_or_default();
        let changes: Vec<Value> = status
            .get("events")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|e| {
                        let field = |key: &str| e.get(key).cloned().unwrap_or(Value::Null);
                        json!({
                            "property": field("property"),
                            "previous_value": field("previous_value"),
                            "desired_value": field("desired_value"),
                            "status": field("status"),
                            "message": field("message"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        events.push((
            "puppet.resource_changed",
            json!({
                "resource": reference,
                "type": text("resource_type"),
                "title": text("title"),
                "changes": changes,
            }),
        ));
    }
    let figures = summary.map(|s| last_run_summary(s, Map::new(), 0));
    let figure = |key: &str| {
        figures
            .as_ref()
            .and_then(|f| f.get(key).cloned())
            .unwrap_or(json!(0))
    };
    let status = report
        .and_then(|r| r.get("status"))
        .and_then(Value::as_str)
        .unwrap_or(if exit_code == Some(0) {
            "unchanged"
        } else {
            "failed"
        });
    events.push((
        "puppet.run_finished",
        json!({
            "status": status,
            "exit_code": exit_code,
            "changed_resources": figure("changed_resources"),
            "failed_resources": figure("failed_resources"),
            "out_of_sync_resources": figure("out_of_sync_resources"),
            "total_resources": figure("total_resources"),
            "config_retrieval_time": figure("config_retrieval_time"),
            "total_time": figure("total_time"),
            "config_version": figure("config_version"),
            "resource_events_left_out": left_out,
        }),
    ));
    events
}

/// The log lines of a parsed `last_run_report.yaml`: `{time_utc, time, level, source, msg}`
/// each, as Choria's puppet agent gives them.
pub fn report_logs(report: &Value) -> Vec<Value> {
    report
        .get("logs")
        .and_then(Value::as_array)
        .map(|logs| {
            logs.iter()
                .map(|log| {
                    let text = |key: &str| log.get(key).and_then(Value::as_str).unwrap_or_default();
                    let time = parse_time(text("time")).unwrap_or(0);
                    json!({
                        "time_utc": time,
                        "time": time,
                        "level": text("level").trim_start_matches(':'),
                        "source": text("source"),
                        "msg": text("message").trim_end(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Unix seconds of a Puppet timestamp: `2026-11-23T13:34:03.870623402+00:00`, also with a
/// space before the time or the offset, or `Z`.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let number = |s: Option<&str>| s?.parse::<i64>().ok();
    let year = number(text.get(0..4))?;
    let month = number(text.get(5..7))?;
    let day = number(text.get(8..10))?;
    if !matches!(text.get(10..11), Some("T" | " ")) {
        return None;
    }
    let hour = number(text.get(11..13))?;
    let minute = number(text.get(14..16))?;
    let second = number(text.get(17..19))?;
    let mut rest = text.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let rest = rest.trim_start();
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            let hours = number(digits.get(0..2))?;
            let minutes = number(digits.get(2..4)).unwrap_or(0);
            sign * (hours * 3600 + minutes * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `2026-11-23 13:34 UTC` for Unix seconds, for messages people read.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// The message in Puppet's `agent_disabled.lock` (JSON `{"disabled_message": ...}`); empty
/// when the lock has none or is not JSON (Puppet 2 wrote empty locks).
pub fn disable_message(lock_contents: &str) -> String {
    serde_json::from_str::<Value>(lock_contents)
        .ok()
        .and_then(|v| {
            v.get("disabled_message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The lock file Puppet itself writes for `puppet agent --disable MESSAGE`.
pub fn disable_lock_contents(message: &str) -> String {
    json!({ "disabled_message": message }).to_string()
}

/// What the agent observed about Puppet on this node.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// A catalog is being applied (by a run this agent started, or by the Puppet agent).
    pub applying: bool,
    /// `agent_disabled.lock` exists; its message.
    pub disabled: Option<String>,
    /// The Puppet agent daemon is running.
    pub daemon_present: bool,
    /// Unix seconds of the last run, 0 if never.
    pub lastrun: u64,
}

/// The puppet DDL's `status` outputs from observations. Disabled wins over applying (a run
/// may still finish after Puppet was disabled), as in Choria's puppet agent.
pub fn status(observed: &Observed, now_secs: u64) -> Map<String, Value> {
    let enabled = observed.disabled.is_none();
    let idling = observed.daemon_present && !observed.applying;
    let status = if !enabled {
        "disabled"
    } else if observed.applying {
        "applying a catalog"
    } else if idling {
        "idling"
    } else {
        "stopped"
    };
    let last = if observed.lastrun > 0 {
        format!(
            "last completed run {} ago",
            seconds_to_human(now_secs.saturating_sub(observed.lastrun))
        )
    } else {
        "no completed run yet".to_string()
    };
    let mut out = Map::new();
    out.insert("applying".into(), json!(observed.applying));
    out.insert("idling".into(), json!(idling));
    out.insert("enabled".into(), json!(enabled));
    out.insert("daemon_present".into(), json!(observed.daemon_present));
    out.insert("lastrun".into(), json!(observed.lastrun));
    out.insert("since_lastrun".into(), since(observed.lastrun, now_secs));
    out.insert("status".into(), json!(status));
    out.insert(
        "disable_message".into(),
        json!(observed.disabled.clone().unwrap_or_default()),
    );
    out.insert(
        "message".into(),
        json!(format!("Currently {status}; {last}")),
    );
    out
}

/// `3725` → `1 hours 2 minutes 05 seconds`, as Choria's puppet agent words it.
pub fn seconds_to_human(seconds: u64) -> String {
    let days = seconds / 86_400;
    let hours = seconds % 86_400 / 3600;
    let minutes = seconds % 3600 / 60;
    let seconds = seconds % 60;
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds:02} seconds"),
        (0, 0, _) => format!("{minutes} minutes {seconds:02} seconds"),
        (0, _, _) => format!("{hours} hours {minutes} minutes {seconds:02} seconds"),
        (1, _, _) => format!("1 day {hours} hours {minutes} minutes {seconds:02} seconds"),
        _ => format!("{days} days {hours} hours {minutes} minutes {seconds:02} seconds"),
    }
}

/// How runonce runs Puppet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    /// `puppet agent --onetime` against a Puppet server.
    Agent,
    /// `puppet apply MANIFEST` for fleets without a server.
    Apply {
        /// The manifest (file or directory) to apply.
        manifest: PathBuf,
    },
}

/// `runonce` options, already validated by the DDL, with splay already decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--noop` or `--no-noop`.
    pub noop: Option<bool>,
    /// Only these tags (comma separated).
    pub tags: Option<String>,
    /// Skip these tags.
    pub skip_tags: Option<String>,
    /// The environment.
    pub environment: Option<String>,
    /// The Puppet server, `host` or `host:port` (agent mode).
    pub server: Option<String>,
    /// `--splay` or `--no-splay` (agent mode; the agent splays apply runs itself).
    pub splay: Option<bool>,
    /// The longest splay, seconds.
    pub splaylimit: Option<u64>,
    /// `--use_cached_catalog` or `--no-use_cached_catalog` (agent mode).
    pub use_cached_catalog: Option<bool>,
}

/// The argv of a run: `command` with the configured `args` and the run's options. Options
/// that mean nothing to `puppet apply` (a server, the cached catalog, splay) are refused
/// there rather than dropped.
pub fn runonce_argv(
    command: &str,
    args: &[String],
    mode: &RunMode,
    options: &RunOptions,
) -> Result<Vec<String>, String> {
    let mut argv = vec![command.to_string()];
    match mode {
        RunMode::Agent => {
            argv.push("agent".into());
            argv.extend(args.iter().cloned());
            argv.extend(
                [
                    "--onetime",
                    "--no-daemonize",
                    "--color=false",
                    "--show_diff",
                    "--verbose",
                ]
                .map(String::from),
            );
            match options.splay {
                Some(true) => argv.push("--splay".into()),
                Some(false) => argv.push("--no-splay".into()),
                None => {}
            }
            if let Some(limit) = options.splaylimit {
                argv.push(format!("--splaylimit={limit}"));
            }
            if let Some(server) = &options.server {
                match server.rsplit_once(':') {
                    Some((host, port)) => {
                        argv.push(format!("--server={host}"));
                        argv.push(format!("--serverport={port}"));
                    }
                    None => argv.push(format!("--server={server}")),
                }
            }
            match options.use_cached_catalog {
                Some(true) => argv.push("--use_cached_catalog".into()),
                Some(false) => argv.push("--no-use_cached_catalog".into()),
                None => {}
            }
        }
        RunMode::Apply { .. } => {
            let unsupported = [
                ("server", options.server.is_some()),
                ("use_cached_catalog", options.use_cached_catalog.is_some()),
                (
                    "splay",
                    options.splay.is_some() || options.splaylimit.is_some(),
                ),
            ];
            if let Some((name, _)) = unsupported.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{name} cannot be used when Puppet runs in apply mode"
                ));
            }
            argv.push("apply".into());
            argv.extend(args.iter().cloned());
            argv.extend(["--color=false", "--show_diff", "--verbose"].map(String::from));
        }
    }
    match options.noop {
        Some(true) => argv.push("--noop".into()),
        Some(false) => argv.push("--no-noop".into()),
        None => {}
    }
    if let Some(tags) = &options.tags {
        argv.push(format!("--tags={tags}"));
    }
    if let Some(skip) = &options.skip_tags {
        argv.push(format!("--skip_tags={skip}"));
    }
    if let Some(env) = &options.environment {
        argv.push(format!("--environment={env}"));
    }
    if let RunMode::Apply { manifest } = mode {
        argv.push(manifest.display().to_string());
    }
    Ok(argv)
}

/// Checks a resource type for the `resource` action: a Puppet type name (`file`,
/// `apache::vhost`), lower case.
pub fn check_resource_type(kind: &str) -> Result<(), String> {
    let segment_ok = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if kind.split("::").all(segment_ok) {
        Ok(())
    } else {
        Err(format!("{kind:?} is not a Puppet resource type name"))
    }
}

/// The manifest declaring resource `kind[title]` with no attributes. The title goes in a
/// single-quoted string, where Puppet interprets only `\\` and `\'`, so escaping those two
/// makes any title a plain string: nothing in it is evaluated.
pub fn resource_manifest(kind: &str, title: &str) -> String {
    let escaped = title.replace('\\', "\\\\").replace('\'', "\\'");
    format!("{kind} {{ '{escaped}': }}\n")
}

/// The argv that applies [`resource_manifest`] with `puppet apply`, keeping the node's real
/// run state (summary, report, state file, resources list) untouched: those go to `scratch`.
pub fn resource_argv(
    command: &str,
    args: &[String],
    manifest: &str,
    environment: Option<&str>,
    scratch: &std::path::Path,
) -> Vec<String> {
    let mut argv = vec![command.to_string(), "apply".into()];
    argv.extend(args.iter().cloned());
    let in_scratch = |file: &str| scratch.join(file).display().to_string();
    argv.extend([
        "--detailed-exitcodes".into(),
        "--color=false".into(),
        format!("--lastrunfile={}", in_scratch("last_run_summary.yaml")),
        format!("--lastrunreport={}", in_scratch("last_run_report.yaml")),
        format!("--statefile={}", in_scratch("state.yaml")),
        "--reports=none".into(),
        "--no-write_catalog_summary".into(),
    ]);
    if let Some(env) = environment {
        argv.push(format!("--environment={env}"));
    }
    argv.push("-e".into());
    argv.push(manifest.to_string());
    argv
}

/// `puppet apply --detailed-exitcodes`: whether a change was made, or why it failed.
pub fn resource_outcome(exit_code: Option<i32>) -> Result<bool, String> {
    match exit_code {
        Some(0) => Ok(false),
        Some(2) => Ok(true),
        Some(4 | 6) => Err("the resource failed to apply".into()),
        Some(code) => Err(format!("puppet apply failed with exit code {code}")),
        None => Err("puppet apply was killed by a signal".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_says_each_changed_resource_then_its_figures() {
        let report = parse_puppet_yaml(
            "--- !ruby/object:Puppet::Transaction::Report\nstatus: changed\nresource_statuses:\n  File[/tmp/a]:\n    resource: File[/tmp/a]\n    resource_type: File\n    title: /tmp/a\n    changed: true\n    events:\n    - !ruby/object:Puppet::Transaction::Event\n      property: ensure\n      previous_value: !ruby/sym absent\n      desired_value: !ruby/sym file\n      status: success\n      message: defined content\n  Notify[hi]:\n    resource_type: Notify\n    title: hi\n    changed: false\n    events: []\n",
            "report",
        )
        .unwrap();
        let summary = json!({"resources": {"changed": 1, "total": 2, "failed": 0}, "time": {"total": 1.5, "config_retrieval": 0.2}});
        let events = run_events(Some(&report), Some(&summary), Some(2));
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].0, "puppet.resource_changed");
        assert_eq!(events[0].1["resource"], "File[/tmp/a]");
        assert_eq!(events[0].1["type"], "File");
        assert_eq!(events[0].1["changes"][0]["property"], "ensure");
        assert_eq!(events[1].0, "puppet.run_finished");
        assert_eq!(events[1].1["status"], "changed");
        assert_eq!(events[1].1["changed_resources"], 1);
        assert_eq!(events[1].1["total_resources"], 2);
        assert_eq!(events[1].1["total_time"], 1.5);
        // A run that failed before writing its report still says it finished.
        let failed = run_events(None, None, Some(1));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].1["status"], "failed");
    }

    const SUMMARY: &str = "---
version:
  config: 1700000000
  puppet: 7.23.0
resources:
  changed: 1
  corrective_change: 0
  failed: 0
  failed_to_restart: 0
  out_of_sync: 1
  restarted: 0
  scheduled: 0
  skipped: 0
  total: 8
time:
  file: 0.002
  notify: 0.0004
  config_retrieval: 0.25
  total: 0.61
  last_run: 1700000100
changes:
  total: 1
events:
  failure: 0
  success: 1
  total: 1
";

    const REPORT: &str = "--- !ruby/object:Puppet::Transaction::Report
host: vm
time: '2026-11-23T13:34:03.870468069+00:00'
logs:
- level: notice
  message: |
    defined content as '{sha256}5891'
  source: \"/Stage[main]/Main/File[/tmp/pt/managed]/ensure\"
  tags:
  - notice
  time: '2026-11-23T13:34:03.873816626+00:00'
- !ruby/object:Puppet::Util::Log
  level: !ruby/sym err
  message: boom
  source: Puppet
  time: 2023-01-02 03:04:05.5 -01:00
resource_statuses:
  File[/tmp/pt/managed]:
    title: \"/tmp/pt/managed\"
  Apache::Vhost[www]:
    title: www
";

    #[test]
    fn last_run_summary_figures() {
        let summary = parse_puppet_yaml(SUMMARY, "summary").unwrap();
        let s = last_run_summary(&summary, Map::new(), 1700000160);
        assert_eq!(s["changed_resources"], 1);
        assert_eq!(s["total_resources"], 8);
        assert_eq!(s["failed_resources"], 0);
        assert_eq!(s["corrected_resources"], 0);
        assert_eq!(s["config_retrieval_time"], 0.25);
        assert_eq!(s["total_time"], 0.61);
        assert_eq!(s["lastrun"], 1700000100);
        assert_eq!(s["since_lastrun"], 60);
        assert_eq!(s["config_version"], "1700000000");
        assert_eq!(s["summary"]["events"]["success"], 1);
        assert!(parse_puppet_yaml(": : :", "x").is_err());
        let empty = last_run_summary(&parse_puppet_yaml("--- {}\n", "x").unwrap(), Map::new(), 5);
        assert_eq!(empty["since_lastrun"], "Unknown");
        assert_eq!(empty["config_version"], "");
    }

    #[test]
    fn reports_give_logs_and_managed_resources() {
        let report = parse_puppet_yaml(REPORT, "report").unwrap();
        let logs = report_logs(&report);
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0]["level"], "notice");
        assert_eq!(logs[0]["msg"], "defined content as '{sha256}5891'");
        assert_eq!(logs[0]["time"], 1795440843);
        assert_eq!(logs[1]["level"], "err");
        assert_eq!(
            logs[1]["time_utc"],
            parse_time("2023-01-02T04:04:05Z").unwrap()
        );
        let managed = managed_resources(None, Some(&report));
        assert!(
            managed.contains(&"file[/tmp/pt/managed]".to_string()),
            "{managed:?}"
        );
        assert!(managed.contains(&"apache::vhost[www]".to_string()));
        let from_file =
            managed_resources(Some("file[/a]\nfile[/b]\nclass[main]\n\n"), Some(&report));
        assert_eq!(from_file.len(), 3);
        let types = type_distribution(&from_file);
        assert_eq!(Value::Object(types), json!({"Class": 1, "File": 2}));
        assert_eq!(
            Value::Object(type_distribution(&managed)),
            json!({"Apache::Vhost": 1, "File": 1})
        );
        assert!(report_logs(&json!({})).is_empty());
    }

    #[test]
    fn times_parse_in_every_form_puppet_writes() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2000-03-01 00:00:00 +00:00"), Some(951_868_800));
        assert_eq!(
            parse_time("2000-03-01T01:30:00.25+01:30"),
            Some(951_868_800)
        );
        assert_eq!(parse_time("2024-02-29T12:00:00-0200"), Some(1_709_215_200));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_709_215_200), "2024-02-29 14:00 UTC");
        assert_eq!(format_utc(951_868_799), "2000-02-29 23:59 UTC");
        assert_eq!(parse_time("2024-02-29X12:00:00"), None);
    }

    #[test]
    fn status_from_observations() {
        let idle = status(
            &Observed {
                daemon_present: true,
                lastrun: 100,
                ..Default::default()
            },
            3825,
        );
        assert_eq!(idle["status"], "idling");
        assert_eq!(idle["idling"], true);
        assert_eq!(idle["enabled"], true);
        assert_eq!(idle["since_lastrun"], 3725);
        assert_eq!(
            idle["message"],
            "Currently idling; last completed run 1 hours 2 minutes 05 seconds ago"
        );
        let disabled = status(
            &Observed {
                disabled: Some("maintenance".into()),
                applying: true,
                ..Default::default()
            },
            0,
        );
        assert_eq!(disabled["status"], "disabled");
        assert_eq!(disabled["enabled"], false);
        assert_eq!(disabled["applying"], true);
        assert_eq!(disabled["disable_message"], "maintenance");
        assert_eq!(disabled["since_lastrun"], "Unknown");
        assert_eq!(
            status(
                &Observed {
                    applying: true,
                    daemon_present: true,
                    ..Default::default()
                },
                0
            )["status"],
            "applying a catalog"
        );
        let stopped = status(&Observed::default(), 0);
        assert_eq!(stopped["status"], "stopped");
        assert_eq!(
            stopped["message"],
            "Currently stopped; no completed run yet"
        );
        assert_eq!(
            disable_message(&disable_lock_contents("a \"quoted\" reason")),
            "a \"quoted\" reason"
        );
        assert_eq!(disable_message("garbage"), "");
        assert_eq!(seconds_to_human(5), "05 seconds");
        assert_eq!(
            seconds_to_human(86_400 + 61),
            "1 day 0 hours 1 minutes 01 seconds"
        );
        assert_eq!(
            seconds_to_human(3 * 86_400),
            "3 days 0 hours 0 minutes 00 seconds"
        );
    }

    #[test]
    fn runonce_argv_per_mode() {
        let args = vec!["--vardir".to_string(), "/tmp/v".to_string()];
        let opts = RunOptions {
            noop: Some(true),
            tags: Some("a,b".into()),
            environment: Some("prod".into()),
            ..Default::default()
        };
        let apply = RunMode::Apply {
            manifest: "/etc/site.pp".into(),
        };
        assert_eq!(
            runonce_argv("puppet", &args, &apply, &opts).unwrap(),
            [
                "puppet",
                "apply",
                "--vardir",
                "/tmp/v",
                "--color=false",
                "--show_diff",
                "--verbose",
                "--noop",
                "--tags=a,b",
                "--environment=prod",
                "/etc/site.pp"
            ]
        );
        let refused = runonce_argv(
            "puppet",
            &[],
            &apply,
            &RunOptions {
                server: Some("p".into()),
                ..Default::default()
            },
        );
        assert!(refused.unwrap_err().contains("server cannot be used"));
        let agent = runonce_argv(
            "/opt/puppet",
            &[],
            &RunMode::Agent,
            &RunOptions {
                splay: Some(false),
                server: Some("p.example:8141".into()),
                use_cached_catalog: Some(false),
                noop: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(agent[..3], ["/opt/puppet", "agent", "--onetime"]);
        for flag in [
            "--no-splay",
            "--server=p.example",
            "--serverport=8141",
            "--no-use_cached_catalog",
            "--no-noop",
        ] {
            assert!(agent.contains(&flag.to_string()), "{flag} in {agent:?}");
        }
        let splay = runonce_argv(
            "puppet",
            &[],
            &RunMode::Agent,
            &RunOptions {
                splay: Some(true),
                splaylimit: Some(30),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(splay.contains(&"--splay".to_string()));
        assert!(splay.contains(&"--splaylimit=30".to_string()));
    }

    #[test]
    fn resources_are_declared_without_evaluating_their_titles() {
        assert!(check_resource_type("file").is_ok());
        assert!(check_resource_type("apache::vhost").is_ok());
        for bad in ["File", "file{", "", "a::", "exec; x", "1file"] {
            assert!(check_resource_type(bad).is_err(), "{bad:?}");
        }
        assert_eq!(resource_manifest("notify", "hi"), "notify { 'hi': }\n");
        assert_eq!(
            resource_manifest("notify", "it's ${x} \\ done"),
            "notify { 'it\\'s ${x} \\\\ done': }\n"
        );
        let scratch = std::path::Path::new("/tmp/s");
        let argv = resource_argv("puppet", &[], "notify { 'x': }\n", Some("dev"), scratch);
        assert_eq!(argv[..3], ["puppet", "apply", "--detailed-exitcodes"]);
        assert!(argv.contains(&"--lastrunfile=/tmp/s/last_run_summary.yaml".to_string()));
        assert!(argv.contains(&"--environment=dev".to_string()));
        assert_eq!(argv[argv.len() - 2..], ["-e", "notify { 'x': }\n"]);
        assert_eq!(resource_outcome(Some(0)), Ok(false));
        assert_eq!(resource_outcome(Some(2)), Ok(true));
        assert!(resource_outcome(Some(4)).is_err());
        assert!(resource_outcome(Some(1)).is_err());
        assert_eq!(capitalise_type("apache::vhost"), "Apache::Vhost");
    }

    #[test]
    fn paths_come_from_puppet_config_print() {
        let argv = config_print_argv("puppet", &["--vardir".into(), "/v".into()]);
        assert_eq!(argv[..5], ["puppet", "config", "print", "--vardir", "/v"]);
        assert!(argv.contains(&"agent_disabled_lockfile".to_string()));
        let printed = r#"{"agent_catalog_run_lockfile":"/v/state/agent_catalog_run.lock","agent_disabled_lockfile":"/v/state/agent_disabled.lock","lastrunfile":"/p/last_run_summary.yaml","lastrunreport":"/v/state/last_run_report.yaml","pidfile":"/r/agent.pid","resourcefile":"/v/state/resources.txt"}"#;
        let paths = parse_config_print(printed).unwrap();
        assert_eq!(paths.pidfile, PathBuf::from("/r/agent.pid"));
        assert_eq!(
            paths.agent_disabled_lockfile,
            PathBuf::from("/v/state/agent_disabled.lock")
        );
        assert!(parse_config_print("Error: no").is_err());
        assert!(parse_config_print("{}")
            .unwrap_err()
            .contains("lastrunfile"));
    }
}
