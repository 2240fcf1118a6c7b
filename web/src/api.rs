//! The HTTP API, `/api/v1`: the agents and their DDLs, discovery, calling an action
//! (collected as JSON, or streamed as Server-Sent Events or NDJSON, by `Accept`), who the
//! caller is, and the gateway's own status. Every route but the OpenAPI document and the
//! console passes the origin check and needs a bearer token; each call is made with the
//! caller's own client, so it is signed as that caller.
//!
//! Not for: request bodies' meaning (`request`), wire forms of a stream (`stream`), error
//! mapping (`error`), listening and TLS (`serve`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use mco_client::{ClientBuilder, ClientOptions, Ddls};
use serde_json::{json, Value};

use crate::callers::{CallerClients, Callers};
use crate::config::WebSettings;
use crate::error::ApiError;
use crate::guard::{self, Caller};
use crate::request::{seconds, CallRequest, DiscoverRequest};
use crate::stream;

/// What every handler shares.
pub struct AppState {
    /// The `[web]` settings.
    pub settings: WebSettings,
    /// Bearer tokens → callers.
    pub callers: Callers,
    /// Each caller's client.
    pub clients: CallerClients,
    /// The client settings every caller's client starts from.
    pub options: ClientOptions,
    /// The DDLs (the configuration's `ddl_dirs` and the built-in ones), for forms; no
    /// broker needed.
    pub ddls: Ddls,
    /// Calls in flight and made.
    pub counters: Counters,
}

impl AppState {
    /// The state for `settings`, `callers` and the client configuration `base`.
    pub fn new(settings: WebSettings, callers: Callers, base: ClientBuilder) -> AppState {
        let options = base.options().clone();
        let ddls = Ddls::new(options.ddl_dirs.clone());
        let clients = CallerClients::new(
            base,
            settings.credentials_dir.clone(),
            settings.max_calls_per_caller,
        );
        AppState {
            settings,
            callers,
            clients,
            options,
            ddls,
            counters: Counters::default(),
        }
    }
}

/// The gateway's counters, shown by `GET /api/v1/status`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Calls whose replies are still awaited (collected or streamed).
    pub in_flight: AtomicUsize,
    /// Calls started since the gateway started.
    pub calls: AtomicU64,
    /// Requests refused before reaching a handler's work (bad input, limits).
    pub refused: AtomicU64,
}

/// Counts a call in flight for as long as it lives.
pub struct InFlight(Arc<AppState>);

impl InFlight {
    fn new(state: Arc<AppState>) -> InFlight {
        state.counters.in_flight.fetch_add(1, Ordering::SeqCst);
        state.counters.calls.fetch_add(1, Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The API's routes (the console and the OpenAPI document are added by [`router`]).
fn api_routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/status", get(status))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents/{agent}", get(agent))
        .route("/api/v1/discover", post(discover))
        .route("/api/v1/agents/{agent}/actions/{action}", post(call))
        .route("/api/v1/events", get(events))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            guard::authenticate,
        ))
}

/// The whole gateway: the API behind its checks, the OpenAPI document and the console.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .merge(api_routes(state.clone()))
        .route("/api/v1/openapi.json", get(crate::openapi::document))
        .route("/", get(crate::console::page))
        .route("/console.js", get(crate::console::script))
        .route("/console.css", get(crate::console::style))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check_origin,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route (see /api/v1/openapi.json)",
    )
}

async fn whoami(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({"caller": caller.0}))
}

