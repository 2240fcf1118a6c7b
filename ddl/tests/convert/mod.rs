//! `mco_ddl::ruby`: MCollective's Ruby DDLs converted to Choria's JSON. mco's own Ruby DDLs
//! (`tests/data/ruby/`) exercise the subset; MCollective's own DDLs, as Debian ships them,
//! are the real corpus: rpcutil converts and is compared with Choria's rpcutil.json, and every
//! plugin DDL parses and is refused as not an agent's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mco_ddl::ruby::{convert, ConvertErrorKind};
use mco_ddl::AgentDdl;

use super::data_dir;

fn ruby(name: &str) -> String {
    let path = data_dir().join("ruby").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `json` as `<name>.json` in a scratch directory, then lints and loads it as mco does.
fn lint_and_load(json: &str, name: &str) -> AgentDdl {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.json"));
    std::fs::write(&path, json).unwrap();
    assert_eq!(mco_ddl::load::lint(&path).unwrap(), vec![], "{json}");
    let loaded = AgentDdl::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings, vec![], "{name}");
    loaded.ddl
}

#[test]
fn a_ruby_ddl_of_the_subset_converts_to_a_ddl_that_lints_clean() {
    let converted = convert(&ruby("servicectl.ddl")).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = converted.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["line 11, column 1: `requires` dropped: Choria's DDLs do not declare the MCollective version they need"]
    );
    let ddl = lint_and_load(&converted.json, "servicectl");
    assert_eq!(ddl, converted.ddl);
    // The same checks on the text, as `mco plugin convert` runs them before writing a file.
    assert_eq!(
        mco_ddl::load::lint_json(&converted.json, "-", None).unwrap(),
        vec![]
    );
    let misnamed = mco_ddl::load::lint_json(&converted.json, "-", Some("other")).unwrap();
    assert_eq!(misnamed.len(), 1);
    assert_eq!(misnamed[0].kind, mco_ddl::FindingKind::NameMismatch);
    assert_eq!(
        ddl.action_names().collect::<Vec<_>>(),
        ["status", "restart", "count"]
    );
    let restart = ddl.action("restart").unwrap();
    assert_eq!(
        restart.input["signal"].list.as_deref(),
        Some(&["TERM".to_string(), "KILL".into(), "HUP".into()][..])
    );
    assert_eq!(
        restart.input["service"].validation.as_deref(),
        Some("shellsafe")
    );
    let count = ddl.action("count").unwrap();
    assert_eq!(
        count.input["pattern"].validation.as_deref(),
        Some(r"\A[\w./-]+\z")
    );
    assert_eq!(count.input["limit"].default, Some(1000.into()));
    assert_eq!(count.aggregate[1].args[1]["format"], "%d processes");
    // The validations work as the agent's author meant them.
    let mut ok = serde_json::Map::from_iter([("service".to_string(), "getty@tty1".into())]);
    ddl.action("status")
        .unwrap()
        .validate_inputs(&mut ok)
        .unwrap();
    let mut bad = serde_json::Map::from_iter([("service".to_string(), "a;b".into())]);
    assert!(restart.validate_inputs(&mut bad).is_err());
}

#[test]
fn a_ruby_ddl_outside_the_subset_is_refused_at_its_line() {
    let e = convert(&ruby("interpolated.ddl")).unwrap_err();
    assert_eq!(e.kind, ConvertErrorKind::OutsideSubset);
    assert_eq!(
        e.to_string(),
        "line 13, column 35: string interpolation (`#{...}`) is outside the DDL subset mco converts"
    );
}

/// MCollective's DDLs as Debian's mcollective-common ships them, fetched by
/// `scripts/install-deps.sh --agents` (never copied into the repository).
fn mcollective_ddls() -> PathBuf {
    let dir = match std::env::var_os("MCO_MCOLLECTIVE_DDL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_default();
            cache.join("mco/mcollective-ddl")
        }
    };
    assert!(
        dir.join("agent/rpcutil.ddl").is_file(),
        "MCollective's Ruby DDLs are not in {}: run scripts/install-deps.sh --agents \
         (it downloads Debian's mcollective-common), or set MCO_MCOLLECTIVE_DDL_DIR",
        dir.display()
    );
    dir
}

