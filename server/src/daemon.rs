//! The daemon around the pipeline: connect to the broker pool (reconnecting forever with a
//! capped backoff), subscribe to broadcasts in every collective, take direct requests from
//! the JetStream work queue ([`crate::direct`]), run each request in its own task
//! (acknowledging queued ones when done), reload facts when files change and everything from
//! files on request ([`run_reloading`], SIGHUP), subscribing to the broadcasts of agents a
//! reload added and leaving those of agents it removed, publish the node's registration
//! ([`crate::registration`]), and shut down gracefully.
//!
//! What the daemon holds is bounded: at most `Node::messages_in_hand` messages in tasks (the
//! agents' slots and queues, [`crate::slots`], refuse the rest as busy, so a slow agent never
//! stops the loop), at most as many direct requests handed out by JetStream, and at most
//! [`SUBSCRIPTION_CAPACITY`] broadcasts buffered per subscription.
//!
//! [`run`] takes the shutdown signal as a future (mini-redis style) so tests can stop a node
//! without sending signals.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use futures::channel::mpsc;
use futures::stream::{abortable, AbortHandle, BoxStream, SelectAll, Stream, StreamExt};
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::direct::{direct_requests, Incoming};
use crate::node::{AgentChanges, Node};
use crate::pipeline::Route;

/// Why the daemon stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The NATS client could not be set up (bad options; an unreachable broker is retried).
    #[error("cannot connect to {brokers}: {source}")]
    Connect {
        /// The broker URLs.
        brokers: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// The broker authentication settings are unusable.
    #[error(transparent)]
    BrokerAuth(#[from] mco_keys::BrokerAuthError),
    /// A subscription could not be made.
    #[error("cannot subscribe to {subject}: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::SubscribeError,
    },
}

/// Most messages buffered for one of a node's subscriptions while the daemon is not reading
/// it (async-nats' default is 65,536, up to 64 GiB of 1 MiB messages). Beyond it the client
/// drops messages, which is logged; the daemon reads on while agents are busy, so only a
/// node slower at admission than the broker delivers gets there.
pub const SUBSCRIPTION_CAPACITY: usize = 1024;

/// The broker connection options every mcod uses.
fn connect_options() -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        // Back off, but never wait more than 2 s: after a broker restart the fleet must answer
        // again within seconds.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100u64 << attempts.min(5) as u64).min(2000))
        })
        .connection_timeout(Duration::from_secs(5))
        .ping_interval(mco_transport::PING_INTERVAL)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to the broker"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("disconnected from the broker; reconnecting")
                }
                // Permission violations among them: a broker configuration that does not
                // match this node (see `mco broker config`).
                async_nats::Event::ServerError(e) => tracing::warn!("the broker says: {e}"),
                async_nats::Event::SlowConsumer(sid) => tracing::warn!(
                    "dropped a message: subscription {sid} holds {SUBSCRIPTION_CAPACITY} unread (the node is not keeping up)"
                ),
                other => tracing::info!("broker event: {other}"),
            }
        })
}

/// Connects to the broker pool as `settings` say (authentication, reconnecting forever), as
/// `role` (its own inbox prefix, the only one broker permissions let it read), naming the
/// connection `name` for the broker's monitoring.
pub(crate) async fn connect(
    settings: &Settings,
    role: mco_transport::BrokerRole,
    name: String,
) -> Result<async_nats::Client, DaemonError> {
    let mut options = connect_options();
    if role == mco_transport::BrokerRole::Node {
        options = options.subscription_capacity(SUBSCRIPTION_CAPACITY);
    }
    let options = settings
        .broker_auth
        .apply(options)
        .await?
        .custom_inbox_prefix(mco_transport::inbox_prefix(role, &settings.identity))
        .name(name);
    options
        .connect(settings.brokers.as_slice())
        .await
        .map_err(|source| DaemonError::Connect {
            brokers: settings.brokers.join(","),
            source,
        })
}

/// Subscribes to `subject`, naming it in the error.
pub(crate) async fn subscribe(
    client: &async_nats::Client,
    subject: &str,
) -> Result<async_nats::Subscriber, DaemonError> {
    client
        .subscribe(subject.to_string())
        .await
        .map_err(|source| DaemonError::Subscribe {
            subject: subject.to_string(),
            source,
        })
}

/// What the daemon reads: broadcasts per collective and agent, and direct requests.
type Messages = SelectAll<BoxStream<'static, (String, Route, Incoming)>>;

/// The broadcast subscriptions, by collective and agent, each one ended by its handle.
#[derive(Default)]
struct Broadcasts {
    handles: HashMap<(String, String), AbortHandle>,
}

impl Broadcasts {
    /// Subscribes to `agent`'s broadcasts in `collective`, read through `messages`.
    async fn subscribe(
        &mut self,
        client: &async_nats::Client,
        messages: &mut Messages,
        collective: &str,
        agent: &str,
    ) -> Result<(), DaemonError> {
        let subject = mco_spec::subjects::broadcast(collective, agent);
        let subscriber = subscribe(client, &subject).await?;
        let owner = collective.to_string();
        let (stream, handle) = abortable(
            subscriber.map(move |m| (owner.clone(), Route::Broadcast, Incoming::Core(m))),
        );
        messages.push(stream.boxed());
        self.handles
            .insert((collective.to_string(), agent.to_string()), handle);
        tracing::debug!("subscribed to {subject}");
        Ok(())
    }

