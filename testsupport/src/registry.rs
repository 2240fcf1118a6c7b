//! [`RegistryService`]: a real `mcod registry` process storing a fleet's registrations.
//!
//! Not for: the database it writes to (see [`crate::postgres`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bin_path;
use crate::process::{die_with_parent, terminate};

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
            // Text, which the tests read, whatever the node's configuration says.
            .args(["--log-level", "debug", "--log-format", "text"])
            .args(["registry", "--db", &self.db])
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

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
