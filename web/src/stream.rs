//! A call's progress as events, and the two wire forms of them: Server-Sent Events for
//! browsers and NDJSON (one JSON object per line) for everything else. The call starts with
//! `started` (who it is for, how it is sent), then `reply` per node as it arrives, `batch`
//! and `pause` for slices, and ends with `stats` (aggregates and statistics). While nothing
//! happens a keep-alive goes out, so a client that went away is noticed and its call ended:
//! the event stream owns the call's `Replies`, and dropping it unsubscribes.
//!
//! Not for: deciding anything about the call (the library does) or HTTP status codes (a
//! stream that started is a 200; what went wrong after is in its events).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use mco_client::{stats_json, CallResult, Event, Mode, Replies, Stats};
use serde_json::{json, Value};

/// How long a stream may be silent before a keep-alive is sent.
pub const KEEPALIVE: Duration = Duration::from_secs(2);

/// One event of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// The call was sent: its nodes and how.
    Started(Value),
    /// A node answered (`mco_client::reply_json`).
    Reply(Value),
    /// A slice of direct requests was sent.
    Batch(Value),
    /// The call waits before its next slice.
    Pause(Value),
    /// Nothing happened for a while.
    KeepAlive,
    /// The call is over: aggregates and statistics.
    Stats(Value),
}

impl CallEvent {
    /// The event's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            CallEvent::Started(_) => "started",
            CallEvent::Reply(_) => "reply",
            CallEvent::Batch(_) => "batch",
            CallEvent::Pause(_) => "pause",
            CallEvent::KeepAlive => "keepalive",
            CallEvent::Stats(_) => "stats",
        }
    }

    fn data(&self) -> Value {
        match self {
            CallEvent::Started(v)
            | CallEvent::Reply(v)
            | CallEvent::Batch(v)
            | CallEvent::Pause(v)
            | CallEvent::Stats(v) => v.clone(),
            CallEvent::KeepAlive => json!({}),
        }
    }
}

/// What a call is for and how it was sent, before any reply.
pub fn started(stats: &Stats, nodes: &[String]) -> Value {
    json!({
        "nodes": nodes,
        "discovered": stats.discovered,
        "mode": stats.mode.map(|m| match m { Mode::Broadcast => "broadcast", Mode::Direct => "direct" }),
        "mode_reason": stats.mode_reason.as_ref().map(ToString::to_string),
        "discovery_method": stats.discovery_method.map(|m| m.name()),
        "discovery_time_ms": stats.discovery_time.as_secs_f64() * 1000.0,
        "warnings": stats.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// The collected answer: `CallResult::to_json` (the `--json-full` shape, replies sorted by
/// node) with the mode, and a `reason` when nothing was sent.
pub fn collected(mut result: CallResult) -> Value {
    result.replies.sort_by(|a, b| a.sender.cmp(&b.sender));
    let mut doc = result.to_json();
    doc["started"] = started(&result.stats, &result.nodes);
    if result.stats.discovered == 0 {
        doc["reason"] = json!("no nodes matched: nothing was sent");
    }
    doc
}

fn finished(result: &CallResult) -> Value {
    json!({"aggregates": result.aggregates(), "stats": stats_json(&result.stats)})
}

/// The events of `replies`, ending with `stats`; `guard` (anything that must live as long as
/// the call: a permit, a counter) is dropped with the stream.
pub fn events<G: Send + 'static>(
    replies: Replies,
    guard: G,
) -> impl Stream<Item = CallEvent> + Send + 'static {
    let first = CallEvent::Started(started(&replies.stats(), &replies.nodes()));
    struct State<G> {
        replies: Option<Replies>,
        collected: Vec<mco_client::Reply>,
        _guard: G,
    }
    let state = State {
        replies: Some(replies),
        collected: Vec::new(),
        _guard: guard,
    };
    let rest = futures::stream::unfold(state, |mut state| async move {
        let replies = state.replies.as_mut()?;
        let next = tokio::select! {
            event = replies.next_event() => event,
            _ = tokio::time::sleep(KEEPALIVE) => return Some((CallEvent::KeepAlive, state)),
        };
        let event = match next {
            Some(Event::Reply(reply)) => {
                let json = mco_client::reply_json(&reply);
                state.collected.push(reply);
                CallEvent::Reply(json)
            }
            Some(Event::BatchSent { number, of, nodes }) => {
                CallEvent::Batch(json!({"number": number, "of": of, "nodes": nodes}))
            }
            Some(Event::Pause { before, sleep }) => {
                CallEvent::Pause(json!({"before": before, "sleep": sleep.as_secs_f64()}))
            }
            None => {
                let replies = state.replies.take()?;
                let mut result = replies.result(std::mem::take(&mut state.collected));
                result.run_aggregate_plugins().await;
                CallEvent::Stats(finished(&result))
            }
        };
        Some((event, state))
    });
    futures::stream::once(async move { first }).chain(rest)
}

/// The events as Server-Sent Events (`event: reply`, `data: {...}`); keep-alives are
/// comments.
pub fn sse(events: impl Stream<Item = CallEvent> + Send + 'static) -> Response {
    sse_named(events.map(|event| match &event {
        CallEvent::KeepAlive => None,
        _ => Some((event.name(), event.data())),
    }))
}

/// Named JSON events as Server-Sent Events (`None`: a keep-alive comment), with keep-alives
/// while nothing happens: the one SSE writer of calls and of the fleet's events.
pub fn sse_named(
    events: impl Stream<Item = Option<(&'static str, Value)>> + Send + 'static,
) -> Response {
    let stream = events.map(|event| {
        let sse = match event {
            None => SseEvent::default().comment("keepalive"),
            Some((name, data)) => SseEvent::default().event(name).data(data.to_string()),
        };
        Ok::<_, Infallible>(sse)
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE * 2))
        .into_response();
    no_buffering(&mut response);
    response
}

/// The fleet's events (`mco_client::Client::events`) as SSE: `event` with the event and its
/// history `sequence`, `rejected` with why a message was dropped (forged or malformed), and
/// `trouble` when reading the history went wrong. `held` (the caller's permit) lives as long
/// as the stream.
pub fn fleet_events<H: Send + 'static>(
    events: futures::stream::BoxStream<'static, mco_client::EventItem>,
    held: H,
) -> Response {
    sse_named(events.map(move |item| {
        let _held = &held;
        Some(match item {
            mco_client::EventItem::Event(received) => {
                let mut data = serde_json::to_value(&received.event).unwrap_or(Value::Null);
                if let (Value::Object(map), Some(sequence)) = (&mut data, received.sequence) {
                    map.insert("sequence".into(), sequence.into());
                }
                ("event", data)
            }
            mco_client::EventItem::Rejected(why) => {
                ("rejected", json!({"reason": why.to_string()}))
            }
            mco_client::EventItem::Trouble(what) => ("trouble", json!({"reason": what})),
        })
    }))
}

/// The events as NDJSON lines: `{"event": "reply", "data": {...}}`.
pub fn ndjson(events: impl Stream<Item = CallEvent> + Send + 'static) -> Response {
    let lines = events.map(|event| {
        let mut line = json!({"event": event.name(), "data": event.data()}).to_string();
        line.push('\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    no_buffering(&mut response);
    response
}

/// Proxies (nginx) must pass events on as they come.
fn no_buffering(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}
