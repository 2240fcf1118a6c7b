//! A real `mco-web` gateway in front of a [`Fleet`]: its callers' mco keys issued by the
//! fleet's issuer, bearer tokens made with `mco-web token add` (as an operator would), the
//! fleet's own `client.toml` with a `[web]` table, on a free loopback port. Killed when
//! dropped. Not an HTTP client: tests bring their own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{die_with_parent, wait_for_port};
use crate::{bin_path, free_port, Fleet};

/// A running gateway.
pub struct WebGateway {
    child: Option<Child>,
    port: u16,
    tokens: HashMap<String, String>,
    dir: TempDir,
}

impl WebGateway {
    /// A gateway for `fleet` whose callers are `callers` (each with its own mco key).
    pub fn start(fleet: &Fleet, callers: &[&str]) -> WebGateway {
        WebGateway::start_with(fleet, callers, "")
    }

    /// Like [`WebGateway::start`], with extra lines in the `[web]` table.
    pub fn start_with(fleet: &Fleet, callers: &[&str], web_extra: &str) -> WebGateway {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let credentials = dir.path().join("credentials");
        std::fs::create_dir_all(&credentials).unwrap_or_else(|e| panic!("{e}"));
        for caller in callers {
            let (key, token) = fleet.keys.issue("client", caller, &[]);
            copy_private(&key, &credentials.join(format!("{caller}.key")));
            copy_private(&token, &credentials.join(format!("{caller}.token")));
        }
        let client = std::fs::read_to_string(fleet.client_config())
            .unwrap_or_else(|e| panic!("client.toml: {e}"));
        let config = dir.path().join("client.toml");
        std::fs::write(
            &config,
            format!(
                "{client}\n[web]\ncallers_file = {:?}\ncredentials_dir = {:?}\n{web_extra}\n",
                dir.path().join("callers.toml").display().to_string(),
                credentials.display().to_string()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut tokens = HashMap::new();
        for caller in callers {
            let out = Command::new(bin_path("mco-web"))
                .arg("--config")
                .arg(&config)
                .args(["token", "add", caller])
                .output()
                .unwrap_or_else(|e| panic!("mco-web token add: {e}"));
            assert!(
                out.status.success(),
                "mco-web token add {caller}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
            tokens.insert(caller.to_string(), token);
        }
        let mut gateway = WebGateway {
            child: None,
            port: free_port(),
            tokens,
            dir,
        };
        gateway.start_again();
        gateway
    }

    /// Starts it again after [`Self::stop`] (same port, callers and tokens).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the gateway is already running");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .ok();
        let mut command = Command::new(bin_path("mco-web"));
        command
            .arg("--config")
            .arg(self.config())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("serve")
            .env("MCO_WEB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mco-web: {e}"));
        let up = wait_for_port(self.port, Duration::from_secs(20));
        if !up {
            let _ = child.kill();
            panic!("mco-web did not listen:\n{}", self.log());
        }
        self.child = Some(child);
    }

    /// Stops it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bearer token of `caller`.
    pub fn token(&self, caller: &str) -> &str {
        self.tokens
            .get(caller)
            .unwrap_or_else(|| panic!("no caller {caller} on this gateway"))
    }

    /// The configuration file it reads (the fleet's `client.toml` and a `[web]` table).
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("client.toml")
    }

    /// The directory of its callers' mco keys and tokens.
    pub fn credentials_dir(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mco-web.log")
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for WebGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
}
