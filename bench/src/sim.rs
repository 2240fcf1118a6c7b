//! The fleet simulator: many node identities in one process, each with its own facts,
//! classes, signing key and server token, its own replay memory and counters, and its own
//! NATS subscriptions (the broadcast subject of every agent it serves and its direct subject,
//! in every collective), answering through the same request pipeline as `mcod`
//! ([`mco_server::Node::handle`]: verification, collective/TTL/replay checks, filters,
//! policies, DDL validation, the built-in agents, signed replies).
//!
//! It is a load generator for benchmarks and scale tests, not a node: what it shares between
//! identities is what a fleet would not share, on purpose, to fit 10,000 identities on one
//! machine:
//!
//! - a few NATS connections (identities are spread over them); the broker still delivers a
//!   broadcast once per identity, because each identity has its own subscription;
//! - the agent registry (the built-in `discovery` and `rpcutil` agents, which hold no
//!   per-node state);
//! - one tokio runtime;
//! - one copy of each collective's name, which every request is compared with (a real
//!   node's own copy is always in its caches; 10,000 copies would be a cache miss each).
//!
//! Direct requests arrive on the plain direct subject (`<collective>.node.<identity>`), not
//! through the JetStream work queue: 10,000 durable consumers are broker state, not node
//! work, and the benchmark measures the queue against a real `mcod` instead. Clients talking
//! to the simulator use `direct_queue = false`. There is no audit log, no replay journal on
//! disk and no fact files: facts are generated (see [`facts_for`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::StreamExt;
use mco_agents::Agent;
use mco_server::config::{parse, Settings};
use mco_server::facts::FactStore;
use mco_server::pipeline::Route;
use mco_server::policy::PolicySet;
use mco_server::security::Security;
use mco_server::Node;
use mco_spec::message::now_millis;
use mco_spec::security::{Credentials, Trust};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::keys::{derived_key, Issuer};

/// Why a simulated fleet could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The generated configuration of an identity was refused (a bad prefix or collective).
    #[error("identity {identity}: {reason}")]
    Config {
        /// The identity.
        identity: String,
        /// Why.
        reason: String,
    },
    /// The policy directory could not be loaded.
    #[error(transparent)]
    Policy(#[from] mco_server::policy::PolicyError),
    /// The broker could not be reached.
    #[error("cannot connect to {broker}: {reason}")]
    Connect {
        /// The broker URL.
        broker: String,
        /// Why.
        reason: String,
    },
    /// A subscription could not be made.
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// What fleet to simulate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// How many identities.
    pub count: usize,
    /// Identities are `<prefix>-<index>` with the index zero-padded to five digits.
    pub prefix: String,
    /// Collectives every identity belongs to (the first is the main one).
    pub collectives: Vec<String>,
    /// How many NATS connections the identities share.
    pub connections: usize,
    /// Sign replies and verify requests with tokens from this issuer; `None` runs insecure
    /// (a benchmark-only setting: unsigned requests accepted, replies unsigned).
    pub issuer: Option<Issuer>,
    /// Action policies every identity applies (`mcod`'s `policy_dir`).
    pub policy_dir: Option<PathBuf>,
}

impl FleetSpec {
    /// `count` identities `sim-00000…` in collective `mco` over 4 connections, signed by
    /// `issuer` (or insecure without one).
    pub fn new(count: usize, issuer: Option<Issuer>) -> FleetSpec {
        FleetSpec {
            count,
            prefix: "sim".into(),
            collectives: vec!["mco".into()],
            connections: 4,
            issuer,
            policy_dir: None,
        }
    }

    /// The identity with this index.
    pub fn identity(&self, index: usize) -> String {
        format!("{}-{index:05}", self.prefix)
    }

    /// Every identity, in index order.
    pub fn identities(&self) -> Vec<String> {
        (0..self.count).map(|i| self.identity(i)).collect()
    }
}

/// The facts of identity number `index`: a few shapes filters can select on, spread over
/// the fleet (`country` cycles uk/de/fr/us, `role` web/db, `rack` groups of 40).
pub fn facts_for(index: usize) -> Value {
    const COUNTRIES: [&str; 4] = ["uk", "de", "fr", "us"];
    json!({
        "country": COUNTRIES[index % COUNTRIES.len()],
        "role": if index % 2 == 0 { "web" } else { "db" },
        "index": index,
        "rack": index / 40,
        "os": {"family": "debian", "release": "12"},
        "simulated": true,
    })
}