    /// Ends the subscriptions to `agent`'s broadcasts (dropping a subscriber unsubscribes).
    fn unsubscribe(&mut self, agent: &str) {
        self.handles.retain(|(_, subscribed), handle| {
            let keep = subscribed != agent;
            if !keep {
                handle.abort();
            }
            keep
        });
    }
}

/// Runs a node until `shutdown` completes.
pub async fn run(node: Arc<Node>, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    run_reloading(node, shutdown, futures::stream::pending()).await
}

/// Runs a node until `shutdown` completes, reloading what it serves from files
/// ([`crate::reload`]) each time `reloads` yields (mcod: on SIGHUP), one reload at a time,
/// without pausing the requests in hand or those that come meanwhile.
pub async fn run_reloading(
    node: Arc<Node>,
    shutdown: impl Future<Output = ()>,
    reloads: impl Stream<Item = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let settings = &node.settings;
    let client = connect(
        settings,
        mco_transport::BrokerRole::Node,
        format!("mcod {}", settings.identity),
    )
    .await?;

    let mut subscriptions: Messages = SelectAll::new();
    let mut broadcasts = Broadcasts::default();
    for collective in &settings.collectives {
        for agent in node.subscribed_agents() {
            broadcasts
                .subscribe(&client, &mut subscriptions, collective, &agent)
                .await?;
        }
    }
    let (reloaded_sink, mut reloaded) = tokio::sync::mpsc::channel::<AgentChanges>(1);
    let reloader = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut reloads = std::pin::pin!(reloads);
            while reloads.next().await.is_some() {
                let changes = crate::reload::reload(&node).await;
                if reloaded_sink.send(changes).await.is_err() {
                    break;
                }
            }
        })
    };
    // Direct requests come from the JetStream work queue (or the plain subject without it),
    // at most as many handed out as the node holds, so a backlog waits in the broker.
    let in_hand = node.messages_in_hand;
    let (direct_sink, direct_source) = mpsc::channel(settings.max_concurrent_actions);
    let direct_tasks: Vec<_> = settings
        .collectives
        .iter()
        .map(|c| direct_requests(client.clone(), settings, c, in_hand, direct_sink.clone()))
        .collect();
    drop(direct_sink);
    subscriptions.push(
        direct_source
            .map(|(collective, incoming)| (collective, Route::Direct, incoming))
            .boxed(),
    );
    tracing::info!(
        identity = %settings.identity,
        collectives = ?settings.collectives,
        agents = ?node.agent_names(),
        "mcod ready"
    );

    let registering = crate::registration::spawn(client.clone(), node.clone());
    let publishing = crate::events::spawn_publisher(client.clone(), node.clone());
    let local_events = crate::emit::spawn(node.clone());
    node.events.emit(
        "node.started",
        mco_spec::event::Severity::Info,
        serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "agents": node.agent_names()}),
        None,
    );

    // One permit per message held, from reading it until it is answered and acknowledged.
    let slots = Arc::new(Semaphore::new(in_hand));
    let mut refresh = tokio::time::interval(Duration::from_secs(settings.facts_refresh_seconds));
    refresh.tick().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(changes) = reloaded.recv() => {
                for agent in &changes.removed {
                    broadcasts.unsubscribe(agent);
                }
                for agent in &changes.added {
                    for collective in &settings.collectives {
                        if let Err(e) = broadcasts.subscribe(&client, &mut subscriptions, collective, agent).await {
                            tracing::error!("agent {agent} is loaded but not reachable by broadcast: {e}");
                        }
                    }
                }
            }
            _ = refresh.tick() => {
                let node = node.clone();
                // File reads stay off the runtime's workers.
                let _ = tokio::task::spawn_blocking(move || node.facts.refresh()).await;
            }
            message = subscriptions.next() => {
                let Some((collective, route, message)) = message else { break };
                // Waiting here is the backpressure: a flood queues in the broker and bounded
                // client buffers, not in an unbounded set of tasks. It is not a wait for a
                // slow agent: the agents' slots and queues answer the excess as busy.
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let node = node.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let keep_alive = message.keep_alive();
                    if let Some(out) = node.handle(&collective, route, message.payload()).await {
                        if let Err(e) = client.publish(out.subject, out.payload.into()).await {
                            tracing::warn!("could not publish a reply: {e}");
                        }
                    }
                    if let Some(task) = keep_alive {
                        task.abort();
                    }
                    message.acknowledge().await;
                    drop(permit);
                });
            }
        }
    }

    tracing::info!(
        "shutting down: no new requests; waiting up to {} s for running actions",
        settings.shutdown_grace_seconds
    );
    drop(subscriptions);
    reloader.abort();
    node.events.emit(
        "node.stopping",
        mco_spec::event::Severity::Info,
        serde_json::json!({"reason": "shutdown"}),
        None,
    );
    for task in direct_tasks
        .into_iter()
        .chain(registering)
        .chain(local_events)
    {
        task.abort();
    }
    let all = u32::try_from(in_hand).unwrap_or(u32::MAX);
    let grace = Duration::from_secs(settings.shutdown_grace_seconds);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("actions still running after the grace period; exiting anyway");
    }
    // The last events (the actions that finished in the grace period, node.stopping) go
    // out before the connection does, unless the broker is gone.
    crate::events::drain(&node.events, Duration::from_secs(2)).await;
    if let Some(task) = publishing {
        task.abort();
    }
    // Flushing waits for the broker; when it is gone, shutdown must not wait for it.
    match tokio::time::timeout(Duration::from_secs(2), client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("could not flush replies: {e}"),
        Err(_) => tracing::warn!("could not flush replies: the broker did not answer within 2 s"),
    }
    tracing::info!("mcod stopped");
    Ok(())
}
