//! The puppet agent through real mcod and mco on Debian's Puppet: a node in run mode
//! `apply` runs a manifest the test writes (runonce, one run at a time), then
//! last_run_summary and status report that run; resource declares a listed type and refuses
//! what Puppet manages; disable and enable are seen by status and by Puppet itself
//! (`puppet agent` refuses to run while disabled, and its `--enable` is seen by mco).
//!
//! Every Puppet directory (conf, var, public, log, run, code, ssl) is in a temporary
//! directory, given to Puppet through the agent's `args`, so nothing outside it changes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mco_client::Call;
use mco_spec::StatusCode;
use mco_testsupport::{require_program, Fleet, NodeSpec};
use serde_json::{json, Value};

use crate::{single_reply, twice_at_once};

pub(crate) struct PuppetDirs {
    dir: tempfile::TempDir,
}

impl PuppetDirs {
    pub(crate) fn new() -> PuppetDirs {
        let dir = tempfile::tempdir().unwrap();
        let managed = dir.path().join("managed.txt");
        std::fs::write(
            dir.path().join("site.pp"),
            format!(
                "file {{ '{}': content => \"managed by mco\\n\" }}\nnotify {{ 'mco e2e run': }}\n",
                managed.display()
            ),
        )
        .unwrap();
        PuppetDirs { dir }
    }

    pub(crate) fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Puppet's arguments: every directory it writes in is here.
    pub(crate) fn args(&self) -> Vec<String> {
        [
            "confdir",
            "vardir",
            "publicdir",
            "logdir",
            "rundir",
            "codedir",
            "ssldir",
        ]
        .iter()
        .flat_map(|setting| {
            [
                format!("--{setting}"),
                self.path(setting).display().to_string(),
            ]
        })
        .collect()
    }

    /// Runs the real `puppet` with these directories.
    fn puppet(&self, subcommand: &[&str]) -> (Option<i32>, String) {
        let out = Command::new("puppet")
            .arg(subcommand[0])
            .args(self.args())
            .args(&subcommand[1..])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }
}

fn fleet(dirs: &PuppetDirs) -> Fleet {
    let args: Vec<String> = dirs.args().iter().map(|a| format!("{a:?}")).collect();
    let mut spec = NodeSpec::new("pup1", json!({"role": "puppet"}), &[]);
    spec.extra_config = format!(
        "[agents.puppet]\nrun_mode = \"apply\"\nmanifest = {:?}\nargs = [{}]\nresource_types = [\"notify\", \"file\"]\n",
        dirs.path("site.pp").display().to_string(),
        args.join(", ")
    );
    Fleet::start(vec![spec])
}

fn status(fleet: &Fleet) -> Value {
    let reply = single_reply(fleet, &["rpc", "puppet", "status", "-I", "pup1", "-j"]);
    assert_eq!(reply["statuscode"], 0, "{reply}");
    reply["data"].clone()
}

