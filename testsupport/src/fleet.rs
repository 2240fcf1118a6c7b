//! [`Fleet`]: a broker (one server, or a [`crate::NatsCluster`]), several daemons and a
//! client configuration for one test.
//!
//! Not for: setting up the broker (see [`crate::NatsServer`] and [`crate::NatsCluster`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::write;
use crate::{mco, Keys, Mcod, NatsServer, NodeSpec, Run};

/// What daemons and clients connect to.
pub trait Broker {
    /// Every URL a daemon or client is given, in order.
    fn urls(&self) -> Vec<String>;
}

impl Broker for NatsServer {
    fn urls(&self) -> Vec<String> {
        vec![self.url()]
    }
}

/// A broker, several daemons and a client configuration.
pub struct Fleet<B: Broker = NatsServer> {
    /// The broker.
    pub nats: B,
    /// The daemons.
    pub nodes: Vec<Mcod>,
    /// The issuer and tokens (the client's is `client/e2e.*`).
    pub keys: Keys,
    dir: TempDir,
}

impl Fleet<NatsServer> {
    /// Starts a broker and one mcod per spec, and waits until `mco ping` sees them all.
    pub fn start(specs: Vec<NodeSpec>) -> Fleet {
        Fleet::start_with_client_config(specs, "")
    }

    /// Like [`Fleet::start`], with extra TOML lines in the client configuration.
    pub fn start_with_client_config(specs: Vec<NodeSpec>, client_extra: &str) -> Fleet {
        Fleet::start_on(NatsServer::start(), specs, client_extra)
    }
}

impl<B: Broker> Fleet<B> {
    /// Starts the daemons against `nats`, with extra TOML lines at the end of the client
    /// configuration (so a `[table]` may follow).
    pub fn start_on(nats: B, specs: Vec<NodeSpec>, client_extra: &str) -> Fleet<B> {
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
        let brokers = nats.urls().join(",");
        let nodes = specs
            .into_iter()
            .map(|s| Mcod::start(s, &brokers, Some(&keys)))
            .collect();
        let (key, token) = keys.issue("client", "e2e", &[]);
        let quoted: Vec<String> = collectives.iter().map(|c| format!("{c:?}")).collect();
        // The fleet's discovery cache is its own, whoever runs `mco` with its configuration.
        let cache = if client_extra.contains("discovery_cache_dir") {
            String::new()
        } else {
            format!(
                "discovery_cache_dir = {:?}\n",
                dir.path().join("cache").display().to_string()
            )
        };
        write(
            &dir.path().join("client.toml"),
            &format!(
                "brokers = {:?}\ncollectives = [{}]\ndiscovery_timeout = 2\nkey_file = {:?}\ntoken_file = {:?}\nissuer_keys = [{:?}]\n{cache}{client_extra}\n",
                nats.urls(),
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

    /// Runs `script` with bash (`pipefail` set, so a pipeline fails if any of its commands
    /// does) against this fleet: `$MCO` is the real `mco`, configured for the fleet, with a
    /// 60 s limit.
    pub fn shell(&self, script: &str) -> Run {
        let started = Instant::now();
        let config = self.client_config();
        let mut command = std::process::Command::new("bash");
        command
            .args(["-o", "pipefail", "-c", script])
            .env("MCO_CONFIG", &config)
            .env("MCO", crate::bin_path("mco"))
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        crate::process::die_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
        crate::finish(child, started, Duration::from_secs(60))
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
