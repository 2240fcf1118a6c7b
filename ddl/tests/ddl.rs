//! The ddl crate's integration tests: the real DDLs of the compatibility corpus load
//! unmodified and drive validation, conversion, output defaults and aggregates; broken DDLs
//! are refused with messages that name the file, the action and the field.

use std::path::PathBuf;

use mco_ddl::{AgentDdl, Aggregator, Display, InputErrorKind};
use mco_spec::StatusCode;
use serde_json::{json, Map, Value};

mod convert;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn corpus(name: &str) -> AgentDdl {
    let path = data_dir().join(format!("{name}.json"));
    let loaded = AgentDdl::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
    assert_eq!(
        mco_ddl::load::lint(&path).unwrap(),
        vec![],
        "{name} lints clean"
    );
    loaded.ddl
}

#[test]
fn the_corpus_loads_unmodified() {
    for (name, actions) in [
        ("rpcutil", 9),
        ("service", 4),
        ("package", 14),
        ("puppet", 6),
    ] {
        let ddl = corpus(name);
        assert_eq!(ddl.metadata.name, name);
        assert_eq!(ddl.actions.len(), actions, "{name}");
    }
    // The copies in the project are the shared corpus, byte for byte, where it is present.
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/choria-ddl");
    if shared.is_dir() {
        for name in [
            "rpcutil",
            "service",
            "package",
            "puppet",
            "agent-ddl-schema",
        ] {
            let ours = if name == "agent-ddl-schema" {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/agent.json")
            } else {
                data_dir().join(format!("{name}.json"))
            };
            assert_eq!(
                std::fs::read(ours).unwrap(),
                std::fs::read(shared.join(format!("{name}.json"))).unwrap(),
                "{name} differs from the shared corpus"
            );
        }
    }
}

fn validate(
    agent: &str,
    action: &str,
    data: Value,
) -> Result<Map<String, Value>, (StatusCode, String)> {
    let ddl = corpus(agent);
    let action = ddl.action(action).unwrap();
    let mut data = data.as_object().unwrap().clone();
    action
        .validate_inputs(&mut data)
        .map(|_| data)
        .map_err(|e| (e.status(), e.to_string()))
}

