//! [`NatsServer`]: a real `nats-server` for one test, on a free loopback port with a
//! temporary store, that can be stopped and started again on the same port and store.
//!
//! Not for: what runs on it (see [`crate::Fleet`]).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{die_with_parent, terminate, wait_for_port, write};
use crate::{free_port, nats_server_binary};

/// A real nats-server for one test.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    /// The address it listens on (127.0.0.1 unless a test needs another).
    address: String,
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

    /// Starts a server with JetStream listening on every address, not only loopback, when the
    /// test's clients are elsewhere (in a [`crate::Netns`]): `0.0.0.0`, the only way
    /// nats-server listens on more than one address.
    pub fn start_listening_on_all_addresses() -> NatsServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        NatsServer::start_at("0.0.0.0", dir, true, &[])
    }

    fn start_in(dir: TempDir, jetstream: bool, args: &[String]) -> NatsServer {
        NatsServer::start_at("127.0.0.1", dir, jetstream, args)
    }

    fn start_at(address: &str, dir: TempDir, jetstream: bool, args: &[String]) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            address: address.to_string(),
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
        command.args(["-a", &self.address, "-p", &self.port.to_string()]);
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

    /// `nats://<host>:<port>`: its URL for clients that reach it at `host` (see
    /// [`Self::start_listening_on_all_addresses`]).
    pub fn url_at(&self, host: &str) -> String {
        format!("nats://{host}:{}", self.port)
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