#[test]
fn puppet_runs_reports_and_locks_through_mco() {
    require_program("puppet", "apt-get install puppet");
    let dirs = PuppetDirs::new();
    let fleet = fleet(&dirs);

    let before = status(&fleet);
    assert_eq!(before["enabled"], true, "{before}");
    assert_eq!(before["applying"], false);
    assert_eq!(before["lastrun"], 0);
    assert_eq!(before["status"], "stopped");

    // Two runonce at once: one starts Puppet, the other is refused while it applies.
    let (started, refused) = twice_at_once(
        &fleet,
        Call::new("puppet", "runonce")
            .arg("force", true)
            .nodes(["pup1"])
            .timeout(Duration::from_secs(30)),
    );
    assert_eq!(started.statuscode, StatusCode::Ok, "{started:?}");
    let summary = started.data["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Started a Puppet run using the '") && summary.contains(" apply "),
        "{summary}"
    );
    let initiated_at = started.data["initiated_at"].as_u64().unwrap();
    assert_eq!(refused.statuscode, StatusCode::Aborted, "{refused:?}");
    assert_eq!(
        refused.statusmsg,
        "Puppet is currently applying a catalog, cannot run now"
    );

    // Wait for the run to end, as an operator would with status.
    let deadline = Instant::now() + Duration::from_secs(120);
    let after = loop {
        let now = status(&fleet);
        if now["applying"] == false && now["lastrun"].as_u64().unwrap_or(0) >= initiated_at {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the puppet run did not finish: {now}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(after["status"], "stopped", "{after}");
    assert!(after["since_lastrun"].as_u64().is_some(), "{after}");
    assert!(
        after["message"]
            .as_str()
            .unwrap()
            .starts_with("Currently stopped; last completed run "),
        "{after}"
    );
    let managed = dirs.path("managed.txt");
    assert_eq!(
        std::fs::read_to_string(&managed).unwrap(),
        "managed by mco\n"
    );

    // last_run_summary reports that run, with its logs when asked.
    let report = single_reply(
        &fleet,
        &[
            "rpc",
            "puppet",
            "last_run_summary",
            "logs=true",
            "-I",
            "pup1",
            "-j",
        ],
    );
    assert_eq!(report["statuscode"], 0, "{report}");
    let data = &report["data"];
    assert_eq!(data["changed_resources"], 2, "{data}");
    assert_eq!(data["failed_resources"], 0);
    assert!(data["total_resources"].as_u64().unwrap() >= 2);
    assert!(data["lastrun"].as_u64().unwrap() >= initiated_at);
    assert_eq!(data["type_distribution"]["File"], 1, "{data}");
    assert_eq!(data["type_distribution"]["Notify"], 1);
    assert!(
        data["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["msg"] == "mco e2e run" && l["level"] == "notice"),
        "{data}"
    );
    let text = fleet.mco(&["rpc", "puppet", "last_run_summary", "-I", "pup1"]);
    for heading in ["Config Retrieval Time", "Total Time", "Total Resources"] {
        assert!(
            text.stdout
                .contains(&format!("Summary of {heading}:\n\n   Average: ")),
            "{}",
            text.stdout
        );
    }

    // resource: a listed type is declared, a managed resource and an unlisted type are not.
    let notify = single_reply(
        &fleet,
        &[
            "rpc",
            "puppet",
            "resource",
            "type=notify",
            "name=hello from mco",
            "-I",
            "pup1",
            "-j",
        ],
    );
    assert_eq!(notify["statuscode"], 0, "{notify}");
    assert_eq!(notify["data"]["changed"], true);
    assert!(
        notify["data"]["result"]
            .as_str()
            .unwrap()
            .contains("hello from mco"),
        "{notify}"
    );
    let managed_arg = format!("name={}", managed.display());
    let conflicting = single_reply(
        &fleet,
        &[
            "rpc",
            "puppet",
            "resource",
            "type=file",
            &managed_arg,
            "-I",
            "pup1",
            "-j",
        ],
    );
    assert_eq!(conflicting["statuscode"], 1, "{conflicting}");
    assert!(
        conflicting["statusmsg"]
            .as_str()
            .unwrap()
            .contains("Puppet is managing the resource 'File["),
        "{conflicting}"
    );
    let exec = single_reply(
        &fleet,
        &[
            "rpc",
            "puppet",
            "resource",
            "type=exec",
            "name=/bin/true",
            "-I",
            "pup1",
            "-j",
        ],
    );
    assert!(
        exec["statusmsg"].as_str().unwrap().contains("not listed"),
        "{exec}"
    );
    // The resource left the real run's summary alone.
    assert_eq!(status(&fleet)["lastrun"], after["lastrun"]);

    // disable: status and Puppet itself see the lock.
    let disable = fleet.mco(&[
        "rpc",
        "puppet",
        "disable",
        "message=e2e maintenance",
        "-I",
        "pup1",
    ]);
    assert_eq!(disable.code, Some(0), "{disable:?}");
    assert!(
        disable
            .stdout
            .contains("Summary of Enabled:\n\n   disabled = 1"),
        "{}",
        disable.stdout
    );
    let disabled = status(&fleet);
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["status"], "disabled");
    assert_eq!(disabled["disable_message"], "e2e maintenance");
    let (code, said) = dirs.puppet(&[
        "agent",
        "--onetime",
        "--no-daemonize",
        "--verbose",
        "--color=false",
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("administratively disabled (Reason: 'e2e maintenance')"),
        "{said}"
    );
    let runonce = single_reply(
        &fleet,
        &["rpc", "puppet", "runonce", "force=true", "-I", "pup1", "-j"],
    );
    assert_eq!(
        runonce["statusmsg"],
        "Puppet is disabled: 'e2e maintenance'"
    );

    // Puppet's own --enable is seen by mco; mco's enable removes Puppet's lock.
    let (code, said) = dirs.puppet(&["agent", "--enable"]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(status(&fleet)["enabled"], true);
    let (code, said) = dirs.puppet(&["agent", "--disable", "by puppet itself"]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(status(&fleet)["disable_message"], "by puppet itself");
    let enable = single_reply(&fleet, &["rpc", "puppet", "enable", "-I", "pup1", "-j"]);
    assert_eq!(enable["statuscode"], 0, "{enable}");
    assert_eq!(enable["data"]["enabled"], true);
    assert!(!lock_exists(&dirs.path("vardir")), "the lock is gone");
    assert_eq!(status(&fleet)["status"], "stopped");
}

fn lock_exists(vardir: &Path) -> bool {
    vardir.join("state/agent_disabled.lock").exists()
}

/// `mco puppet runall 1` over three nodes, each applying a manifest whose run takes two
/// seconds and records when it ran: every node runs once, and no two runs overlap.
#[test]
fn runall_keeps_at_most_n_runs_going() {
    require_program("puppet", "apt-get install puppet");
    let windows = tempfile::tempdir().unwrap();
    let nodes = ["pup1", "pup2", "pup3"];
    let dirs: Vec<PuppetDirs> = nodes.iter().map(|_| PuppetDirs::new()).collect();
    let specs = nodes
        .iter()
        .zip(&dirs)
        .map(|(id, dirs)| {
            let record = windows.path().join(id);
            std::fs::write(
                dirs.path("site.pp"),
                format!(
                    "exec {{ 'mco runall window': command => \"/bin/sh -c 'date +%s%N > {0}.start; sleep 2; date +%s%N > {0}.tmp; mv {0}.tmp {0}.end'\" }}\n",
                    record.display()
                ),
            )
            .unwrap();
            let args: Vec<String> = dirs.args().iter().map(|a| format!("{a:?}")).collect();
            let mut spec = NodeSpec::new(id, json!({"role": "puppet"}), &[]);
            spec.extra_config = format!(
                "[agents.puppet]\nrun_mode = \"apply\"\nmanifest = {:?}\nargs = [{}]\n",
                dirs.path("site.pp").display().to_string(),
                args.join(", ")
            );
            spec
        })
        .collect();
    let fleet = Fleet::start(specs);

    let run = fleet.mco(&["puppet", "runall", "1", "-W", "role=puppet"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("Running Puppet on 3 nodes, at most 1 at a time")
            && run.stdout.contains("Started Puppet on 3 of 3 nodes"),
        "{run:?}"
    );
    for id in nodes {
        assert!(
            run.stdout.contains(&format!("{id}: Puppet run started")),
            "{run:?}"
        );
    }

    // The last run was started, not waited for.
    let ended = |id: &str| windows.path().join(format!("{id}.end")).exists();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !nodes.iter().all(|id| ended(id)) {
        assert!(Instant::now() < deadline, "runs did not all end: {run:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let read = |id: &str, end: &str| -> u128 {
        std::fs::read_to_string(windows.path().join(format!("{id}.{end}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let mut spans: Vec<(u128, u128, &str)> = nodes
        .iter()
        .map(|id| (read(id, "start"), read(id, "end"), *id))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "{} ran until {} but {} started at {}: more than one run at once",
            pair[0].2,
            pair[0].1,
            pair[1].2,
            pair[1].0
        );
    }

    let bad = fleet.mco(&["puppet", "runall", "none", "-W", "role=puppet"]);
    assert_eq!(bad.code, Some(64), "{bad:?}");
}

/// A run started through mco says what it changed, read from Puppet's own run report: each
/// changed resource as `puppet.resource_changed`, then `puppet.run_finished` with its figures.
#[test]
fn a_puppet_run_says_each_resource_it_changed_and_its_figures() {
    require_program("puppet", "apt-get install puppet");
    let dirs = PuppetDirs::new();
    let fleet = fleet(&dirs);
    let started = Instant::now();
    let tail = mco_testsupport::mco_command(
        &fleet.client_config(),
        &[
            "events", "--type", "puppet.*", "--count", "4", "--for", "90", "-j",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let run = fleet.mco(&["rpc", "puppet", "runonce", "force=true", "-I", "pup1"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = mco_testsupport::finish(tail, started, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "no puppet events: {out:?}");
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "puppet.run_started",
            "puppet.resource_changed",
            "puppet.resource_changed",
            "puppet.run_finished"
        ],
        "{events:?}"
    );
    let managed = format!("File[{}]", dirs.path("managed.txt").display());
    let changed: Vec<&str> = events[1..3]
        .iter()
        .map(|e| e["data"]["resource"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&managed.as_str()), "{changed:?}");
    assert!(changed.contains(&"Notify[mco e2e run]"), "{changed:?}");
    let file = events[1..3]
        .iter()
        .find(|e| e["data"]["resource"] == managed.as_str())
        .unwrap();
    assert_eq!(file["data"]["type"], "File");
    assert_eq!(file["data"]["changes"][0]["property"], "ensure", "{file}");
    let finished = &events[3]["data"];
    assert_eq!(finished["status"], "changed", "{finished}");
    assert_eq!(finished["exit_code"], 0, "{finished}");
    assert!(
        finished["changed_resources"].as_i64().unwrap() >= 2,
        "{finished}"
    );
    assert!(
        finished["total_resources"].as_i64().unwrap() >= 2,
        "{finished}"
    );
    assert!(finished["total_time"].as_f64().unwrap() > 0.0, "{finished}");
}
