//! What a web application does with mco: one `Client`, built from the same `client.toml` the
//! command line reads, in the application state, shared by every request handler; each
//! handler makes its own call and turns the replies, the DDL's summaries and the statistics
//! into JSON, and the error kinds into HTTP status codes.
//!
//! In axum this is `State<AppState>` with `AppState { mco: Client }` and a handler whose body
//! is `service_status` below; in actix-web, `web::Data<Client>`. No web framework is needed to
//! show the part that matters. It builds with `default-features = false` (no registry
//! database clients), as a web application would depend on `mco-client`.
//!
//! ```text
//! cargo run -p mco-client --no-default-features --example web_status -- [CONFIG] [FILTER...]
//! ```
//!
//! prints one JSON document with a result (or an error and its HTTP status) per filter.

use mco_client::{CallErrorKind, Client, ClientBuilder};
use serde_json::{json, Value};

// README:begin
use mco_client::{Call, CallError, Filter};

/// A handler: `GET /status?filter=country=uk` → per-node JSON, the DDL's summaries and the
/// call's statistics, or the error's HTTP status.
async fn service_status(mco: &Client, filter: &str) -> Result<serde_json::Value, CallError> {
    let mut wanted = Filter::default();
    wanted.add_with(filter)?;
    let result = mco
        .call(
            Call::new("rpcutil", "get_fact")
                .arg("fact", "country")
                .filter(wanted),
        )
        .await?
        .collect()
        .await;
    Ok(serde_json::json!({
        "nodes": result.replies.iter().map(|r| serde_json::json!({
            "node": r.sender, "ok": r.statuscode.is_ok(), "country": r.data["value"],
        })).collect::<Vec<_>>(),
        "summaries": result.aggregates(),
        "responded": result.stats.responded,
        "no_response_from": result.stats.no_response_from,
    }))
}
// README:end

/// The HTTP status a handler answers an error with.
fn http_status(kind: CallErrorKind) -> u16 {
    match kind {
        CallErrorKind::InvalidInput | CallErrorKind::UnknownCollective => 400,
        CallErrorKind::Broker | CallErrorKind::NotQueued => 503,
        _ => 500,
    }
}

/// The application's shared state: cloning a `Client` is cheap (one connection underneath).
#[derive(Clone)]
struct AppState {
    mco: Client,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let builder = match args.next() {
        Some(path) => ClientBuilder::from_config(path)?,
        None => ClientBuilder::from_default_config()?,
    };
    let state = AppState {
        mco: builder.connect().await?,
    };
    let filters: Vec<String> = args.collect();
    // Every "request" is served at once from the same state.
    let handlers = filters.iter().map(|filter| {
        let state = state.clone();
        async move {
            let answer = match service_status(&state.mco, filter).await {
                Ok(body) => json!({"status": 200, "body": body}),
                Err(e) => json!({"status": http_status(e.kind()), "error": e.to_string()}),
            };
            (filter.clone(), answer)
        }
    });
    let answers: serde_json::Map<String, Value> = futures::future::join_all(handlers)
        .await
        .into_iter()
        .collect();
    println!("{}", serde_json::to_string_pretty(&answers)?);
    Ok(())
}
