//! Running system tools for agents: an argv (never a shell), a time limit that kills the
//! whole process group, no stdin, a non-interactive environment, and captured output capped
//! in size so a chatty tool cannot exhaust memory.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

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

/// Why a command did not produce output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The program could not be started (not installed, not executable).
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran longer than allowed and was killed.
    #[error("{program} did not finish within {limit:?} and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        limit: Duration,
    },
    /// Waiting for it failed.
    #[error("waiting for {program}: {source}")]
    Wait {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `argv` with a time limit and extra environment variables.
pub async fn run(
    argv: &[&str],
    limit: Duration,
    env: &[(&str, &str)],
) -> Result<CommandOutput, CommandError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(CommandError::Spawn {
            program: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Tools parse the same in every locale, and package managers never prompt.
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        .process_group(0)
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().map_err(|source| CommandError::Spawn {
        program: program.to_string(),
        source,
    })?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    let stdout = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.map_err(|source| CommandError::Wait {
            program: program.to_string(),
            source,
        })?,
        Err(_) => {
            kill_group(pid);
            let _ = child.wait().await;
            return Err(CommandError::Timeout {
                program: program.to_string(),
                limit,
            });
        }
    };
    // Daemonising children (an init script's daemon) may keep the pipes open; the output we
    // need is what the command itself wrote, so stop reading shortly after it exits.
    let collect = |task: Option<tokio::task::JoinHandle<String>>| async move {
        match task {
            Some(task) => tokio::time::timeout(Duration::from_millis(500), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    Ok(CommandOutput {
        code: status.code(),
        stdout: collect(stdout).await,
        stderr: collect(stderr).await,
    })
}

fn kill_group(pid: Option<i32>) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) on the process group this module created for the child; no memory
        // is shared with it.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

async fn read_capped(mut stream: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    let mut truncated = false;
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if truncated {
        text.push_str("\n[output truncated]");
    }
    text
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
}
