//! Running system tools for agents, on [`mco_runner`] (argv only, its own process group,
//! killed at the limit and when the action is abandoned, capped output): what tools add is a
//! non-interactive environment, text output with a truncation mark, the action's
//! [`Deadline`], and finding a program as the node would run it.
//!
//! Not for deciding what to run: callers build argv lists from validated inputs.

use std::path::PathBuf;
use std::time::Duration;

use mco_runner::DEFAULT_PATH;

/// Output beyond this many bytes per stream is dropped (and marked as truncated).
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CommandOutput {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr joined, trimmed: what an operator wants to see.
    pub fn combined(&self) -> String {
        let mut text = self.stdout.trim_end().to_string();
        let err = self.stderr.trim_end();
        if !err.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(err);
        }
        text
    }
}

/// Why a command did not produce output: the runner's error (it names the program).
pub use mco_runner::RunError as CommandError;

/// When an action must be done by: its DDL timeout less a margin, so that a tool still
/// running is killed, and the caller told why, before the node gives up on the action.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(std::time::Instant);

impl Deadline {
    /// The deadline of an action started now with a DDL timeout of `timeout_secs`.
    pub fn for_timeout(timeout_secs: u64) -> Deadline {
        let timeout = Duration::from_secs(timeout_secs);
        let margin = (timeout / 4).min(Duration::from_secs(3));
        Deadline(std::time::Instant::now() + timeout - margin)
    }

    /// The time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(std::time::Instant::now())
    }
}

/// [`run`] for an argv of owned strings, limited to what is left before `deadline`.
pub async fn run_until(argv: &[String], deadline: Deadline) -> Result<CommandOutput, CommandError> {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run(&argv, deadline.remaining(), &[]).await
}

/// Runs `argv` with a time limit and extra environment variables.
///
/// The child leads its own process group. When the limit passes, or when the returned future
/// is dropped before the command finished (the node's action timeout), the whole group is
/// killed, so a tool's own children (dpkg under apt-get) do not outlive it. What the command
/// leaves running after it exited is left alone: an init script's `start` leaves its daemon.
pub async fn run(
    argv: &[&str],
    limit: Duration,
    env: &[(&str, &str)],
) -> Result<CommandOutput, CommandError> {
    let output = tool_command(argv, limit, env).run().await?;
    Ok(tool_output(output))
}

/// Runs `argv` to completion on the calling thread, for the few answers that must be given
/// synchronously (data plugins used by filters); the limit kills the process group like
/// [`run`].
pub fn run_blocking(
    argv: &[&str],
    limit: Duration,
    env: &[(&str, &str)],
) -> Result<CommandOutput, CommandError> {
    let output = tool_command(argv, limit, env).run_blocking()?;
    Ok(tool_output(output))
}

/// Starts `argv` in the background in its own process group, with no stdin and its output
/// discarded, and returns at once. The caller owns the child (to learn when it ends); it is
/// not killed when dropped, so it may outlive the action that started it (a Puppet run).
pub fn spawn_detached(
    argv: &[&str],
    env: &[(&str, &str)],
) -> Result<tokio::process::Child, CommandError> {
    // No deadline applies to a detached run; the limit given is never used.
    tool_command(argv, Duration::MAX, env).spawn_detached()
}

/// The runner command for a system tool: an environment in which tools print in a fixed
/// format and never prompt, and `HOME` (Puppet and apt read their per-user settings there),
/// on top of the runner's cleared environment.
fn tool_command(argv: &[&str], limit: Duration, env: &[(&str, &str)]) -> mco_runner::Command {
    let (program, args) = argv.split_first().map_or(("", &[][..]), |(p, a)| (*p, a));
    let mut command = mco_runner::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        .env("SYSTEMD_PAGER", "")
        .env("PAGER", "cat")
        .stdout_limit(MAX_OUTPUT_BYTES)
        .stderr_limit(MAX_OUTPUT_BYTES)
        .deadline(limit)
        // Init scripts start daemons that must keep running after the script.
        .leave_group_after_exit();
    if let Some(home) = std::env::var_os("HOME") {
        command = command.env("HOME", home);
    }
    for (key, value) in env {
        command = command.env(key, value);
    }
    command
}