fn ddl_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(ddl_files(&path));
        } else if path.extension().is_some_and(|e| e == "ddl") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn differ(found: &mut Vec<String>, place: String, ours: String, choria: String) {
    if ours != choria {
        found.push(format!("{place}: {ours} | {choria}"));
    }
}

/// The differences between two actions' inputs (or outputs), field by field.
fn compare_named<T>(
    found: &mut Vec<String>,
    place: &str,
    ours: &BTreeMap<String, T>,
    choria: &BTreeMap<String, T>,
    fields: impl Fn(&T) -> Vec<(&'static str, String)>,
) {
    let names: BTreeSet<&String> = ours.keys().chain(choria.keys()).collect();
    for name in names {
        let place = format!("{place}.{name}");
        match (ours.get(name), choria.get(name)) {
            (Some(x), Some(y)) => {
                for ((field, x), (_, y)) in fields(x).into_iter().zip(fields(y)) {
                    differ(found, format!("{place}.{field}"), x, y);
                }
            }
            (x, _) => found.push(format!(
                "{place}: only in {}",
                if x.is_some() { "ours" } else { "Choria's" }
            )),
        }
    }
}

/// Every difference between two DDLs, one line each, by action, input and output.
fn differences(ours: &AgentDdl, choria: &AgentDdl) -> Vec<String> {
    let mut found = Vec::new();
    let (m, c) = (&ours.metadata, &choria.metadata);
    for (field, a, b) in [
        ("description", &m.description, &c.description),
        ("author", &m.author, &c.author),
        ("license", &m.license, &c.license),
        ("version", &m.version, &c.version),
        ("url", &m.url, &c.url),
        ("timeout", &m.timeout.to_string(), &c.timeout.to_string()),
    ] {
        differ(
            &mut found,
            format!("metadata.{field}"),
            a.clone(),
            b.clone(),
        );
    }
    differ(
        &mut found,
        "action order".into(),
        ours.action_names().collect::<Vec<_>>().join(" "),
        choria.action_names().collect::<Vec<_>>().join(" "),
    );
    let names: BTreeSet<&str> = ours.action_names().chain(choria.action_names()).collect();
    for name in names {
        let (Some(a), Some(b)) = (ours.action(name), choria.action(name)) else {
            found.push(format!("{name}: only in one"));
            continue;
        };
        differ(
            &mut found,
            format!("{name}.description"),
            a.description.clone(),
            b.description.clone(),
        );
        differ(
            &mut found,
            format!("{name}.display"),
            format!("{:?}", a.display),
            format!("{:?}", b.display),
        );
        differ(
            &mut found,
            format!("{name}.aggregate"),
            format!("{:?}", a.aggregate),
            format!("{:?}", b.aggregate),
        );
        compare_named(
            &mut found,
            &format!("{name}.input"),
            &a.input,
            &b.input,
            |i| {
                vec![
                    ("prompt", i.prompt.clone()),
                    ("description", i.description.clone()),
                    ("type", i.kind.as_str().to_string()),
                    ("optional", i.optional.to_string()),
                    ("default", format!("{:?}", i.default)),
                    ("validation", format!("{:?}", i.validation)),
                    ("maxlength", format!("{:?}", i.maxlength)),
                    ("list", format!("{:?}", i.list)),
                ]
            },
        );
        compare_named(
            &mut found,
            &format!("{name}.output"),
            &a.output,
            &b.output,
            |o| {
                vec![
                    ("description", o.description.clone()),
                    ("display_as", o.display_as.clone()),
                    ("default", format!("{:?}", o.default)),
                    ("type", format!("{:?}", o.kind)),
                ]
            },
        );
    }
    found
}

/// The outputs to which Choria's rpcutil.json gives a `type`: MCollective 2.12's rpcutil.ddl
/// declares none (output types came later), so each converts without one.
const OUTPUT_TYPES_CHORIA_ADDED: &[(&str, &str, &str)] = &[
    ("agent_inventory", "agents", "Array"),
    ("collective_info", "collectives", "Array"),
    ("collective_info", "main_collective", "String"),
    ("daemon_stats", "agents", "Array"),
    ("daemon_stats", "configfile", "String"),
    ("daemon_stats", "filtered", "Integer"),
    ("daemon_stats", "passed", "Integer"),
    ("daemon_stats", "pid", "Integer"),
    ("daemon_stats", "replies", "Integer"),
    ("daemon_stats", "starttime", "Integer"),
    ("daemon_stats", "threads", "Array"),
    ("daemon_stats", "times", "Hash"),
    ("daemon_stats", "total", "Integer"),
    ("daemon_stats", "ttlexpired", "Integer"),
    ("daemon_stats", "unvalidated", "Integer"),
    ("daemon_stats", "validated", "Integer"),
    ("daemon_stats", "version", "String"),
    ("get_config_item", "item", "String"),
    ("get_fact", "fact", "String"),
    ("get_facts", "values", "Hash"),
    ("inventory", "agents", "Array"),
    ("inventory", "classes", "Array"),
    ("inventory", "collectives", "Array"),
    ("inventory", "data_plugins", "Array"),
    ("inventory", "facts", "Hash"),
    ("inventory", "main_collective", "String"),
    ("inventory", "version", "String"),
    ("ping", "pong", "Number"),
];

/// Everything else that differs, each a genuine difference between the two files: Choria's
/// rpcutil.json is not a conversion of this DDL but Choria's own agent, edited by hand since.
/// Each line is "where: converted | Choria's".
const CHORIA_EDITS: &[&str] = &[
    // Choria's rpcutil is its own agent, with its own metadata; Choria's schema wants an SPDX
    // licence and its server answers rpcutil faster than MCollective's 10 s.
    "metadata.description: General helpful actions that expose stats and internals to SimpleRPC clients | Utility actions that expose information about the state of the running Server",
    "metadata.license: Apache License, Version 2.0 | Apache-2.0",
    "metadata.version: 1.0 | 0.29.4",
    "metadata.url: https://docs.puppetlabs.com/mcollective/ | https://choria.io/",
    "metadata.timeout: 10 | 2",
    // The conversion keeps the DDL's order; Choria's generator sorts actions by name.
    "action order: collective_info inventory get_fact get_facts daemon_stats agent_inventory get_config_item get_data ping | agent_inventory collective_info daemon_stats get_config_item get_data get_fact get_facts inventory ping",
    // Descriptions Choria reworded (and "MCollective" became "Choria Server").
    "agent_inventory.description: Inventory of all agents on the server | Inventory of all agents on the server including versions, licenses and more",
    "collective_info.description: Info about the main and sub collectives | Info about the main and sub collectives that the server belongs to",
    // Choria's server publishes lifecycle events, which MCollective's had not.
    "daemon_stats.output.events: only in Choria's",
    "daemon_stats.output.filtered.description: Didn't pass filter checks | Count of message that didn't pass filter checks",
    "daemon_stats.output.passed.description: Passed filter checks | Count of messages that passed filter checks",
    "daemon_stats.output.pid.description: Process ID of the daemon | Process ID of the Choria Server",
    "daemon_stats.output.replies.description: Replies sent back to clients | Count of replies sent back to clients",
    "daemon_stats.output.starttime.description: Time the server started | Time the Choria Server started in unix seconds",
    "daemon_stats.output.threads.description: List of threads active in the daemon | List of threads active in the Choria Server",
    "daemon_stats.output.times.description: Processor time consumed by the daemon | Processor time consumed by the Choria Server",
    "daemon_stats.output.total.description: Total messages received | Count of messages received by the Choria Server",
    "daemon_stats.output.ttlexpired.description: Messages that did pass TTL checks | Count of messages that did pass TTL checks",
    "daemon_stats.output.unvalidated.description: Messages that failed security validation | Count of messages that failed security validation",
    "daemon_stats.output.validated.description: Messages that passed security validation | Count of messages that passed security validation",
    "daemon_stats.output.version.description: MCollective Version | Choria Server Version",
    // Choria accepts longer configuration item names and any fact name (nested facts such
    // as os.family have dots; Choria's facts may have more characters than \w, - and .).
    "get_config_item.input.item.maxlength: Some(50) | Some(120)",
    "get_fact.input.fact.validation: Some(\"^[\\\\w\\\\-\\\\.]+$\") | Some(\".+\")",
    "get_fact.input.fact.maxlength: Some(40) | Some(512)",
    "get_facts.input.facts.prompt: Comma-separated list of facts | Comma-separated list of facts to retrieve",
    // Choria's inventory also reports autonomous agents (machines) and upgradability.
    "inventory.output.machines: only in Choria's",
    "inventory.output.upgradable: only in Choria's",
    "inventory.output.version.description: MCollective Version | Choria Server Version",
    "ping.output.pong.description: The local timestamp | The local Unix timestamp",
];

#[test]
fn mcollective_rpcutil_converts_to_choria_rpcutil_but_for_choria_s_edits() {
    let dir = mcollective_ddls();
    let text = std::fs::read_to_string(dir.join("agent/rpcutil.ddl")).unwrap();
    let converted = convert(&text).unwrap_or_else(|e| panic!("rpcutil.ddl: {e}"));
    assert_eq!(converted.warnings, vec![]);
    let ours = lint_and_load(&converted.json, "rpcutil");
    let choria = super::corpus("rpcutil");
    let (types, edits): (Vec<String>, Vec<String>) = differences(&ours, &choria)
        .into_iter()
        .partition(|line| line.contains(".type: None | Some("));
    let types_added: Vec<String> = OUTPUT_TYPES_CHORIA_ADDED
        .iter()
        .map(|(action, output, kind)| format!("{action}.output.{output}.type: None | Some({kind})"))
        .collect();
    assert_eq!(types, types_added);
    // Everything else is the same: the actions, their display rules and aggregates, and
    // every input's type, optionality, default and the other validations.
    assert_eq!(
        edits, CHORIA_EDITS,
        "a new difference: a change to the conversion, or to a DDL"
    );
}

/// Every other DDL MCollective ships is a plugin's, and each is refused as not an agent's,
/// by what it declares (`dataquery`, `discovery`, no actions); data/agent_data.ddl runs a loop
/// outside the subset and is still recognised, by its `dataquery` line.
#[test]
fn mcollective_plugin_ddls_are_refused_as_not_agents() {
    let dir = mcollective_ddls();
    let files = ddl_files(&dir);
    assert!(files.len() > 10, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let kind = file
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match (kind, convert(&text)) {
            ("agent", Ok(_)) => {}
            (_, Err(e)) if kind != "agent" && e.kind == ConvertErrorKind::NotAnAgent => {
                assert!(
                    e.reason.ends_with("only agent DDLs convert"),
                    "{}: {e}",
                    file.display()
                );
            }
            (_, other) => panic!("{}: {other:?}", file.display()),
        }
    }
}

/// Whatever a file holds, conversion answers: every prefix of a DDL, and the DDL with each
/// character left out, converts or is refused at a place inside the file; nothing panics.
#[test]
fn a_damaged_ddl_is_refused_at_a_place_in_it_and_never_panics() {
    let text = ruby("servicectl.ddl");
    let chars: Vec<char> = text.chars().collect();
    let lines = text.lines().count() + 1;
    for end in 0..chars.len() {
        let prefix: String = chars[..end].iter().collect();
        let without: String = chars[..end].iter().chain(&chars[end + 1..]).collect();
        for damaged in [prefix, without] {
            if let Err(e) = convert(&damaged) {
                assert!(
                    (1..=lines).contains(&e.line) && e.column >= 1,
                    "{e} for {damaged:?}"
                );
            }
        }
    }
}
