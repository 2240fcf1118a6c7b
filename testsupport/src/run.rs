//! Running `mco` and `mcod` to their end with a time limit, and what they printed ([`Run`]).
//!
//! Not for: daemons that keep running (see [`crate::mcod`]).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bin_path;
use crate::process::{die_with_parent, wait_with_limit};

/// The outcome of running `mco`.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its exit code (`None` if killed).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// How long it took.
    pub elapsed: Duration,
}

impl Run {
    /// stdout parsed as JSON (panics with the output when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }

    /// The `sender`s of `-j` output, sorted.
    pub fn senders(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .json()
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {}", self.stdout))
            .iter()
            .filter_map(|r| r["sender"].as_str().map(str::to_string))
            .collect();
        s.sort();
        s
    }
}

/// A `Command` for the real `mco` with its config, stdin from /dev/null and stdout/stderr
/// piped, dying with the test: for tests that run it in the background, signal it or feed it.
pub fn mco_command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin_path("mco"));
    command
        .args(args)
        .env("MCO_CONFIG", config)
        // Each test's discovery cache is its own, beside its configuration.
        .env(
            "XDG_CACHE_HOME",
            config.parent().unwrap_or(Path::new(".")).join("cache"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut command);
    command
}

/// Runs the real `mco` with `args`, its config and a time limit (a hang fails the test).
pub fn mco(config: &Path, args: &[&str], limit: Duration) -> Run {
    let started = Instant::now();
    let child = mco_command(config, args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mco: {e}"));
    let run = finish(child, started, limit);
    assert!(
        run.code.is_some() || run.elapsed < limit,
        "mco {args:?} did not finish within {limit:?}: {run:?}"
    );
    run
}

/// Runs the real `mcod` with `args` to its end, with a time limit (a hang fails the test):
/// for daemons that must refuse to start.
pub fn mcod(args: &[&str], limit: Duration) -> Run {
    let started = Instant::now();
    let mut command = Command::new(bin_path("mcod"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut command);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mcod: {e}"));
    let run = finish(child, started, limit);
    assert!(
        run.code.is_some(),
        "mcod {args:?} did not finish within {limit:?}: {run:?}"
    );
    run
}

/// Waits for a child started with piped stdout and stderr (see [`mco_command`]) and collects
/// its output; kills it after `limit` (its `code` is then `None`). `started` is when it started.
pub fn finish(mut child: Child, started: Instant, limit: Duration) -> Run {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let remaining = limit.saturating_sub(started.elapsed());
    let status = wait_with_limit(&mut child, remaining);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Run {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}