/// The runner's output as tools' text, a cut stream marked as such.
fn tool_output(output: mco_runner::Output) -> CommandOutput {
    let text = |bytes: &[u8], truncated: bool| {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if truncated {
            text.push_str("\n[output truncated]");
        }
        text
    };
    CommandOutput {
        code: output.code(),
        stdout: text(&output.stdout, output.stdout_truncated),
        stderr: text(&output.stderr, output.stderr_truncated),
    }
}

/// The executable `name` would run: `name` itself when it holds a `/`, else the first match
/// in `PATH` and the system directories (`/usr/sbin` is often missing from a user's `PATH`).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::env::split_paths(DEFAULT_PATH))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_without_a_shell_and_captures_output() {
        let out = run(&["echo", "a;b", "$(id)"], Duration::from_secs(5), &[])
            .await
            .unwrap();
        assert!(out.success());
        // The arguments reached echo verbatim: no shell interpreted them.
        assert_eq!(out.stdout, "a;b $(id)\n");
        let out = run(
            &["sh", "-c", "echo err >&2; exit 4"],
            Duration::from_secs(5),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(out.code, Some(4));
        assert_eq!(out.combined(), "err");
        let env = run(
            &["sh", "-c", "echo $DEBIAN_FRONTEND $X"],
            Duration::from_secs(5),
            &[("X", "y")],
        )
        .await
        .unwrap();
        assert_eq!(env.stdout.trim(), "noninteractive y");
    }

    #[tokio::test]
    async fn timeouts_and_missing_programs_are_errors() {
        let err = run(&["sleep", "20"], Duration::from_millis(200), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        let err = run(&["no-such-program-mco"], Duration::from_secs(1), &[])
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("could not run no-such-program-mco"),
            "{err}"
        );
        assert!(run(&[], Duration::from_secs(1), &[]).await.is_err());
    }

    #[tokio::test]
    async fn output_is_capped() {
        let out = run(
            &["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"],
            Duration::from_secs(10),
            &[],
        )
        .await
        .unwrap();
        assert!(out.stdout.len() <= MAX_OUTPUT_BYTES + 40);
        assert!(out.stdout.ends_with("[output truncated]"));
    }

    #[tokio::test]
    async fn an_abandoned_command_takes_its_children_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let argv = ["sh", "-c", script.as_str()];
        let mut running = Box::pin(run(&argv, Duration::from_secs(30), &[]));
        let pid: i32 = loop {
            tokio::select! {
                done = &mut running => panic!("the command ended early: {done:?}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    let text = std::fs::read_to_string(&marker).unwrap_or_default();
                    if let Ok(pid) = text.trim().parse() {
                        break pid;
                    }
                }
            }
        };
        // The action timeout drops the future while the command runs.
        drop(running);
        let mut gone = false;
        for _ in 0..100 {
            // SAFETY: signal 0 only checks whether the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                gone = true;
                break;
            }
            // A killed child stays a zombie until reaped by init; /proc tells them apart.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state.split_whitespace().nth(2) == Some("Z") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the grandchild {pid} survived");
    }

    #[test]
    fn blocking_runs_report_exit_codes_and_time_out() {
        let out = run_blocking(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(5),
            &[],
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.combined(), "out\nerr");
        let err = run_blocking(&["sleep", "20"], Duration::from_millis(200), &[]).unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        assert!(run_blocking(&["no-such-program-mco"], Duration::from_secs(1), &[]).is_err());
    }

    #[tokio::test]
    async fn detached_children_run_on_their_own() {
        let mut child = spawn_detached(&["sh", "-c", "exit 7"], &[]).unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
        assert!(spawn_detached(&[], &[]).is_err());
    }

    #[test]
    fn programs_are_found_like_the_node_runs_them() {
        assert!(find_program("sh").is_some());
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(find_program("no-such-program-mco").is_none());
        let plain = tempfile::NamedTempFile::new().unwrap();
        let plain = plain.path().display().to_string();
        assert!(find_program(&plain).is_none(), "not executable");
        assert!(find_program("").is_none());
    }
}
