//! What a web application does with mco: one `Client` in the application state, shared by
//! every request handler, each handler making its own call and turning the replies into
//! JSON for the browser.
//!
//! In axum this is `State<AppState>` with `AppState { mco: Client }` and a handler whose body
//! is `service_status` below; in actix-web, `web::Data<Client>`. No web framework is needed to
//! show the part that matters.
//!
//! Run against a fleet (for example the demo's, `scripts/demo.sh --keep` prints the URL):
//!
//! ```text
//! cargo run -p mco-client --example web_status -- nats://127.0.0.1:PORT country=uk
//! ```

use std::time::Duration;

use mco_client::{Call, Client, ClientError};
use mco_spec::Filter;
use serde_json::{json, Value};

/// The application's shared state: cloning a `Client` is cheap (one connection underneath).
#[derive(Clone)]
struct AppState {
    mco: Client,
}

/// A handler: `GET /status?fact=country=uk` → per-node JSON plus the call's statistics.
async fn service_status(state: AppState, fact_filter: &str) -> Result<Value, ClientError> {
    let mut filter = Filter::default();
    filter.add_fact(fact_filter)?;
    let result = state
        .mco
        .call(
            Call::new("rpcutil", "inventory")
                .filter(filter)
                .timeout(Duration::from_secs(5)),
        )
        .await?
        .collect()
        .await;
    let nodes: Vec<Value> = result
        .replies
        .iter()
        .map(|r| json!({"node": r.sender, "ok": r.statuscode.is_ok(), "classes": r.data["classes"], "os": r.data["facts"]["os"]}))
        .collect();
    Ok(json!({
        "nodes": nodes,
        "discovered": result.stats.discovered,
        "responded": result.stats.responded,
        "no_response_from": result.stats.no_response_from,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let broker = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let filter = args.next().unwrap_or_else(|| "country=uk".into());
    let state = AppState {
        mco: Client::builder()
            .broker(broker)
            .caller("user=webapp")
            .connect()
            .await?,
    };

    // Two "requests" served at once from the same state.
    let (a, b) = tokio::join!(
        service_status(state.clone(), &filter),
        service_status(state.clone(), "cpus>=1")
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({"first": a?, "second": b?}))?
    );
    Ok(())
}
