//! The systemd units in `packaging/systemd/`: systemd checks them and rates their sandboxing
//! (`systemd-analyze verify` and `security --offline`), and the daemon started from the
//! command line `mcod.service` gives answers `mco ping`, reloads with its `ExecReload`, logs
//! JSON lines when its stderr is not a terminal (as under systemd) and stops cleanly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mco_testsupport::{bin_path, require_program, Fleet, NodeSpec};
use serde_json::{json, Value};

use crate::wait_until;

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/systemd")
        .join(name)
}

/// The unit's value for `key` in `[Service]` (the last one, as systemd takes it).
fn service_value(unit: &str, key: &str) -> String {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

/// The unit with `/usr/bin/mcod` pointing at the binary under test, written to `dir`.
fn localised(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(unit_path(name)).unwrap();
    let local = text.replace("/usr/bin/mcod", &bin_path("mcod").display().to_string());
    let path = dir.join(name);
    std::fs::write(&path, local).unwrap();
    path
}

#[test]
fn systemd_accepts_the_units_and_rates_their_sandboxing() {
    let analyze = require_program("systemd-analyze", "apt-get install systemd");
    let tmp = tempfile::tempdir().unwrap();
    let units = ["mcod.service", "mcod-registry.service"].map(|n| localised(n, tmp.path()));
    let verified = Command::new(&analyze)
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // The registry service needs nothing of root's; mcod keeps what the root agents need.
    // (systemd's threshold is ten times the exposure it prints: 20 is "2.0".)
    for (unit, threshold) in [(&units[1], "20"), (&units[0], "80")] {
        let rated = Command::new(&analyze)
            .args([
                "security",
                "--offline=yes",
                &format!("--threshold={threshold}"),
            ])
            .arg(unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rated.stdout);
        assert!(
            rated.status.success(),
            "{} is exposed above {threshold}: {}",
            unit.display(),
            text.lines().last().unwrap_or_default()
        );
    }
}

#[test]
fn mcod_runs_from_its_units_command_line_reloads_and_stops() {
    let mut spec = NodeSpec::new("unit1", json!({"country": "uk"}), &[]);
    spec.extra_config = "log_format = \"auto\"\n".into();
    let mut fleet = Fleet::start(vec![spec]);
    let config = fleet.nodes[0].config_path();
    // The fleet's own process goes; the unit's command line serves the same node.
    fleet.nodes[0].kill();

    let unit = std::fs::read_to_string(unit_path("mcod.service")).unwrap();
    let exec_start = service_value(&unit, "ExecStart");
    let words: Vec<String> = shlex::split(&exec_start).unwrap();
    assert_eq!(words[0], "/usr/bin/mcod", "{exec_start}");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| w.replace("/etc/mco/mcod.toml", &config.display().to_string()))
        .collect();
    assert!(args.contains(&config.display().to_string()), "{exec_start}");
    let tmp = tempfile::tempdir().unwrap();
    let log_path = tmp.path().join("journal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = KillOnDrop(
        Command::new(bin_path("mcod"))
            .args(&args)
            .current_dir(config.parent().unwrap())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_lines = || -> Vec<Value> {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    };
    let said = |message: &str| {
        log_lines().iter().any(|l| {
            l["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message)
        })
    };
    wait_until("mcod ready", Duration::from_secs(20), || said("mcod ready"));
    let ready = log_lines()
        .into_iter()
        .find(|l| l["fields"]["message"] == "mcod ready")
        .unwrap();
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert_eq!(ready["fields"]["identity"], "unit1", "{ready}");
    assert!(ready["timestamp"].is_string(), "{ready}");
    wait_until("mco ping", Duration::from_secs(20), || {
        fleet.ping() == ["unit1"]
    });

    // ExecReload, with systemd's $MAINPID.
    let reload = service_value(&unit, "ExecReload").replace("$MAINPID", &daemon.0.id().to_string());
    let words = shlex::split(&reload).unwrap();
    let status = Command::new(&words[0]).args(&words[1..]).status().unwrap();
    assert!(status.success(), "{reload}");
    wait_until("the reload", Duration::from_secs(20), || {
        said("agents reloaded")
    });
    assert_eq!(fleet.ping(), ["unit1"]);

    // systemctl stop sends SIGTERM: a clean exit, within the unit's TimeoutStopSec.
    // SAFETY: kill(2) on the pid of a child this test started.
    assert_eq!(
        unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) },
        0
    );
    let stop_limit: u64 = service_value(&unit, "TimeoutStopSec").parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(stop_limit);
    let exit = loop {
        if let Some(exit) = daemon.0.try_wait().unwrap() {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "mcod did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(said("mcod stopped"));
}

/// A child killed if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
