//! This node's events ([`mco_spec::event`]): what it says when something changes on it, the
//! moment it changes, signed with its key like a reply.
//!
//! The pipeline and the daemon hand events to an [`EventSink`] without waiting: a bounded
//! channel, so a broker that is slow or gone never holds up an action; when it is full the
//! event is dropped and counted. The publisher task ([`spawn_publisher`]) signs each one and
//! publishes it on `<collective>.event.<type>.<identity>`, and at start makes sure each
//! collective has its event history stream (`MCO_EVENTS_<collective>`, where broker
//! permissions allow; `mco broker setup` makes it otherwise).
//!
//! What a node says:
//!
//! | type | when | data |
//! | --- | --- | --- |
//! | `node.started` | mcod is ready | `version`, `agents` |
//! | `node.stopping` | mcod stops taking requests | `reason` |
//! | `agent.action` | an action that changes the node ran (not rpcutil, not a status read) | `agent`, `action`, `caller`, `request_id`, `statuscode`, `statusmsg`, `inputs` (redacted as in the audit log) |
//! | `service.state_changed` | a service was started, stopped or restarted | `service`, `state`, `action` |
//! | `package.changed` | a package was installed, updated, uninstalled or purged | `package`, `action`, `ensure` |
//! | `puppet.run_started` | runonce started a Puppet run | `summary` |
//! | `puppet.resource_changed` | that run changed a resource (from Puppet's run report; at most 500 a run) | `resource`, `type`, `title`, `changes` (property, previous and desired value, message) |
//! | `puppet.run_finished` | that run ended | `status`, `exit_code`, changed/failed/out-of-sync/total resources, `config_retrieval_time`, `total_time`, `config_version` |
//!
//! Tools on the node add their own types through the local socket ([`crate::emit`]).
//! `[events] types` chooses which of them all go out.
//!
//! Not for: reading events (the client does) or keeping them (the stream does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mco_agents::Outcome;
use mco_spec::event::{Event, EventEnvelope, Severity, TypePattern};
use mco_spec::message::{new_request_id, now_millis};
use mco_spec::Request;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How long the first events wait for the history stream to be made.
const HISTORY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Events waiting to be published; beyond this they are dropped and counted.
const QUEUED_EVENTS: usize = 1024;

/// The `[events]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Publish events at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The types published, as patterns (`node.*`, `service.state_changed`, `*`).
    #[serde(default = "every_type")]
    pub types: Vec<String>,
    /// Accept events from tools on this node through the local socket ([`crate::emit`]).
    #[serde(default = "default_true")]
    pub local: bool,
    /// The local socket (default `<state_dir>/events.sock`).
    #[serde(default)]
    pub socket: Option<std::path::PathBuf>,
    /// The history stream this node creates when there is none.
    #[serde(default)]
    pub history: mco_transport::EventHistorySettings,
}

fn default_true() -> bool {
    true
}

fn every_type() -> Vec<String> {
    vec!["*".into()]
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            types: every_type(),
            local: true,
            socket: None,
            history: Default::default(),
        }
    }
}

impl EventsConfig {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.patterns()?;
        self.history.validate().map_err(|e| format!("history: {e}"))
    }

    fn patterns(&self) -> Result<Vec<TypePattern>, String> {
        self.types
            .iter()
            .map(|t| t.parse::<TypePattern>().map_err(|e| format!("types: {e}")))
            .collect()
    }
}

/// An event on its way out: its type, severity and data, and the collective it belongs to
/// (`None`: every collective of the node).
#[derive(Debug, Clone)]
pub struct Pending {
    kind: String,
    severity: Severity,
    data: Value,
    collective: Option<String>,
}

/// Where the node's parts hand their events. See the [module docs](self).
#[derive(Debug)]
pub struct EventSink {
    enabled: bool,
    types: Vec<TypePattern>,
    queue: mpsc::Sender<Pending>,
    receiver: Mutex<Option<mpsc::Receiver<Pending>>>,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events queued, and of them those the publisher is done with: [`drain`] waits for the
    /// second to reach the first.
    queued: AtomicU64,
    done: AtomicU64,
}