/// The classes of identity number `index`.
fn classes_for(index: usize) -> Vec<String> {
    let role = if index % 2 == 0 {
        "role::web"
    } else {
        "role::db"
    };
    vec![role.to_string(), "profile::base".to_string()]
}

/// Request ids each identity remembers (mcod's `replay_cache_size`).
pub const SIM_REPLAY_CACHE: usize = 1_000_000;

/// Builds the nodes of `spec` (no broker involved): settings, facts, keys and tokens.
pub fn build_nodes(spec: &FleetSpec, broker: &str) -> Result<Vec<Arc<Node>>, SimError> {
    let agents: Vec<Arc<dyn Agent>> = mco_agents::registry::builtin_agents();
    let policies = match &spec.policy_dir {
        Some(dir) => Some(PolicySet::load_dir(dir, false)?),
        None => None,
    };
    let collectives: Vec<String> = spec.collectives.iter().map(|c| format!("{c:?}")).collect();
    // The key and token paths are placeholders: the simulator makes keys in memory.
    let security_lines = if spec.issuer.is_some() {
        "issuer_keys = [\"(simulated)\"]\nkey_file = \"(simulated)\"\ntoken_file = \"(simulated)\"\n"
    } else {
        "insecure = true\n"
    };
    // A load phase sends one identity over 100,000 requests (mcod's default replay memory)
    // within their TTL, all from one caller; a full replay memory (or caller share) refuses
    // requests, which would measure the guard, not the pipeline.
    let base = format!(
        "identity = \"placeholder\"\nbrokers = {:?}\ncollectives = [{}]\nreplay_cache_size = {SIM_REPLAY_CACHE}\nreplay_caller_share = {SIM_REPLAY_CACHE}\n{security_lines}",
        broker.split(',').map(str::trim).collect::<Vec<_>>(),
        collectives.join(", ")
    );
    let config = parse(&base, "(simulated)").map_err(|e| SimError::Config {
        identity: spec.prefix.clone(),
        reason: e.to_string(),
    })?;
    let mut nodes = Vec::with_capacity(spec.count);
    for index in 0..spec.count {
        let identity = spec.identity(index);
        let mut config = config.clone();
        config.identity = Some(identity.clone());
        let settings =
            Settings::resolve(config, Path::new("/"), None, "(simulated)").map_err(|e| {
                SimError::Config {
                    identity: identity.clone(),
                    reason: e.to_string(),
                }
            })?;
        let mut security = Security::insecure(&settings);
        if let Some(issuer) = &spec.issuer {
            security.trust = Some(Trust {
                issuers: vec![issuer.public()],
                clock_skew_secs: settings.clock_skew_seconds,
            });
            security.credentials =
                Some(issuer.server(&identity, &derived_key(issuer, "node", identity.as_bytes())));
        }
        security.set_policies(policies.clone());
        let facts = FactStore::fixed(facts_for(index), classes_for(index));
        let node = Node::new(settings, facts, agents.clone()).with_security(security);
        nodes.push(Arc::new(node));
    }
    Ok(nodes)
}

/// A running simulated fleet. Dropping it stops every identity.
pub struct Fleet {
    spec: FleetSpec,
    nodes: Vec<Arc<Node>>,
    tasks: Vec<JoinHandle<()>>,
    connections: Vec<async_nats::Client>,
}

