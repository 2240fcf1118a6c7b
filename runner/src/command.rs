//! [`Command`]: one child program, run by the crate's rules (see the crate doc).
//!
//! Not for: the external protocol's files (`external.rs`) or the group bookkeeping
//! (`group.rs`).

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::group::{leader_exited, ProcessGroup};

/// How much of each output stream is kept unless the caller says otherwise.
pub const DEFAULT_OUTPUT_LIMIT: usize = 256 * 1024;
/// How long a group has between SIGTERM and SIGKILL at the deadline unless the caller says
/// otherwise: enough for a tool to remove its lock files, short against any action timeout.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(1);
/// How long output is still read after the child exited: its own last writes are in the
/// pipe by then, and a daemon it left running may hold the pipe open for ever.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);
/// The deadline of a command whose caller set none.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// One of the child's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// What happens to output beyond a stream's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Keep the first bytes up to the cap, read and drop the rest, mark the stream truncated
    /// (a tool's chatter: the start is what an operator needs).
    #[default]
    Truncate,
    /// Kill the group as soon as the cap is passed and fail with
    /// [`RunError::OutputTooLarge`] (a protocol answer: a cut one is no answer).
    Fail,
}

/// Why a command produced no [`Output`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program could not be started (missing, not executable, empty argv).
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran past its deadline; its group was terminated, then killed.
    #[error("{program} did not finish within {limit:?} and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The deadline it was given.
        limit: Duration,
    },
    /// It wrote more than its cap to a stream under [`Overflow::Fail`], and was killed.
    #[error("{program} wrote more than {limit} bytes to {stream} and was killed")]
    OutputTooLarge {
        /// The program.
        program: String,
        /// The stream.
        stream: Stream,
        /// The cap, in bytes.
        limit: usize,
    },
    /// Waiting for it failed (its group was killed).
    #[error("waiting for {program}: {source}")]
    Wait {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Standard output, at most its cap.
    pub stdout: Vec<u8>,
    /// Standard error, at most its cap.
    pub stderr: Vec<u8>,
    /// Whether stdout was longer than its cap (and cut).
    pub stdout_truncated: bool,
    /// Whether stderr was longer than its cap (and cut).
    pub stderr_truncated: bool,
}

impl Output {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// A program to run: an argv, an explicit environment, optional stdin bytes, output caps and
/// a deadline. Built with its methods, run with [`Command::run`] (or
/// [`Command::run_blocking`], [`Command::spawn_detached`]).
#[derive(Debug, Clone)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    stdout_limit: usize,
    stderr_limit: usize,
    overflow: Overflow,
    deadline: Duration,
    grace: Duration,
    kill_group_after_exit: bool,
}

impl Command {
    /// A command running `program` (a path, or a name looked up in the child's `PATH`).
    pub fn new(program: impl Into<PathBuf>) -> Command {
        Command {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            stdin: None,
            stdout_limit: DEFAULT_OUTPUT_LIMIT,
            stderr_limit: DEFAULT_OUTPUT_LIMIT,
            overflow: Overflow::Truncate,
            deadline: DEFAULT_DEADLINE,
            grace: DEFAULT_GRACE,
            kill_group_after_exit: true,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets one variable of the child's otherwise empty environment (`PATH` included, which
    /// otherwise is the daemon's or [`crate::DEFAULT_PATH`]).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Command {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// The child's working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Command {
        self.current_dir = Some(dir.into());
        self
    }

    /// Bytes written to the child's stdin, which is then closed (otherwise `/dev/null`).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Command {
        self.stdin = Some(bytes.into());
        self
    }

    /// How many bytes of stdout are kept ([`DEFAULT_OUTPUT_LIMIT`] unless set).
    pub fn stdout_limit(mut self, bytes: usize) -> Command {
        self.stdout_limit = bytes;
        self
    }

    /// How many bytes of stderr are kept ([`DEFAULT_OUTPUT_LIMIT`] unless set).
    pub fn stderr_limit(mut self, bytes: usize) -> Command {
        self.stderr_limit = bytes;
        self
    }

    /// What happens beyond a cap ([`Overflow::Truncate`] unless set).
    pub fn overflow(mut self, overflow: Overflow) -> Command {
        self.overflow = overflow;
        self
    }

    /// How long the child may run (60 s unless set).
    pub fn deadline(mut self, deadline: Duration) -> Command {
        self.deadline = deadline;
        self
    }

    /// How long between SIGTERM and SIGKILL at the deadline ([`DEFAULT_GRACE`] unless set).
    pub fn grace(mut self, grace: Duration) -> Command {
        self.grace = grace;
        self
    }

