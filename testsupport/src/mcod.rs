//! [`Mcod`]: a real `mcod` process with its own config, facts and classes files; [`NodeSpec`]
//! says what it is, [`Keys`] signs its tokens.
//!
//! Not for: running the `mco` client (see [`crate::run`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::bin_path;
use crate::process::{die_with_parent, terminate, wait_with_limit, write};

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
    /// A command that runs it, the daemon's path and arguments following (`ip netns exec
    /// NAME`, from [`crate::Netns::prefix`]); empty to run it directly.
    pub command_prefix: Vec<String>,
    /// Extra environment variables for the process (e.g. libfaketime's `LD_PRELOAD` and
    /// `FAKETIME`, to run it with its clock off).
    pub env: Vec<(String, String)>,
    /// The broker URL this node connects to instead of the fleet's (a proxy in front of
    /// it, such as a [`crate::DelayProxy`]).
    pub broker: Option<String>,
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
            command_prefix: Vec::new(),
            env: Vec::new(),
            broker: None,
        }
    }

    /// The same node, connecting through `url` instead of the fleet's brokers.
    pub fn through(mut self, url: &str) -> NodeSpec {
        self.broker = Some(url.to_string());
        self
    }

    /// The same node, run with `key=value` in its environment.
    pub fn env(mut self, key: &str, value: &str) -> NodeSpec {
        self.env.push((key.into(), value.into()));
        self
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

    /// The key and token files `issue` wrote for `name` in `role`.
    pub fn issued(&self, role: &str, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(role);
        (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.token")),
        )
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
        self.issued(role, name)
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
    /// Writes the node's files and starts it against `broker` (URLs separated by commas), with a server token from
    /// `keys`, or insecure (`insecure = true`) without.
    pub fn start(spec: NodeSpec, broker: &str, keys: Option<&Keys>) -> Mcod {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let broker = spec.broker.clone().unwrap_or_else(|| broker.to_string());
        let mut mcod = Mcod {
            child: None,
            spec,
            dir,
            broker,
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
        // Text, which the tests read, unless the node's own lines choose a format.
        let log_format = if self.spec.extra_config.contains("log_format") {
            ""
        } else {
            "log_format = \"text\"\n"
        };
        let config = format!(
            "identity = {:?}\nbrokers = {:?}\ncollectives = [{}]\nfacts_files = [\"facts.yaml\"]\nclasses_file = \"classes.txt\"\nfacts_refresh_seconds = 1\nstate_dir = \"state\"\nlog_level = \"debug\"\n{log_format}shutdown_grace_seconds = 5\n{security}{}\n",
            self.spec.identity,
            self.broker.split(',').collect::<Vec<_>>(),
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
        let mut command = match self.spec.command_prefix.split_first() {
            Some((program, args)) => {
                let mut wrapped = Command::new(program);
                wrapped.args(args).arg(bin_path("mcod"));
                wrapped
            }
            None => Command::new(bin_path("mcod")),
        };
        command
            .arg("--config")
            .arg(self.config_path())
            .env_remove("RUST_LOG")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
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
        crate::rss_kb(self.pid()?)
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