impl Fleet {
    /// Builds the nodes of `spec`, connects to `broker` (URLs separated by commas: the
    /// servers of a cluster, which the connections are spread over, each with the others to
    /// fall back on), subscribes every identity and returns once the broker has every
    /// subscription (a request sent afterwards reaches every identity).
    pub async fn start(spec: FleetSpec, broker: &str) -> Result<Fleet, SimError> {
        let nodes = build_nodes(&spec, broker)?;
        let urls: Vec<&str> = broker.split(',').map(str::trim).collect();
        let mut connections = Vec::new();
        for n in 0..spec.connections.max(1) {
            // Connection n starts at server n, so the cluster shares the fleet.
            let mut order = urls.clone();
            order.rotate_left(n % urls.len());
            let client = async_nats::ConnectOptions::new()
                .name(format!("mco-sim {} #{n}", spec.prefix))
                .retain_servers_order()
                .connect(order)
                .await
                .map_err(|e| SimError::Connect {
                    broker: broker.to_string(),
                    reason: e.to_string(),
                })?;
            connections.push(client);
        }
        // One copy of each collective's name for every identity's tasks (see the module
        // documentation).
        let names: Vec<Arc<str>> = spec
            .collectives
            .iter()
            .map(|c| Arc::from(c.as_str()))
            .collect();
        let mut tasks = Vec::with_capacity(nodes.len());
        for (index, node) in nodes.iter().enumerate() {
            let client = connections[index % connections.len()].clone();
            tasks.extend(serve(node.clone(), client, &names).await?);
        }
        for client in &connections {
            crate::broker::round_trip(client, Duration::from_secs(30))
                .await
                .map_err(|e| SimError::Connect {
                    broker: broker.to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Fleet {
            spec,
            nodes,
            tasks,
            connections,
        })
    }

    /// What was simulated.
    pub fn spec(&self) -> &FleetSpec {
        &self.spec
    }

    /// The simulated nodes (their counters are in [`Node::stats`]).
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// Every identity, in index order.
    pub fn identities(&self) -> Vec<String> {
        self.spec.identities()
    }

    /// Stops every identity and flushes the replies already handed to the connections.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for client in &self.connections {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Subscribes `node` as `mcod` does (every served agent's broadcast subject and the direct
/// subject, in every collective) and starts one task per subscription that answers its
/// messages in turn through [`Node::handle`].
///
/// Unlike `mcod`, which hands each message to a task of its own so that a slow action does
/// not hold up the next request, the simulator handles a subscription's messages inline: its
/// agents (`rpcutil`, `discovery`) answer at once, and at 10,000 identities a task and a
/// cross-thread wake-up per message would be the simulator's own cost, not the pipeline's.
async fn serve(
    node: Arc<Node>,
    client: async_nats::Client,
    names: &[Arc<str>],
) -> Result<Vec<JoinHandle<()>>, SimError> {
    let mut tasks = Vec::new();
    for collective in &node.settings.collectives {
        let mut subjects: Vec<(String, Route)> = node
            .subscribed_agents()
            .iter()
            .map(|agent| {
                (
                    mco_spec::subjects::broadcast(collective, agent),
                    Route::Broadcast,
                )
            })
            .collect();
        subjects.push((
            mco_spec::subjects::direct(collective, &node.settings.identity),
            Route::Direct,
        ));
        for (subject, route) in subjects {
            let mut subscriber =
                client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|e| SimError::Subscribe {
                        subject: subject.clone(),
                        reason: e.to_string(),
                    })?;
            let collective = names
                .iter()
                .find(|name| ***name == **collective)
                .cloned()
                .unwrap_or_else(|| Arc::from(collective.as_str()));
            let node = node.clone();
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(message) = subscriber.next().await {
                    if let Some(out) = node.handle(&collective, route, &message.payload).await {
                        if let Err(e) = client.publish(out.subject, out.payload.into()).await {
                            tracing::warn!("could not publish a reply: {e}");
                        }
                    }
                }
            }));
        }
    }
    Ok(tasks)
}

/// The caller name of the benchmark's requests.
pub const BENCH_CALLER: &str = "bench";

/// An `rpcutil ping` to every node of `collective` as the client builds it (caller
/// [`BENCH_CALLER`]), with a fresh id and its reply subject under the caller's prefix.
pub fn ping_request(collective: &str) -> mco_spec::Request<'static> {
    let id = mco_spec::message::new_request_id();
    mco_spec::Request {
        reply_to: mco_spec::subjects::reply(collective, BENCH_CALLER, &id).into(),
        id: id.into(),
        collective: collective.to_string().into(),
        agent: "rpcutil".into(),
        action: "ping".into(),
        data: Default::default(),
        filter: mco_spec::Filter {
            agent: vec!["rpcutil".into()],
            ..mco_spec::Filter::default()
        },
        caller: BENCH_CALLER.into(),
        sender: "bench-client".into(),
        time: now_millis(),
        ttl: 60,
        targets: None,
    }
}