impl EventSink {
    /// A sink for `config` (already validated; a pattern that does not parse selects nothing).
    pub fn new(config: &EventsConfig) -> EventSink {
        let (queue, receiver) = mpsc::channel(QUEUED_EVENTS);
        EventSink {
            enabled: config.enabled,
            types: config.patterns().unwrap_or_default(),
            queue,
            receiver: Mutex::new(Some(receiver)),
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Whether events of `kind` go out.
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && self.types.iter().any(|p| p.matches(kind))
    }

    /// Hands an event over without waiting.
    pub fn emit(&self, kind: &str, severity: Severity, data: Value, collective: Option<&str>) {
        if !self.wants(kind) {
            return;
        }
        let pending = Pending {
            kind: kind.to_string(),
            severity,
            data,
            collective: collective.map(str::to_string),
        };
        match self.queue.try_send(pending) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
            // Full (the broker is slow or gone) or no publisher: an action never waits.
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The events an action's outcome says: `agent.action` for an action that changes the
    /// node, and what changed for the built-in agents.
    ///
    /// `inputs` (the redacted inputs) is called only for an `agent.action` that goes out: every
    /// request passes here, a broadcast ping included, and most say nothing.
    pub fn after_action(
        &self,
        request: &Request<'_>,
        inputs: impl FnOnce() -> Value,
        outcome: &Outcome,
    ) {
        // The request's own names first: a read (every ping and discovery of the fleet) then
        // never touches the sink, whose memory is cold on a busy node.
        if !changes_the_node(&request.agent, &request.action) || !self.enabled {
            return;
        }
        let collective = Some(request.collective.as_ref());
        let ok = outcome.statuscode.is_ok();
        if self.wants("agent.action") {
            self.emit(
                "agent.action",
                if ok {
                    Severity::Info
                } else {
                    Severity::Warning
                },
                json!({
                    "agent": request.agent,
                    "action": request.action,
                    "caller": request.caller,
                    "request_id": request.id,
                    "statuscode": outcome.statuscode.code(),
                    "statusmsg": outcome.statusmsg,
                    "inputs": inputs(),
                }),
                collective,
            );
        }
        if !ok {
            return;
        }
        let input = |name: &str| request.data.get(name).cloned().unwrap_or(Value::Null);
        let output = |name: &str| outcome.data.get(name).cloned().unwrap_or(Value::Null);
        match (request.agent.as_ref(), request.action.as_ref()) {
            ("service", action @ ("start" | "stop" | "restart")) => self.emit(
                "service.state_changed",
                Severity::Info,
                json!({"service": input("service"), "state": output("status"), "action": action}),
                collective,
            ),
            ("package", action @ ("install" | "update" | "uninstall" | "purge")) => self.emit(
                "package.changed",
                Severity::Info,
                json!({"package": input("package"), "action": action, "ensure": output("ensure")}),
                collective,
            ),
            ("puppet", "runonce") => self.emit(
                "puppet.run_started",
                Severity::Info,
                json!({"summary": output("summary")}),
                collective,
            ),
            _ => {}
        }
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<Pending>> {
        self.receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// What agents say after their action answered, in every collective of the node.
impl mco_agents::EventEmitter for EventSink {
    fn emit(&self, kind: &str, severity: Severity, data: Value) {
        EventSink::emit(self, kind, severity, data, None);
    }
}

/// Whether `agent#action` changes the node: everything but the agents that only report
/// (rpcutil, discovery) and the built-in agents' reads.
fn changes_the_node(agent: &str, action: &str) -> bool {
    let reads: &[&str] = match agent {
        "rpcutil" | "discovery" => return false,
        "service" => &["status"],
        "package" => &[
            "status",
            "count",
            "md5",
            "search",
            "checkupdates",
            "yum_checkupdates",
            "apt_checkupdates",
        ],
        "puppet" => &["status", "last_run_summary"],
        _ => &[],
    };
    !reads.contains(&action)
}

/// Starts publishing what `node`'s sink is handed; `None` when events are off or already
/// taken. The task runs until the node is dropped or the daemon aborts it at shutdown,
/// after [`drain`].
pub fn spawn_publisher(
    client: async_nats::Client,
    node: Arc<crate::node::Node>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !node.events.enabled {
        return None;
    }
    let mut events = node.events.take_receiver()?;
    // The first events (node.started) belong in the history, so they wait for it to be
    // made, but not long: making it may wait for the broker, and events wait in the queue.
    let history = {
        let (client, node) = (client.clone(), node.clone());
        tokio::spawn(async move {
            let js = async_nats::jetstream::new(client);
            for collective in &node.settings.collectives {
                if let Err(e) = mco_transport::ensure_events_stream(
                    &js,
                    collective,
                    &node.settings.events.history,
                )
                .await
                {
                    tracing::warn!(
                        "events in collective {collective} are published but not kept for `mco events --since` (`mco broker setup` creates the history where nodes may not): {e}"
                    );
                }
            }
        })
    };
    Some(tokio::spawn(async move {
        let mut history = AbortOnDrop(history);
        let _ = tokio::time::timeout(HISTORY_WAIT, &mut history.0).await;
        while let Some(pending) = events.recv().await {
            publish(&client, &node, pending).await;
            node.events.done.fetch_add(1, Ordering::Relaxed);
        }
    }))
}

/// Ends a task when dropped (with the publisher that started it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until the events handed over so far are published, for up to `limit`: shutdown
/// says `node.stopping` before it goes.
pub async fn drain(sink: &EventSink, limit: std::time::Duration) {
    let _ = tokio::time::timeout(limit, async {
        while sink.done.load(Ordering::Relaxed) < sink.queued.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn publish(client: &async_nats::Client, node: &crate::node::Node, pending: Pending) {
    let identity = &node.settings.identity;
    let collectives: Vec<&String> = match &pending.collective {
        Some(c) => node
            .settings
            .collectives
            .iter()
            .filter(|k| *k == c)
            .collect(),
        None => node.settings.collectives.iter().collect(),
    };
    for collective in collectives {
        let event = Event {
            id: new_request_id(),
            kind: pending.kind.clone(),
            identity: identity.clone(),
            collective: collective.clone(),
            time: now_millis(),
            severity: pending.severity,
            data: pending.data.clone(),
        };
        let encoded = match &node.security.credentials {
            Some(credentials) => EventEnvelope::signed(&event, credentials),
            None => EventEnvelope::unsigned(&event),
        }
        .and_then(|e| e.to_bytes());
        let payload = match encoded {
            Ok(p) if p.len() <= mco_spec::MAX_MESSAGE_BYTES => p,
            Ok(p) => {
                tracing::warn!(
                    "event {} of {} bytes is too large to publish",
                    event.kind,
                    p.len()
                );
                continue;
            }
            Err(e) => {
                tracing::warn!("cannot encode event {}: {e}", event.kind);
                continue;
            }
        };
        let subject = mco_spec::subjects::event(collective, &event.kind, identity);
        if let Err(e) = client.publish(subject, payload.into()).await {
            tracing::warn!("cannot publish event {}: {e}", event.kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_say_nothing() {
        assert!(!changes_the_node("rpcutil", "ping"));
        assert!(!changes_the_node("service", "status"));
        assert!(!changes_the_node("package", "md5"));
        assert!(!changes_the_node("puppet", "last_run_summary"));
        assert!(changes_the_node("service", "restart"));
        assert!(changes_the_node("puppet", "disable"));
        assert!(changes_the_node("myagent", "anything"));
    }

    #[test]
    fn only_the_configured_types_go_out_and_a_full_queue_drops() {
        let config = EventsConfig {
            types: vec!["node.*".into(), "service.state_changed".into()],
            ..EventsConfig::default()
        };
        assert!(config.validate().is_ok());
        let sink = EventSink::new(&config);
        assert!(sink.wants("node.started") && sink.wants("service.state_changed"));
        assert!(!sink.wants("agent.action"));
        for _ in 0..QUEUED_EVENTS + 5 {
            sink.emit("node.started", Severity::Info, json!({}), None);
        }
        sink.emit("agent.action", Severity::Info, json!({}), None);
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 5);
        let off = EventSink::new(&EventsConfig {
            enabled: false,
            ..EventsConfig::default()
        });
        assert!(!off.wants("node.started"));
        let bad = EventsConfig {
            types: vec!["Node".into()],
            ..EventsConfig::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("types:"));
    }
}