async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    let c = &state.counters;
    Json(json!({
        "calls_in_flight": c.in_flight.load(Ordering::SeqCst),
        "calls": c.calls.load(Ordering::SeqCst),
        "refused": c.refused.load(Ordering::SeqCst),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn agents(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let mut list = Vec::new();
    for name in state.ddls.names() {
        if let Some(ddl) = state.ddls.agent(&name)? {
            list.push(json!({
                "name": ddl.metadata.name,
                "description": ddl.metadata.description,
                "version": ddl.metadata.version,
                "actions": ddl.action_names().collect::<Vec<_>>(),
            }));
        }
    }
    Ok(Json(json!({ "agents": list })))
}

async fn agent(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.ddls.agent(&name)? {
        Some(ddl) => Ok(Json(serde_json::to_value(&*ddl).unwrap_or(Value::Null))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_agent",
            format!("no DDL for agent {name:?}"),
        )),
    }
}

/// A JSON body, or a 400 that says what is wrong with it (axum's own rejection is text).
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|e| ApiError::bad_field("body", e.to_string()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_field("body", e.to_string()))
}

fn refused(state: &AppState, e: ApiError) -> ApiError {
    if e.status.is_client_error() {
        state.counters.refused.fetch_add(1, Ordering::Relaxed);
    }
    e
}

async fn discover(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: DiscoverRequest = parse_body(&body).map_err(|e| refused(&state, e))?;
    let cap = state.settings.max_timeout;
    let filter = request.filter.to_filter().map_err(|e| refused(&state, e))?;
    let timeout = request
        .discovery_timeout
        .map(|t| seconds("discovery_timeout", t, cap))
        .transpose()
        .map_err(|e| refused(&state, e))?;
    let discovery = match &request.discovery {
        Some(spec) => spec
            .to_discovery(&state.options)
            .map_err(|e| refused(&state, e))?,
        None => mco_client::Discovery::from_method(
            state.options.default_discovery_method,
            Default::default(),
            &state.options,
        )?,
    };
    let _permit = state
        .clients
        .admit(&caller.0)
        .ok_or_else(|| too_many(&caller))?;
    let client = state.clients.client(&caller.0).await?;
    let found = client
        .discover_with(&discovery, &filter, request.collective.as_deref(), timeout)
        .await?;
    Ok(Json(json!({
        "nodes": found.nodes,
        "method": found.method.name(),
        "discovery_time_ms": found.elapsed.as_secs_f64() * 1000.0,
    })))
}

/// `GET /api/v1/events?types=puppet.*,node.started&since_ms=...&since_sequence=...&collective=...`:
/// the fleet's events as Server-Sent Events, verified by the caller's own client, for as long
/// as the caller reads (one of its calls in flight).
async fn events(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut wanted = mco_client::EventQuery::new();
    if let Some(types) = query.get("types").filter(|t| !t.is_empty()) {
        let patterns = types
            .split(',')
            .map(|t| t.trim().parse::<mco_spec::event::TypePattern>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(&state, ApiError::bad_field("types", e)))?;
        wanted = wanted.types(patterns);
    }
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query
            .get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    refused(
                        &state,
                        ApiError::bad_field(name, format!("{v:?} is not a whole number")),
                    )
                })
            })
            .transpose()
    };
    match (number("since_ms")?, number("since_sequence")?) {
        (Some(_), Some(_)) => {
            return Err(refused(
                &state,
                ApiError::bad_field("since_ms", "give since_ms or since_sequence, not both"),
            ))
        }
        (Some(ms), None) => wanted = wanted.since(mco_client::Since::Time(ms)),
        (None, Some(n)) => wanted = wanted.since(mco_client::Since::Sequence(n.max(1))),
        (None, None) => {}
    }
    if let Some(collective) = query.get("collective") {
        wanted = wanted.collective(collective);
    }
    let permit = state
        .clients
        .admit(&caller.0)
        .ok_or_else(|| too_many(&caller))?;
    let client = state.clients.client(&caller.0).await?;
    let events = client.events(wanted).await?;
    Ok(stream::fleet_events(events, permit))
}

fn too_many(caller: &Caller) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_calls",
        format!(
            "caller {} has as many calls in flight as this gateway allows (max_calls_per_caller)",
            caller.0
        ),
    )
}

/// How the caller wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Collected,
    Sse,
    Ndjson,
}

fn answer_form(headers: &HeaderMap) -> Answer {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or_default();
    if accept.contains("text/event-stream") {
        Answer::Sse
    } else if accept.contains("application/x-ndjson") {
        Answer::Ndjson
    } else {
        Answer::Collected
    }
}

async fn call(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((agent, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: CallRequest = parse_body(&body).map_err(|e| refused(&state, e))?;
    let call = request
        .to_call(&agent, &action, &state.options, state.settings.max_timeout)
        .map_err(|e| refused(&state, e))?;
    let permit = state
        .clients
        .admit(&caller.0)
        .ok_or_else(|| too_many(&caller))?;
    let client = state.clients.client(&caller.0).await?;
    let in_flight = InFlight::new(state.clone());
    let replies = client
        .call(call)
        .await
        .map_err(|e| refused(&state, ApiError::from(e)))?;
    tracing::info!(caller = %caller.0, %agent, %action, nodes = replies.stats().discovered, "call");
    Ok(match answer_form(&headers) {
        Answer::Collected => {
            let result = replies.collect().await;
            drop((permit, in_flight));
            Json(stream::collected(result)).into_response()
        }
        Answer::Sse => stream::sse(stream::events(replies, (permit, in_flight))),
        Answer::Ndjson => stream::ndjson(stream::events(replies, (permit, in_flight))),
    })
}

/// The API's routes, as `(method, path)`: what the OpenAPI document must describe (a test
/// keeps the two and the router in step).
pub const ROUTES: [(&str, &str); 8] = [
    ("get", "/api/v1/events"),
    ("get", "/api/v1/whoami"),
    ("get", "/api/v1/status"),
    ("get", "/api/v1/agents"),
    ("get", "/api/v1/agents/{agent}"),
    ("post", "/api/v1/discover"),
    ("post", "/api/v1/agents/{agent}/actions/{action}"),
    ("get", "/api/v1/openapi.json"),
];