#[test]
fn validation_against_corpus_actions() {
    type Case = (&'static str, &'static str, Value, Option<StatusCode>);
    let table: Vec<Case> = vec![
        ("service", "restart", json!({"service": "httpd"}), None),
        ("service", "restart", json!({"service": "getty@tty1"}), None),
        (
            "service",
            "restart",
            json!({}),
            Some(StatusCode::MissingData),
        ),
        (
            "service",
            "restart",
            json!({"service": null}),
            Some(StatusCode::MissingData),
        ),
        (
            "service",
            "restart",
            json!({"service": "a b"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "service",
            "restart",
            json!({"service": "x;reboot"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "service",
            "restart",
            json!({"service": 5}),
            Some(StatusCode::InvalidData),
        ),
        (
            "service",
            "restart",
            json!({"service": "a".repeat(91)}),
            Some(StatusCode::InvalidData),
        ),
        (
            "service",
            "restart",
            json!({"service": "a".repeat(90)}),
            None,
        ),
        (
            "service",
            "restart",
            json!({"service": "httpd", "extra": 1}),
            Some(StatusCode::InvalidData),
        ),
        ("package", "install", json!({"package": "foo"}), None),
        (
            "package",
            "install",
            json!({"package": "foo", "version": "1.2-3"}),
            None,
        ),
        (
            "package",
            "install",
            json!({"package": "foo`id`"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "package",
            "install",
            json!({"package": "$(reboot)"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "package",
            "install",
            json!({"package": "foo\nbar"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "package",
            "install",
            json!({"package": "foo", "version": "1;x"}),
            Some(StatusCode::InvalidData),
        ),
        ("package", "yum_clean", json!({}), None),
        ("package", "yum_clean", json!({"mode": "all"}), None),
        (
            "package",
            "yum_clean",
            json!({"mode": "everything"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "puppet",
            "runonce",
            json!({"noop": true, "splaylimit": 30, "tags": "a,b::c"}),
            None,
        ),
        (
            "puppet",
            "runonce",
            json!({"noop": "yes"}),
            Some(StatusCode::InvalidData),
        ),
        ("puppet", "runonce", json!({"splaylimit": 1.5}), None),
        (
            "puppet",
            "runonce",
            json!({"splaylimit": "5"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "puppet",
            "runonce",
            json!({"environment": "prod-1"}),
            Some(StatusCode::InvalidData),
        ),
        (
            "puppet",
            "runonce",
            json!({"server": "puppet.example.net:8140"}),
            None,
        ),
        (
            "puppet",
            "resource",
            json!({"name": "x", "type": "file"}),
            None,
        ),
        (
            "puppet",
            "resource",
            json!({"name": "", "type": "file"}),
            Some(StatusCode::InvalidData),
        ),
        ("rpcutil", "get_fact", json!({"fact": "os.family"}), None),
        ("rpcutil", "get_facts", json!({"facts": "a, b.c,d-e"}), None),
        (
            "rpcutil",
            "get_facts",
            json!({"facts": "a;b"}),
            Some(StatusCode::InvalidData),
        ),
        ("rpcutil", "ping", json!({}), None),
        (
            "rpcutil",
            "ping",
            json!({"x": 1}),
            Some(StatusCode::InvalidData),
        ),
    ];
    for (agent, action, data, want) in table {
        let got = validate(agent, action, data.clone()).err().map(|(s, _)| s);
        assert_eq!(got, want, "{agent}#{action} {data}");
    }
}

#[test]
fn defaults_are_filled_and_messages_name_the_input() {
    let data = validate("puppet", "last_run_summary", json!({})).unwrap();
    assert_eq!(data["logs"], json!(false));
    let (status, message) = validate("service", "stop", json!({})).unwrap_err();
    assert_eq!(status, StatusCode::MissingData);
    assert_eq!(message, "action stop needs a service argument");
    let (_, message) = validate("service", "stop", json!({"service": "a b"})).unwrap_err();
    assert!(
        message.contains("invalid input service for action stop"),
        "{message}"
    );
    assert!(message.contains("service_name"), "{message}");
}

#[test]
fn every_type_converts_from_the_command_line() {
    use mco_ddl::validate::convert_cli_value;
    use mco_ddl::InputType::*;
    let table: Vec<(mco_ddl::InputType, &str, Option<Value>)> = vec![
        (String, "x=y", Some(json!("x=y"))),
        (List, "all", Some(json!("all"))),
        (Boolean, "true", Some(json!(true))),
        (Boolean, "YES", Some(json!(true))),
        (Boolean, "y", Some(json!(true))),
        (Boolean, "1", Some(json!(true))),
        (Boolean, "false", Some(json!(false))),
        (Boolean, "no", Some(json!(false))),
        (Boolean, "0", Some(json!(false))),
        (Boolean, "maybe", None),
        (Integer, "42", Some(json!(42))),
        (Integer, "-3", Some(json!(-3))),
        (Integer, "4.5", None),
        (Integer, "x", None),
        (Float, "4.5", Some(json!(4.5))),
        (Float, "4", Some(json!(4))),
        (Float, "inf", None),
        (Number, "1e3", Some(json!(1000.0))),
        (Number, "NaN", None),
        (Hash, r#"{"a":1}"#, Some(json!({"a": 1}))),
        (Hash, "[1]", None),
        (Hash, "{", None),
        (Array, "[1,2]", Some(json!([1, 2]))),
        (Array, r#"{"a":1}"#, None),
    ];
    for (kind, raw, want) in table {
        assert_eq!(convert_cli_value(kind, raw).ok(), want, "{kind:?} {raw}");
    }
    let ddl = corpus("puppet");
    let runonce = ddl.action("runonce").unwrap();
    let data = runonce
        .convert_cli_args([("noop", "yes"), ("splaylimit", "10"), ("tags", "a")])
        .unwrap();
    assert_eq!(
        json!(data),
        json!({"noop": true, "splaylimit": 10, "tags": "a"})
    );
    let err = runonce.convert_cli_args([("nope", "1")]).unwrap_err();
    assert_eq!(err.kind, InputErrorKind::Invalid);
    assert!(
        err.to_string().contains("inputs: environment, force"),
        "{err}"
    );
}

#[test]
fn output_defaults_and_display_rules() {
    let ddl = corpus("puppet");
    let status = ddl.action("status").unwrap();
    let mut data = Map::new();
    data.insert("enabled".into(), json!(true));
    status.apply_output_defaults(&mut data);
    assert_eq!(data["enabled"], json!(true));
    assert_eq!(data["status"], json!("unknown"));
    assert_eq!(data["applying"], json!(false));
    assert_eq!(data["enabled"], json!(true));
    assert_eq!(status.display, Display::Always);
    assert_eq!(ddl.action("runonce").unwrap().display, Display::Failed);
    assert!(Display::Failed.shows(StatusCode::Aborted));
    assert!(!Display::Failed.shows(StatusCode::Ok));
    assert!(Display::Ok.shows(StatusCode::Ok));
    assert!(!Display::Ok.shows(StatusCode::InvalidData));
    assert!(Display::Always.shows(StatusCode::Ok));
}

#[test]
fn aggregates_over_replies() {
    let ddl = corpus("puppet");
    let mut agg = Aggregator::new(ddl.action("status").unwrap());
    for (enabled, daemon, status) in [
        (true, true, "idling"),
        (true, false, "stopped"),
        (false, false, "stopped"),
    ] {
        let data = json!({"enabled": enabled, "daemon_present": daemon, "status": status, "applying": false, "idling": status == "idling"});
        agg.add(data.as_object().unwrap());
    }
    let results = agg.results();
    assert_eq!(results.len(), 5);
    assert_eq!(
        results[0].counts.as_ref().unwrap(),
        &vec![("enabled".to_string(), 2), ("disabled".to_string(), 1)]
    );
    assert_eq!(
        results[1].counts.as_ref().unwrap(),
        &vec![("stopped".to_string(), 2), ("running".to_string(), 1)]
    );
    assert_eq!(results[3].lines, vec!["stopped = 2", " idling = 1"]);
    assert!(results[3]
        .render()
        .starts_with("Summary of Status:\n\n   stopped = 2\n"));

    let mut avg = Aggregator::new(ddl.action("last_run_summary").unwrap());
    for (t, total) in [(1.0, 10), (2.5, 20)] {
        avg.add(
            json!({"config_retrieval_time": t, "total_time": 3, "total_resources": total})
                .as_object()
                .unwrap(),
        );
    }
    let results = avg.results();
    assert_eq!(results[0].value, Some(1.75));
    assert_eq!(results[0].lines, vec!["Average: 1.75"]);
    assert_eq!(results[2].lines, vec!["Average: 15"]);

    let service = corpus("service");
    let mut summary = Aggregator::new(service.action("status").unwrap());
    for s in ["running", "running", "stopped"] {
        summary.add(json!({"status": s}).as_object().unwrap());
    }
    let r = &summary.results()[0];
    assert_eq!(r.display_as, "Service Status");
    assert_eq!(r.lines, vec!["running = 2", "stopped = 1"]);
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["counts"], json!([["running", 2], ["stopped", 1]]));
}

#[test]
fn sum_and_summary_of_arrays() {
    let ddl = AgentDdl::from_json(
        r#"{"metadata":{"name":"x","description":"d","author":"a","license":"l","version":"1.0.0","url":"u","timeout":5},
            "actions":[{"action":"a","description":"d","input":{},
              "output":{"n":{"description":"d","display_as":"N"},"tags":{"description":"d","display_as":"Tags"}},
              "aggregate":[{"function":"sum","args":["n"]},{"function":"summary","args":["tags"]}]}]}"#,
        "x.json",
    )
    .unwrap();
    let mut agg = Aggregator::new(ddl.action("a").unwrap());
    agg.add(json!({"n": 2, "tags": ["a", "b"]}).as_object().unwrap());
    agg.add(json!({"n": "3", "tags": ["a"]}).as_object().unwrap());
    let r = agg.results();
    assert_eq!(r[0].lines, vec!["Sum of N: 5.000000"]);
    assert_eq!(r[1].counts.as_ref().unwrap()[0], ("a".to_string(), 2));
}

fn broken(actions: &str) -> String {
    let text = format!(
        r#"{{"metadata":{{"name":"x","description":"d","author":"a","license":"l","version":"1.0.0","url":"u","timeout":5}},"actions":{actions}}}"#
    );
    AgentDdl::from_json(&text, "broken.json")
        .unwrap_err()
        .to_string()
}

#[test]
fn broken_ddls_are_refused_with_file_action_and_field() {
    let one = r#"{"action":"a","description":"d","input":{},"output":{}}"#;
    let table: Vec<(String, &[&str])> = vec![
        (format!("[{one},{one}]"), &["broken.json", "action a", "declared more than once"]),
        (
            r#"[{"action":"a","description":"d","input":{},"output":{},"aggregate":[{"function":"summary","args":["nope"]}]}]"#.into(),
            &["broken.json", "action a", "aggregate[0]", "undeclared output \"nope\""],
        ),
        (
            r#"[{"action":"a","description":"d","input":{},"output":{"o":{"description":"d","display_as":"O"}},"aggregate":[{"function":"median","args":["o"]}]}]"#.into(),
            &["action a", "unknown aggregate function \"median\""],
        ),
        (
            r#"[{"action":"a","description":"d","input":{"s":{"prompt":"p","description":"d","type":"string","optional":false,"validation":"^(","maxlength":5}},"output":{}}]"#.into(),
            &["action a", "input.s.validation", "invalid regular expression"],
        ),
        (
            r#"[{"action":"a","description":"d","input":{"s":{"prompt":"p","description":"d","type":"string","optional":false,"validation":"no_such_thing","maxlength":5}},"output":{}}]"#.into(),
            &["input.s.validation", "unknown validator"],
        ),
        (
            r#"[{"action":"a","description":"d","input":{"n":{"prompt":"p","description":"d","type":"integer","optional":true,"default":"ten"}},"output":{}}]"#.into(),
            &["input.n.default", "expected integer"],
        ),
        (
            r#"[{"action":"a","description":"d","input":{"s":{"prompt":"p","description":"d","type":"string","optional":false}},"output":{}}]"#.into(),
            &["broken.json", "does not match the DDL schema"],
        ),
        (r#"[{"action":"a","description":"d","output":{}}]"#.into(), &["does not match the DDL schema", "input"]),
        (r#"[{"action":"Bad","description":"d","input":{},"output":{}}]"#.into(), &["does not match the DDL schema"]),
    ];
    for (actions, needles) in table {
        let message = broken(&actions);
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
    }
    assert!(AgentDdl::from_json("{", "f.json")
        .unwrap_err()
        .to_string()
        .starts_with("f.json: not a valid DDL"));
}

#[test]
fn a_ddl_must_be_named_for_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.json");
    std::fs::copy(data_dir().join("service.json"), &path).unwrap();
    let message = AgentDdl::load(&path).unwrap_err().to_string();
    let lint = mco_ddl::load::lint(&path).unwrap();
    assert_eq!(lint.len(), 1, "{lint:?}");
    assert_eq!(lint[0].kind, mco_ddl::FindingKind::NameMismatch);
    assert!(
        message.contains("metadata.name") && message.contains("\"other\""),
        "{message}"
    );
    let missing = AgentDdl::load(&dir.path().join("none.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("none.json"), "{missing}");
}

fn lenient(name: &str) -> PathBuf {
    data_dir().join("lenient").join(format!("{name}.json"))
}

#[test]
fn ddls_choria_loads_load_with_warnings_and_lint_names_each_problem() {
    // (file, what loading warns about, what lint reports: one entry per finding)
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    );
    let table: &[Case] = &[
        (
            "bolt_tasks",
            &[
                "action run_no_wait: input.host.validation: unknown validator \"puppet_server_fqdn\"",
                "action run_no_wait: input.task.validation: unknown validator \"bolt_task_name\"",
            ],
            &["input.host.validation: unknown validator", "input.task.validation: unknown validator"],
        ),
        (
            "summaries",
            &["action report: aggregate[0]: unknown aggregate function \"chart_summary\""],
            &["aggregate[0]: unknown aggregate function \"chart_summary\""],
        ),
        (
            "generated",
            &[],
            &[
                "action deploy: input.channel.default: \"Stable!\" does not match",
                "action deploy: input.release.default: \"\" does not match",
            ],
        ),
        ("certs", &[], &["/actions/0/input: Additional properties are not allowed ('C', 'O', 'OU', 'ST'"]),
        ("nooptional", &[], &["/actions/0/input/key: has no \"optional\" key (read as false"]),
        ("updates", &[], &["/actions/0/action: \"update-all\""]),
        // Go, Ruby and Python all read the brace as a literal, so nothing is wrong with it.
        ("braces", &[], &[]),
    ];
    for (name, warnings, problems) in table {
        let loaded = AgentDdl::load(&lenient(name)).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(got.len(), warnings.len(), "{name}: {got:?}");
        for (line, want) in got.iter().zip(warnings.iter()) {
            assert!(line.contains(want), "{name}: {want:?} not in {line:?}");
        }
        let lint: Vec<String> = mco_ddl::load::lint(&lenient(name))
            .unwrap()
            .iter()
            .map(|f| f.to_string())
            .collect();
        if problems.is_empty() {
            assert!(lint.is_empty(), "{name}: {lint:?}");
        }
        for want in *problems {
            assert!(
                lint.iter().any(|l| l.contains(want)),
                "{name}: {want:?} not in {lint:?}"
            );
        }
    }
}

#[test]
fn lenient_ddls_validate_what_mco_knows() {
    let check = |name: &str, action: &str, data: Value| {
        let loaded = AgentDdl::load(&lenient(name)).unwrap();
        let mut data = data.as_object().unwrap().clone();
        loaded
            .ddl
            .action(action)
            .unwrap()
            .validate_inputs(&mut data)
            .map(|_| data)
            .map_err(|e| e.status())
    };
    let invalid = Err(StatusCode::InvalidData);
    let missing = Err(StatusCode::MissingData);
    // An unknown validator is not enforced, but the type and maxlength still are.
    assert!(check("bolt_tasks", "run_no_wait", json!({"task": "a::b"})).is_ok());
    assert!(check(
        "bolt_tasks",
        "run_no_wait",
        json!({"task": "x", "host": "h"})
    )
    .is_ok());
    assert_eq!(
        check("bolt_tasks", "run_no_wait", json!({"task": 5})).map(|_| ()),
        invalid
    );
    assert_eq!(
        check(
            "bolt_tasks",
            "run_no_wait",
            json!({"task": "a".repeat(101)})
        )
        .map(|_| ()),
        invalid
    );
    assert_eq!(
        check("bolt_tasks", "run_no_wait", json!({})).map(|_| ()),
        missing
    );
    // No `optional` key means required.
    assert_eq!(
        check("nooptional", "lookup", json!({})).map(|_| ()),
        missing
    );
    assert_eq!(
        check("nooptional", "lookup", json!({"key": "a;b"})).map(|_| ()),
        invalid
    );
    assert!(check("certs", "request", json!({"C": "GB", "OU": "ops"})).is_ok());
    assert_eq!(
        check("certs", "request", json!({"C": "gb"})).map(|_| ()),
        invalid
    );
    assert!(check("updates", "update-all", json!({})).is_ok());
    assert!(check("braces", "set", json!({"doc": "{\"a\":1}"})).is_ok());
    assert_eq!(
        check("braces", "set", json!({"doc": "a"})).map(|_| ()),
        invalid
    );
    // A given value is validated even when the default would not be.
    assert_eq!(
        check(
            "generated",
            "deploy",
            json!({"release": "1.0", "channel": "Beta"})
        )
        .map(|_| ()),
        invalid
    );

    let summaries = AgentDdl::load(&lenient("summaries")).unwrap().ddl;
    let mut agg = Aggregator::new(summaries.action("report").unwrap());
    agg.add(json!({"status": "ok", "size": 3}).as_object().unwrap());
    let results = agg.results();
    assert_eq!(results.len(), 1, "the unknown aggregate is skipped");
    assert_eq!(results[0].function, "summary");
}

#[test]
fn what_no_engine_could_run_is_still_refused_on_load() {
    let one = r#"{"action":"a","description":"d","input":{},"output":{}}"#;
    for (actions, timeout, needle) in [
        (format!("[{one},{one}]"), 5, "declared more than once"),
        (format!("[{one}]"), 0, "metadata.timeout"),
        (r#"[{"action":"a"}]"#.to_string(), 5, "not a valid DDL"),
    ] {
        let text = format!(
            r#"{{"metadata":{{"name":"x","description":"d","author":"a","license":"l","version":"1.0.0","url":"u","timeout":{timeout}}},"actions":{actions}}}"#
        );
        let err = AgentDdl::from_json_lenient(&text, "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}
