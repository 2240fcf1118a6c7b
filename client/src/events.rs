//! Reading the fleet's events ([`mco_spec::event`]) as they happen, or from a point in their
//! history: [`Client::events`] with an [`EventQuery`].
//!
//! Every event passes one gate ([`Client::accept_event`]): it must decode, and unless the
//! client is insecure its signature must verify with a server token of the node the event
//! names, and the subject it came on must be that node's, in the collective asked for. What
//! fails the gate is handed out as [`EventItem::Rejected`] (to count and report), never as
//! an event.
//!
//! From now, events come from a plain subscription to the types asked for. From a time or a
//! sequence (`since`), they come from the collective's history stream
//! (`MCO_EVENTS_<collective>`) through an ordered consumer of the client's own, which then
//! goes on with new events as they are published; types and nodes are then chosen here (a
//! consumer with a subject filter needs broader broker permissions).
//!
//! Not for: deciding which nodes match a filter (the caller discovers them and passes the
//! names) or running commands on events (the CLI's callbacks).

use std::collections::BTreeSet;

use futures::stream::{BoxStream, StreamExt};
use mco_spec::event::{Event, EventEnvelope, TypePattern};

use crate::client::Client;
use crate::error::{CallError, CallErrorKind};

/// Where in the history to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The first event at or after this Unix time, milliseconds.
    Time(u64),
    /// The event with this stream sequence number, and those after it.
    Sequence(u64),
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    types: Vec<TypePattern>,
    since: Option<Since>,
    collective: Option<String>,
    nodes: Option<BTreeSet<String>>,
}

impl EventQuery {
    /// Every event of the main collective, from now.
    pub fn new() -> EventQuery {
        EventQuery::default()
    }

    /// Only events of these types (several: any of them).
    pub fn types(mut self, types: impl IntoIterator<Item = TypePattern>) -> EventQuery {
        self.types.extend(types);
        self
    }

    /// Start in the history.
    pub fn since(mut self, since: Since) -> EventQuery {
        self.since = Some(since);
        self
    }

    /// In this collective rather than the main one.
    pub fn collective(mut self, collective: impl Into<String>) -> EventQuery {
        self.collective = Some(collective.into());
        self
    }

    /// Only events of these nodes.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = impl Into<String>>) -> EventQuery {
        self.nodes = Some(nodes.into_iter().map(Into::into).collect());
        self
    }

    fn selects(&self, event: &Event) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t.matches(&event.kind)))
            && self
                .nodes
                .as_ref()
                .is_none_or(|nodes| nodes.contains(&event.identity))
    }
}

/// An event that passed the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The event.
    pub event: Event,
    /// Its sequence number in the history stream, when it came from there.
    pub sequence: Option<u64>,
}