    /// Leaves what the child started running after the child itself exited, for commands
    /// whose job is to start a daemon (an init script's `start`). The deadline and
    /// cancellation still kill the whole group.
    pub fn leave_group_after_exit(mut self) -> Command {
        self.kill_group_after_exit = false;
        self
    }

    /// The program as error messages name it.
    fn program_name(&self) -> String {
        self.program.display().to_string()
    }

    /// The std command by the crate's rules; stdio is the caller's to set.
    fn prepare(&self) -> Result<std::process::Command, RunError> {
        if self.program.as_os_str().is_empty() {
            return Err(RunError::Spawn {
                program: String::new(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
            });
        }
        let mut command = std::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            // A daemon started with an empty environment still finds the system tools.
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| crate::DEFAULT_PATH.into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        Ok(command)
    }

    fn spawn_error(&self) -> impl Fn(std::io::Error) -> RunError + '_ {
        move |source| RunError::Spawn {
            program: self.program_name(),
            source,
        }
    }

    /// Runs the command to its end, its deadline or its output cap (under
    /// [`Overflow::Fail`]). Dropping the future kills the child's whole group.
    pub async fn run(self) -> Result<Output, RunError> {
        let mut std_command = self.prepare()?;
        std_command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut command = tokio::process::Command::from(std_command);
        // The leader too dies with a dropped future; the group guard below takes the rest.
        command.kill_on_drop(true);
        let child = command.spawn().map_err(self.spawn_error())?;
        let mut running = Running {
            group: ProcessGroup::led_by(child.id()),
            child,
        };
        let leader = running.group.leader();
        let stdin = running.child.stdin.take();
        let stdout = running.child.stdout.take();
        let stderr = running.child.stderr.take();
        let input = self.stdin.clone().unwrap_or_default();

        let mut out = Captured::default();
        let mut err = Captured::default();
        let mut io = Box::pin(async {
            let feed = async move {
                if let Some(mut pipe) = stdin {
                    // A child that exits without reading its input is not our error: its
                    // exit status and reply say what happened.
                    let _ = pipe.write_all(&input).await;
                }
                Ok::<(), Stream>(())
            };
            tokio::try_join!(
                feed,
                read_capped(
                    stdout,
                    &mut out,
                    self.stdout_limit,
                    self.overflow,
                    Stream::Stdout
                ),
                read_capped(
                    stderr,
                    &mut err,
                    self.stderr_limit,
                    self.overflow,
                    Stream::Stderr
                ),
            )
            .map(|_| ())
        });
        let mut exited = Box::pin(wait_for_exit(leader));
        let deadline = tokio::time::sleep(self.deadline);
        tokio::pin!(deadline);
        let mut io_done = false;
        let mut ending = loop {
            tokio::select! {
                result = &mut exited => break match result {
                    Ok(()) => Ending::Exited,
                    Err(source) => Ending::WaitFailed(source),
                },
                () = &mut deadline => break Ending::Deadline,
                result = &mut io, if !io_done => match result {
                    Ok(()) => io_done = true,
                    Err(stream) => break Ending::Overflow(stream),
                },
            }
        };
        drop(exited);
        match &ending {
            Ending::Exited => {
                if self.kill_group_after_exit {
                    running.group.kill();
                }
                if !io_done {
                    if let Ok(Err(stream)) = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut io).await {
                        ending = Ending::Overflow(stream);
                    }
                }
            }
            Ending::Deadline => {
                running.group.signal(libc::SIGTERM);
                let _ = tokio::time::timeout(self.grace, wait_for_exit(leader)).await;
                running.group.kill();
            }
            Ending::Overflow(_) | Ending::WaitFailed(_) => running.group.kill(),
        }
        drop(io);
        // Reaping frees the group id, so nothing may signal the group after this.
        running.group.release();
        let status = running.child.wait().await;
        self.finish(ending, status, out, err)
    }

    /// [`Command::run`] on the calling thread, for the few answers that must be given
    /// synchronously (data plugins used by filters). Output goes to unnamed temporary files
    /// rather than pipes, so a daemon that inherits them cannot make the caller wait; their
    /// size is checked as the child runs.
    pub fn run_blocking(self) -> Result<Output, RunError> {
        let spawn_error = self.spawn_error();
        let mut command = self.prepare()?;
        let stdout = tempfile::tempfile().map_err(&spawn_error)?;
        let stderr = tempfile::tempfile().map_err(&spawn_error)?;
        command
            .stdout(stdout.try_clone().map_err(&spawn_error)?)
            .stderr(stderr.try_clone().map_err(&spawn_error)?);
        match &self.stdin {
            Some(bytes) => {
                use std::io::{Seek, Write};
                let mut input = tempfile::tempfile().map_err(&spawn_error)?;
                input.write_all(bytes).map_err(&spawn_error)?;
                input.rewind().map_err(&spawn_error)?;
                command.stdin(input);
            }
            None => {
                command.stdin(Stdio::null());
            }
        }
        let mut child = command.spawn().map_err(&spawn_error)?;
        let mut group = ProcessGroup::led_by(Some(child.id()));
        let leader = group.leader();
        let started = Instant::now();
        let too_large = || -> Option<Stream> {
            if self.overflow != Overflow::Fail {
                return None;
            }
            let over = |file: &std::fs::File, limit: usize| {
                file.metadata()
                    .is_ok_and(|m| m.len() > u64::try_from(limit).unwrap_or(u64::MAX))
            };
            if over(&stdout, self.stdout_limit) {
                Some(Stream::Stdout)
            } else if over(&stderr, self.stderr_limit) {
                Some(Stream::Stderr)
            } else {
                None
            }
        };
        let ending = loop {
            match leader.map_or(Ok(true), leader_exited) {
                Ok(true) => break Ending::Exited,
                Ok(false) => {}
                Err(source) => break Ending::WaitFailed(source),
            }
            if let Some(stream) = too_large() {
                break Ending::Overflow(stream);
            }
            if started.elapsed() >= self.deadline {
                break Ending::Deadline;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match &ending {
            Ending::Exited => {
                if self.kill_group_after_exit {
                    group.kill();
                }
            }
            Ending::Deadline => {
                group.signal(libc::SIGTERM);
                let graced = Instant::now();
                while graced.elapsed() < self.grace
                    && !leader.map_or(Ok(true), leader_exited).unwrap_or(true)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                group.kill();
            }
            Ending::Overflow(_) | Ending::WaitFailed(_) => group.kill(),
        }
        group.release();
        let status = child.wait();
        let out = read_file_capped(stdout, self.stdout_limit);
        let err = read_file_capped(stderr, self.stderr_limit);
        let ending = match ending {
            // The last writes may have passed the cap after the last check.
            Ending::Exited if self.overflow == Overflow::Fail && out.truncated => {
                Ending::Overflow(Stream::Stdout)
            }
            Ending::Exited if self.overflow == Overflow::Fail && err.truncated => {
                Ending::Overflow(Stream::Stderr)
            }
            other => other,
        };
        self.finish(ending, status, out, err)
    }

    /// Starts the command in the background in its own process group with its output
    /// discarded, and returns at once. The caller owns the child (to learn when it ends); it
    /// is not killed when dropped, and no deadline applies, so it may outlive its caller (a
    /// Puppet run started by an action).
    pub fn spawn_detached(self) -> Result<tokio::process::Child, RunError> {
        let mut command = self.prepare()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        tokio::process::Command::from(command)
            .spawn()
            .map_err(self.spawn_error())
    }

    fn finish(
        &self,
        ending: Ending,
        status: std::io::Result<ExitStatus>,
        out: Captured,
        err: Captured,
    ) -> Result<Output, RunError> {
        let program = self.program_name();
        match ending {
            Ending::Exited => {}
            Ending::Deadline => {
                return Err(RunError::Timeout {
                    program,
                    limit: self.deadline,
                })
            }
            Ending::Overflow(stream) => {
                let limit = match stream {
                    Stream::Stdout => self.stdout_limit,
                    Stream::Stderr => self.stderr_limit,
                };
                return Err(RunError::OutputTooLarge {
                    program,
                    stream,
                    limit,
                });
            }
            Ending::WaitFailed(source) => return Err(RunError::Wait { program, source }),
        }
        let status = status.map_err(|source| RunError::Wait { program, source })?;
        Ok(Output {
            status,
            stdout: out.bytes,
            stderr: err.bytes,
            stdout_truncated: out.truncated,
            stderr_truncated: err.truncated,
        })
    }
}

/// A spawned child and its group. Fields drop in order, so an abandoned run kills the group
/// while the leader is still unreaped, before tokio's `kill_on_drop` takes the leader.
struct Running {
    group: ProcessGroup,
    child: tokio::process::Child,
}

/// How the wait for a child ended.
#[derive(Debug)]
enum Ending {
    Exited,
    Deadline,
    Overflow(Stream),
    WaitFailed(std::io::Error),
}

/// A stream's kept bytes.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Waits until the child `leader` has exited, leaving it unreaped. SIGCHLD wakes it; a
/// short poll covers a missed signal (or a runtime without signal handling).
async fn wait_for_exit(leader: Option<libc::pid_t>) -> std::io::Result<()> {
    let Some(pid) = leader else {
        return Ok(());
    };
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    loop {
        if leader_exited(pid)? {
            return Ok(());
        }
        match &mut sigchld {
            Some(signals) => {
                let _ = tokio::time::timeout(Duration::from_millis(100), signals.recv()).await;
            }
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Reads `stream` into `into`, keeping at most `limit` bytes. Under [`Overflow::Fail`] it
/// stops with `Err(which)` as soon as the cap is passed.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    into: &mut Captured,
    limit: usize,
    overflow: Overflow,
    which: Stream,
) -> Result<(), Stream> {
    let Some(mut stream) = stream else {
        return Ok(());
    };
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => {
                let room = limit.saturating_sub(into.bytes.len());
                into.bytes.extend_from_slice(&buffer[..n.min(room)]);
                if n > room {
                    into.truncated = true;
                    if overflow == Overflow::Fail {
                        return Err(which);
                    }
                }
            }
        }
    }
}

fn read_file_capped(file: std::fs::File, limit: usize) -> Captured {
    use std::io::{Read, Seek};
    let mut file = file;
    let mut bytes = Vec::new();
    let _ = file.rewind();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let _ = file.take(cap).read_to_end(&mut bytes);
    let truncated = bytes.len() > limit;
    bytes.truncate(limit);
    Captured { bytes, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        Command::new("sh").arg("-c").arg(script)
    }

    /// Whether `pid` is gone (or a zombie nobody reaped yet: dead all the same).
    fn gone(pid: i32) -> bool {
        // SAFETY: signal 0 only checks whether the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return true;
        }
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        state
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            == Some("Z")
    }

    async fn eventually_gone(pid: i32) -> bool {
        for _ in 0..100 {
            if gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn pid_in(path: &std::path::Path) -> i32 {
        for _ in 0..250 {
            if let Ok(pid) = std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no pid in {}", path.display());
    }

    #[tokio::test]
    async fn runs_an_argv_with_only_the_environment_it_is_given() {
        let out = Command::new("echo")
            .args(["a;b", "$(id)"])
            .run()
            .await
            .unwrap();
        assert!(out.success());
        // The arguments reached echo verbatim: no shell interpreted them.
        assert_eq!(out.stdout, b"a;b $(id)\n");
        std::env::set_var("MCO_RUNNER_LEAK_TEST", "leaked");
        let out = sh("echo \"[$MCO_RUNNER_LEAK_TEST][$X]\"; env | grep -v '^PWD=\\|^SHLVL=\\|^_=' | cut -d= -f1 | sort | tr '\\n' ' '")
            .env("X", "y")
            .run()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("[][y]\n"), "{text}");
        assert_eq!(text.lines().nth(1), Some("PATH X "), "{text}");
        let out = sh("cat; echo; read -r line || echo eof")
            .stdin("given")
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"given\neof\n");
        let out = sh("read -r line || echo no-stdin").run().await.unwrap();
        assert_eq!(out.stdout, b"no-stdin\n");
        let out = sh("echo err >&2; exit 4").run().await.unwrap();
        assert_eq!(
            (out.code(), out.stderr.as_slice()),
            (Some(4), &b"err\n"[..])
        );
    }

    #[tokio::test]
    async fn missing_and_empty_programs_are_spawn_errors() {
        let err = Command::new("no-such-program-mco").run().await.unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("could not run no-such-program-mco"),
            "{err}"
        );
        assert!(matches!(
            Command::new("").run().await,
            Err(RunError::Spawn { .. })
        ));
        assert!(matches!(
            Command::new("").run_blocking(),
            Err(RunError::Spawn { .. })
        ));
    }

    #[tokio::test]
    async fn the_deadline_kills_the_child_and_its_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let started = Instant::now();
        let err = sh(&script)
            .deadline(Duration::from_millis(300))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("did not finish within 300ms and was killed"));
        assert!(started.elapsed() < Duration::from_secs(10));
        let grandchild = pid_in(&marker).await;
        assert!(
            eventually_gone(grandchild).await,
            "grandchild {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn the_deadline_sends_sigterm_first_and_sigkill_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let termed = dir.path().join("termed");
        // Catches SIGTERM, notes it, and keeps running: only SIGKILL ends it.
        let script = format!(
            "trap 'touch {}' TERM; while :; do sleep 0.05; done",
            termed.display()
        );
        let started = Instant::now();
        let err = sh(&script)
            .deadline(Duration::from_millis(200))
            .grace(Duration::from_millis(500))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        let took = started.elapsed();
        assert!(termed.exists(), "no SIGTERM before the SIGKILL");
        assert!(took >= Duration::from_millis(650), "no grace: {took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test]
    async fn output_past_the_cap_fails_and_kills_or_is_truncated() {
        // 100 MB, far more than the cap: memory must not follow.
        let flood = "head -c 100000000 /dev/zero; sleep 30";
        let started = Instant::now();
        let err = sh(flood)
            .stdout_limit(64 * 1024)
            .overflow(Overflow::Fail)
            .deadline(Duration::from_secs(30))
            .run()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RunError::OutputTooLarge {
                    stream: Stream::Stdout,
                    limit: 65536,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("wrote more than 65536 bytes to stdout"),
            "{err}"
        );
        // Killed at the cap, not at the deadline.
        assert!(started.elapsed() < Duration::from_secs(10));
        let out = sh("head -c 1000000 /dev/zero | tr '\\0' x; echo e >&2")
            .stdout_limit(1000)
            .deadline(Duration::from_secs(30))
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.stdout_truncated && !out.stderr_truncated);
        assert_eq!(out.stderr, b"e\n");
        let err = sh("head -c 5000 /dev/zero >&2")
            .stderr_limit(100)
            .overflow(Overflow::Fail)
            .run()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RunError::OutputTooLarge {
                    stream: Stream::Stderr,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_dropped_run_takes_its_children_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let mut running = Box::pin(sh(&script).run());
        let grandchild = tokio::select! {
            done = &mut running => panic!("ended early: {done:?}"),
            pid = pid_in(&marker) => pid,
        };
        // An action timeout drops the future while the command runs.
        drop(running);
        assert!(
            eventually_gone(grandchild).await,
            "grandchild {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn leftovers_die_with_the_child_unless_it_starts_a_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("left.pid");
        let script = format!("sleep 30 >/dev/null 2>&1 & echo $! > {}", marker.display());
        let out = sh(&script).run().await.unwrap();
        assert!(out.success());
        let left = pid_in(&marker).await;
        assert!(eventually_gone(left).await, "leftover {left} survived");

        std::fs::remove_file(&marker).unwrap();
        let out = sh(&script).leave_group_after_exit().run().await.unwrap();
        assert!(out.success());
        let daemon = pid_in(&marker).await;
        assert!(!gone(daemon), "the daemon was killed");
        // SAFETY: kill(2) on the test's own leftover process.
        unsafe {
            libc::kill(daemon, libc::SIGKILL);
        }
    }

    #[tokio::test]
    async fn a_daemon_holding_the_pipes_does_not_hold_the_caller() {
        let started = Instant::now();
        let out = sh("echo started; sleep 30 &")
            .leave_group_after_exit()
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"started\n");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn blocking_runs_report_exit_codes_caps_and_time_out() {
        let out = sh("echo out; cat; echo err >&2; exit 3")
            .stdin("in\n")
            .run_blocking()
            .unwrap();
        assert_eq!(out.code(), Some(3));
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"out\nin\n"[..], &b"err\n"[..])
        );
        let started = Instant::now();
        let err = Command::new("sleep")
            .arg("20")
            .deadline(Duration::from_millis(200))
            .run_blocking()
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let out = sh("head -c 5000 /dev/zero")
            .stdout_limit(100)
            .run_blocking()
            .unwrap();
        assert!(out.stdout.len() == 100 && out.stdout_truncated);
        let err = sh("head -c 100000000 /dev/zero; sleep 30")
            .stdout_limit(100)
            .overflow(Overflow::Fail)
            .run_blocking()
            .unwrap_err();
        assert!(matches!(err, RunError::OutputTooLarge { .. }), "{err}");
    }

    #[test]
    fn a_blocking_run_kills_the_group_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let err = sh(&script)
            .deadline(Duration::from_millis(300))
            .run_blocking()
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut dead = false;
        for _ in 0..100 {
            dead = gone(pid);
            if dead {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dead, "grandchild {pid} survived");
    }

    #[tokio::test]
    async fn detached_children_run_on_their_own() {
        let mut child = sh("exit 7").spawn_detached().unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
        assert!(Command::new("").spawn_detached().is_err());
    }
}
