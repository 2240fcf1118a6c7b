//! `mco config` and `mco config --check` end to end: the real `mco` binary reading a real
//! fleet's client.toml (the one the fleet's calls use), with environment overrides, and a
//! set of broken copies of it, each refused in one line naming the file and the key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mco_testsupport::{mco, mco_command, Fleet, NodeSpec, Run};
use serde_json::json;

fn one_node() -> Fleet {
    Fleet::start(vec![NodeSpec::new("node1.example.net", json!({}), &[])])
}

/// The fleet's client.toml without the lines setting `drop`, plus `extra`, written as `name`
/// beside it (so its relative paths mean the same).
fn variant(fleet: &Fleet, name: &str, drop: &[&str], extra: &str) -> PathBuf {
    let base = std::fs::read_to_string(fleet.client_config()).unwrap();
    let mut text: String = base
        .lines()
        .filter(|l| !drop.iter().any(|k| l.starts_with(&format!("{k} ="))))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(extra);
    let path = fleet.client_config().with_file_name(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, args: &[&str]) -> Run {
    mco(config, args, Duration::from_secs(20))
}

/// The `key = value  (origin)` line for `key`.
fn line<'a>(run: &'a Run, key: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} line in:\n{}", run.stdout))
}

#[test]
fn config_shows_each_value_and_where_it_came_from() {
    let fleet = one_node();
    let file = fleet.client_config();
    let shown = file.display().to_string();

    let plain = run(&file, &["config"]);
    assert_eq!(plain.code, Some(0), "{plain:?}");
    assert!(
        plain
            .stdout
            .starts_with(&format!("configuration file: {shown}  (env $MCO_CONFIG)\n")),
        "{}",
        plain.stdout
    );
    assert!(line(&plain, "brokers").ends_with(&format!("(file {shown})")));
    assert!(line(&plain, "brokers").contains("nats://127.0.0.1:"));
    let (key, _) = fleet.client_credentials();
    assert!(line(&plain, "key_file").contains(&key.display().to_string()));
    assert_eq!(
        line(&plain, "timeout"),
        "timeout                     = 10s  (default)"
    );
    assert!(line(&plain, "caller").contains("the token's name"));
    // The key file is named, never read out.
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(!plain.stdout.contains(key_text.trim()));

    let flags = run(
        &file,
        &[
            "config",
            "-c",
            &shown,
            "--broker",
            "nats://ops:hunter2@127.0.0.1:4999",
        ],
    );
    assert!(flags
        .stdout
        .contains(&format!("configuration file: {shown}  (flag --config)")));
    assert_eq!(
        line(&flags, "brokers"),
        "brokers                     = nats://ops:[redacted]@127.0.0.1:4999  (flag --broker)"
    );

    // Secrets in the file are redacted too.
    let secrets = variant(
        &fleet,
        "secrets.toml",
        &[],
        "registry_url = \"postgres://mco:pgpass@db.example.net/mco\"\n[broker_auth]\nuser = \"mco\"\npassword = \"hunter2\"\n",
    );
    let redacted = run(&secrets, &["config"]);
    assert_eq!(redacted.code, Some(0), "{redacted:?}");
    assert!(!redacted.stdout.contains("hunter2") && !redacted.stdout.contains("pgpass"));
    assert!(line(&redacted, "broker_auth").contains("user=mco, password=[redacted]"));
    assert!(
        line(&redacted, "registry_url").contains("postgres://mco:[redacted]@db.example.net/mco")
    );

    // Without $MCO_CONFIG the file is found under $HOME; the caller of an unsigned client
    // comes from $USER.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".config/mco")).unwrap();
    let found = home.path().join(".config/mco/client.toml");
    std::fs::write(&found, "insecure = true\ntimeout = 3\n").unwrap();
    let out = mco_command(&file, &["config"])
        .env_remove("MCO_CONFIG")
        .env("HOME", home.path())
        .env("USER", "alice")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!(
        "configuration file: {}  (found in the default places)",
        found.display()
    )));
    assert!(
        text.contains("caller                      = user=alice  (env $USER)"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "timeout                     = 3s  (file {})",
        found.display()
    )));
}