/// One round of the nodes' share of an unsigned broadcast to the `n` nodes of
/// `collective`: `caller` (a plain NATS connection) publishes an encoded `rpcutil ping` and
/// counts the replies without decoding them (no client library), so what this costs beyond
/// the raw floor is what the nodes add.
pub async fn raw_caller_round(
    caller: &async_nats::Client,
    n: usize,
    collective: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let failed = |e: &dyn std::fmt::Display| format!("raw caller to {n} simulated nodes: {e}");
    // Nodes answer only under the caller's own reply prefix, not a raw inbox.
    let request = ping_request(collective);
    let mut replies = caller
        .subscribe(request.reply_to.to_string())
        .await
        .map_err(|e| failed(&e))?;
    let payload = mco_spec::RequestEnvelope::unsigned(&request)
        .and_then(|e| e.to_bytes())
        .map_err(|e| failed(&e))?;
    let started = std::time::Instant::now();
    caller
        .publish(
            mco_spec::subjects::broadcast(collective, "rpcutil"),
            payload.into(),
        )
        .await
        .map_err(|e| failed(&e))?;
    crate::raw::await_replies(&mut replies, n, None, timeout)
        .await
        .map_err(|e| failed(&e))?;
    Ok(started.elapsed())
}

/// One broadcast `rpcutil ping` through `client` to the `n` nodes of its collective (named
/// `collective` in errors): discovery (not timed), then the call, timed from its publish to
/// its last reply ([`mco_client::Stats::elapsed`]). An error unless every node was discovered
/// and answered OK.
pub async fn client_round(
    client: &mco_client::Client,
    n: usize,
    collective: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let result = client
        .call(mco_client::Call::new("rpcutil", "ping").timeout(timeout))
        .await
        .map_err(|e| format!("mco broadcast to {n} nodes ({collective}): {e}"))?
        .collect()
        .await;
    let s = &result.stats;
    if s.discovered != n || s.responded != n || s.ok != n {
        return Err(format!(
            "mco broadcast to {n} nodes ({collective}): discovered {}, responded {}, ok {} (forged {}, dropped {})",
            s.discovered, s.responded, s.ok, s.forged, s.dropped
        ));
    }
    Ok(s.elapsed)
}

/// The reply of node `sender` to the `rpcutil ping` with id `request_id`, as a node makes it.
pub fn ping_reply(request_id: &str, sender: &str) -> mco_spec::Reply {
    mco_spec::Reply {
        request_id: request_id.to_string(),
        sender: sender.to_string(),
        agent: "rpcutil".into(),
        action: "ping".into(),
        time: now_millis(),
        statuscode: mco_spec::StatusCode::Ok,
        statusmsg: "OK".into(),
        data: json!({"pong": now_millis() / 1000}),
    }
}

/// A ping request and reply as mco sends them, for the raw floor's message sizes: signed by
/// the caller `signed` names and a node of its issuer, or unsigned.
pub fn message_sizes(signed: Option<(&Credentials, &Issuer)>) -> (usize, usize) {
    let request = ping_request("bench");
    let reply = ping_reply(&request.id, "sim-00000");
    let sizes = match signed {
        Some((caller, issuer)) => {
            let node = issuer.server("sim-00000", &derived_key(issuer, "node", b"sim-00000"));
            (
                mco_spec::RequestEnvelope::signed(&request, caller).and_then(|e| e.to_bytes()),
                mco_spec::ReplyEnvelope::signed(&reply, &node).and_then(|e| e.to_bytes()),
            )
        }
        None => (
            mco_spec::RequestEnvelope::unsigned(&request).and_then(|e| e.to_bytes()),
            mco_spec::ReplyEnvelope::unsigned(&reply).and_then(|e| e.to_bytes()),
        ),
    };
    (
        sizes.0.map(|b| b.len()).unwrap_or(0),
        sizes.1.map(|b| b.len()).unwrap_or(0),
    )
}

/// Client credentials from the same issuer as a fleet, for the caller `name`.
pub fn client_credentials(issuer: &Issuer, name: &str) -> Credentials {
    issuer.client(name, &derived_key(issuer, "client", name.as_bytes()))
}
