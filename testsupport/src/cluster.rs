//! [`NatsCluster`]: several real `nats-server`s joined by routes into one JetStream cluster,
//! each on free loopback ports with its own store, so a test can kill one and start it again.
//!
//! Not for: a single broker (see [`crate::NatsServer`]) or what runs on the cluster (see
//! [`crate::Fleet`], which takes a cluster as its broker).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fleet::Broker;
use crate::{free_port, NatsServer};

/// The cluster's name in the servers' configuration.
const CLUSTER_NAME: &str = "mco-test";

/// A JetStream cluster of real servers for one test.
pub struct NatsCluster {
    servers: Vec<NatsServer>,
    /// Each server's monitoring (HTTP) port, for who is connected where.
    monitor_ports: Vec<u16>,
}

impl NatsCluster {
    /// Starts `size` servers (`n1`, `n2`, ...) routed to each other, and waits until they
    /// have elected a JetStream metadata leader (until then no stream can be made).
    pub fn start(size: usize) -> NatsCluster {
        assert!(size >= 2, "a cluster has at least two servers");
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let monitor_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let servers = route_ports
            .iter()
            .zip(&monitor_ports)
            .enumerate()
            .map(|(i, (port, monitor))| {
                NatsServer::start_with_config(&format!(
                    "server_name: n{}\nhttp: \"127.0.0.1:{monitor}\"\ncluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{port}\n  routes: [{}]\n}}\n",
                    i + 1,
                    routes.join(", ")
                ))
            })
            .collect();
        let cluster = NatsCluster {
            servers,
            monitor_ports,
        };
        cluster.wait_for_leader(Duration::from_secs(30));
        cluster
    }

    /// Waits until some running server's log says a JetStream metadata leader was elected.
    pub fn wait_for_leader(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let elected = self.servers.iter().any(|s| {
                let log = s.log();
                log.contains("new metadata leader")
                    || log.contains("Self is new JetStream cluster metadata leader")
            });
            if elected {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the cluster elected no JetStream leader within {limit:?}:\n{}",
            self.logs()
        );
    }

    /// Server `index` (0-based; its name is `n<index+1>`).
    pub fn server(&mut self, index: usize) -> &mut NatsServer {
        &mut self.servers[index]
    }

    /// How many servers the cluster has.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Always false: a cluster has at least two servers.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The names of the clients connected to server `index` now (empty when it is down).
    pub fn clients_on(&self, index: usize) -> Vec<String> {
        let Some(connz) = http_get_json(self.monitor_ports[index], "/connz?limit=100000") else {
            return Vec::new();
        };
        connz["connections"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Which server (index) the client called `name` is connected to, if any.
    pub fn server_of(&self, name: &str) -> Option<usize> {
        (0..self.servers.len()).find(|&i| self.clients_on(i).iter().any(|n| n == name))
    }

    /// Every server's log, each under its name.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("--- n{}:\n{}", i + 1, s.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Broker for NatsCluster {
    fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }
}

/// The JSON a monitoring endpoint answers, or `None` when the server is down.
fn http_get_json(port: u16, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let body = answer.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}