#[test]
fn config_check_passes_for_the_fleets_configuration_which_then_works() {
    let fleet = one_node();
    let file = fleet.client_config();
    let check = run(&file, &["config", "--check"]);
    assert_eq!(check.code, Some(0), "{check:?}");
    assert_eq!(check.stdout.lines().count(), 1, "{}", check.stdout);
    assert!(
        check.stdout.starts_with(&format!(
            "{}: OK (brokers nats://127.0.0.1:",
            file.display()
        )),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("collectives mco, signing as e2e, 4 agent DDLs)"),
        "{}",
        check.stdout
    );
    assert_eq!(fleet.ping(), ["node1.example.net"]);
}

#[test]
fn config_check_names_the_file_and_key_that_is_wrong() {
    let fleet = one_node();
    let dir = fleet.client_config().parent().unwrap().to_path_buf();
    let (key, _) = fleet.client_credentials();
    let open_key = dir.join("open.key");
    std::fs::copy(&key, &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ddls = dir.join("ddls");
    std::fs::create_dir_all(&ddls).unwrap();
    std::fs::write(ddls.join("broken.json"), "{\"metadata\": ").unwrap();
    let key_line = format!("key_file = {:?}\n", open_key.display().to_string());
    let server_token = fleet.keys.issue("server", "node9.example.net", &[]).1;
    let server_token_line = format!("token_file = {:?}\n", server_token.display().to_string());
    let ddl_line = format!("ddl_dirs = [{:?}]\n", ddls.display().to_string());
    let cases: Vec<(&str, &[&str], &str, &str)> = vec![
        ("open-key", &["key_file"], &key_line, "key_file: "),
        (
            "no-token",
            &["token_file"],
            "token_file = \"gone.token\"\n",
            "token_file: ",
        ),
        (
            "server-token",
            &["token_file"],
            &server_token_line,
            "token_file: a server token",
        ),
        ("half-signed", &["token_file"], "", "token_file: missing"),
        (
            "unsigned",
            &["key_file", "token_file"],
            "",
            "key_file: requests must be signed",
        ),
        (
            "no-issuer",
            &["issuer_keys"],
            "issuer_keys = [\"nope.pub\"]\n",
            "issuer_keys: ",
        ),
        (
            "bad-collective",
            &["collectives"],
            "collectives = [\"uk.london\"]\n",
            "collectives: \"uk.london\" is not a valid collective name",
        ),
        (
            "bad-url",
            &["brokers"],
            "brokers = [\"nats://127.0.0.1:notaport\"]\n",
            "brokers: entry 1 is not a NATS URL",
        ),
        (
            "no-ddl-dir",
            &[],
            "ddl_dirs = [\"missing-ddls\"]\n",
            "ddl_dirs: ",
        ),
        ("bad-ddl", &[], &ddl_line, "ddl_dirs: "),
        (
            "typo",
            &[],
            "colectives = [\"mco\"]\n",
            "unknown field `colectives`",
        ),
        (
            "half-auth",
            &[],
            "[broker_auth]\nuser = \"mco\"\n",
            "broker_auth: user and password go together",
        ),
    ];
    for (name, drop, extra, want) in cases {
        let path = variant(&fleet, &format!("{name}.toml"), drop, extra);
        let check = run(&path, &["config", "--check"]);
        assert_eq!(check.code, Some(1), "{name}: {check:?}");
        assert!(check.stdout.is_empty(), "{name}: {check:?}");
        assert_eq!(check.stderr.lines().count(), 1, "{name}: {}", check.stderr);
        assert!(
            check
                .stderr
                .starts_with(&format!("mco: {}", path.display())),
            "{name}: {}",
            check.stderr
        );
        assert!(
            check.stderr.contains(want),
            "{name}: {want:?} not in {}",
            check.stderr
        );
    }
    // The fleet's own file still checks: the cases above are what broke it.
    assert_eq!(
        run(&fleet.client_config(), &["config", "--check"]).code,
        Some(0)
    );
}