/// Why something that arrived on an event subject is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventRejected {
    /// Not a well-formed event.
    #[error("malformed event on {subject}: {reason}")]
    Malformed {
        /// Where it came.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The signature or token does not verify, or is not that of the node the event names,
    /// or the event came on another node's subject or collective.
    #[error("forged event on {subject}: {reason}")]
    Forged {
        /// Where it came.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// What an event stream hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    /// An event, verified.
    Event(ReceivedEvent),
    /// Something that failed the gate: dropped, to be counted.
    Rejected(EventRejected),
    /// Reading the history went wrong (the consumer is then made again where it can be).
    Trouble(String),
}

impl Client {
    /// Decodes an event that came on `subject` in `collective` and, unless insecure, verifies
    /// that the node it names signed it with its server token.
    pub fn accept_event(
        &self,
        collective: &str,
        subject: &str,
        payload: &[u8],
    ) -> Result<Event, EventRejected> {
        self.accept_events(collective, &[(subject, payload)])
            .pop()
            .unwrap_or_else(|| {
                Err(EventRejected::Malformed {
                    subject: subject.to_string(),
                    reason: "nothing to accept".into(),
                })
            })
    }

    /// [`Self::accept_event`] for many `(subject, payload)` at once: their signatures are
    /// verified in one batch. One result per message, in order.
    pub fn accept_events(
        &self,
        collective: &str,
        messages: &[(&str, &[u8])],
    ) -> Vec<Result<Event, EventRejected>> {
        let decoded: Vec<Result<EventEnvelope, EventRejected>> = messages
            .iter()
            .map(|(subject, payload)| {
                EventEnvelope::decode(payload).map_err(|e| EventRejected::Malformed {
                    subject: subject.to_string(),
                    reason: e.to_string(),
                })
            })
            .collect();
        self.verified(
            &decoded,
            |i, reason| EventRejected::Forged {
                subject: messages[i].0.to_string(),
                reason,
            },
            |i, envelope, token| check_event(envelope, token, collective, messages[i].0),
        )
    }

    /// The events `query` selects, verified, as they arrive; the stream ends only when the
    /// connection does.
    pub async fn events(
        &self,
        query: EventQuery,
    ) -> Result<BoxStream<'static, EventItem>, CallError> {
        let collective = self.collective(query.collective.as_deref())?;
        match query.since {
            None => self.live_events(collective, query).await,
            Some(since) => self.history_events(collective, query, since).await,
        }
    }

    async fn live_events(
        &self,
        collective: String,
        query: EventQuery,
    ) -> Result<BoxStream<'static, EventItem>, CallError> {
        let patterns = if query.types.is_empty() {
            vec![TypePattern::all()]
        } else {
            query.types.clone()
        };
        let mut subscriptions = Vec::new();
        for pattern in &patterns {
            let subject = mco_spec::subjects::events_matching(&collective, pattern);
            let subscriber = self.nats().subscribe(subject.clone()).await.map_err(|e| {
                CallError::with_source(
                    CallErrorKind::Broker,
                    format!("cannot subscribe to {subject}"),
                    e,
                )
            })?;
            subscriptions.push(subscriber);
        }
        let client = self.clone();
        // What is already waiting is verified together; a lone event goes at once.
        Ok(futures::stream::select_all(subscriptions)
            .ready_chunks(BATCH)
            .flat_map(move |messages| {
                let arrived: Vec<_> = messages
                    .into_iter()
                    .map(|m| (m.subject.to_string(), m.payload, None))
                    .collect();
                futures::stream::iter(gate(&client, &collective, &query, &arrived))
            })
            .boxed())
    }

    async fn history_events(
        &self,
        collective: String,
        query: EventQuery,
        since: Since,
    ) -> Result<BoxStream<'static, EventItem>, CallError> {
        use async_nats::jetstream::consumer::{pull, DeliverPolicy};
        let js = async_nats::jetstream::new(self.nats().clone());
        let name = mco_transport::events_stream_name(&collective);
        let stream = js.get_stream(&name).await.map_err(|e| {
            CallError::with_source(
                CallErrorKind::NoHistory,
                format!(
                    "the broker keeps no event history for collective {collective} (stream {name}: mcod creates it at start where broker permissions allow, `mco broker setup` otherwise)"
                ),
                e,
            )
        })?;
        let deliver_policy = match since {
            Since::Time(ms) => DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(ms) * 1_000_000,
                )
                .map_err(|e| CallError::from_source(CallErrorKind::InvalidInput, e))?,
            },
            Since::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                CallError::with_source(
                    CallErrorKind::Broker,
                    format!("cannot read the event history of {collective}"),
                    e,
                )
            })?;
        let messages = consumer.messages().await.map_err(|e| {
            CallError::with_source(
                CallErrorKind::Broker,
                format!("cannot read the event history of {collective}"),
                e,
            )
        })?;
        let client = self.clone();
        Ok(messages
            .ready_chunks(BATCH)
            .flat_map(move |messages| {
                let mut items = Vec::new();
                let mut arrived = Vec::new();
                for message in messages {
                    match message {
                        Ok(message) => {
                            let sequence = message.info().ok().map(|i| i.stream_sequence);
                            arrived.push((
                                message.subject.to_string(),
                                message.payload.clone(),
                                sequence,
                            ));
                        }
                        Err(e) => items.push(EventItem::Trouble(format!(
                            "reading the event history: {e}"
                        ))),
                    }
                }
                items.extend(gate(&client, &collective, &query, &arrived));
                futures::stream::iter(items)
            })
            .boxed())
    }
}

/// Parses a verified (or, insecure, unverified) event and checks that the token that signed
/// it is its node's and that it came on its node's subject in `collective`.
fn check_event(
    envelope: &EventEnvelope,
    token: Option<&mco_spec::security::Token>,
    collective: &str,
    subject: &str,
) -> Result<Event, EventRejected> {
    let event = envelope.body().map_err(|e| EventRejected::Malformed {
        subject: subject.to_string(),
        reason: e.to_string(),
    })?;
    let forged = |reason: String| EventRejected::Forged {
        subject: subject.to_string(),
        reason,
    };
    if let Some(token) = token {
        if token.claims().name != event.identity {
            return Err(forged(format!(
                "it says it is from {} but is signed by {}",
                event.identity,
                token.claims().name
            )));
        }
    }
    if event.collective != collective
        || subject != mco_spec::subjects::event(collective, &event.kind, &event.identity)
    {
        return Err(forged(format!(
            "event {} of {} in collective {} does not belong on this subject",
            event.kind, event.identity, event.collective
        )));
    }
    Ok(event)
}

/// How many messages that arrived together are verified in one batch.
const BATCH: usize = 256;

/// The one gate, for what arrived together: accepted and selected events, rejected
/// messages; unselected ones vanish.
fn gate(
    client: &Client,
    collective: &str,
    query: &EventQuery,
    arrived: &[(String, bytes::Bytes, Option<u64>)],
) -> Vec<EventItem> {
    let messages: Vec<(&str, &[u8])> = arrived
        .iter()
        .map(|(subject, payload, _)| (subject.as_str(), payload.as_ref()))
        .collect();
    client
        .accept_events(collective, &messages)
        .into_iter()
        .zip(arrived)
        .filter_map(|(accepted, (_, _, sequence))| match accepted {
            Ok(event) if query.selects(&event) => Some(EventItem::Event(ReceivedEvent {
                event,
                sequence: *sequence,
            })),
            Ok(_) => None,
            Err(rejected) => Some(EventItem::Rejected(rejected)),
        })
        .collect()
}
