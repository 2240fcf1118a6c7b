//! [`SimulatedFleet`]: a real `mco-sim` process serving thousands of node identities through
//! mcod's pipeline, for tests at fleet scale.
//!
//! Not for: testing the daemon itself (see [`crate::Mcod`]); the simulator shares mcod's
//! pipeline, not its process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::bin_path;
use crate::process::{die_with_parent, terminate};

/// A running `mco-sim`, stopped when dropped.
pub struct SimulatedFleet {
    child: Option<Child>,
}

impl SimulatedFleet {
    /// Starts `count` identities (`sim-00000`, ...) on `brokers` (a cluster's servers: the
    /// simulator's connections are spread over them), trusting clients of the issuer whose
    /// key is `issuer_key`; returns once every identity is subscribed, or panics after
    /// `limit` with what the simulator said.
    pub fn start(brokers: &[String], count: usize, issuer_key: &Path, limit: Duration) -> Self {
        let mut command = Command::new(bin_path("mco-sim"));
        command
            .args([
                "--broker",
                &brokers.join(","),
                "--count",
                &count.to_string(),
            ])
            .args(["--connections", &(brokers.len() * 2).to_string()])
            .arg("--issuer-key")
            .arg(issuer_key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mco-sim: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready, said) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if ready.send(line).is_err() {
                    break;
                }
            }
        });
        match said.recv_timeout(limit) {
            Ok(line) if line.contains("ready") => SimulatedFleet { child: Some(child) },
            other => {
                let _ = child.kill();
                panic!("mco-sim with {count} identities was not ready within {limit:?}: {other:?}")
            }
        }
    }

    /// The simulator's resident memory, KiB.
    pub fn rss_kb(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        crate::rss_kb(pid)
    }
}

impl Drop for SimulatedFleet {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(10));
        }
    }
}
