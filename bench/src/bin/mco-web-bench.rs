//! `mco-web-bench`: what the web gateway costs over calling the library directly. Starts its
//! own `nats-server`, five real `mcod` processes and a real `mco-web` (the binaries next to
//! this one: build with `cargo build --release --workspace --bins`), then measures in one run
//! `rpcutil ping` to the five nodes (broadcast discovery, then one broadcast) (a) through `mco-client` in this process and (b) through
//! the gateway over HTTP: the latency of one call at a time (collected JSON) and the calls
//! per second with many clients at once, each streaming NDJSON. Prints the figures with
//! their ratios; `--json FILE` writes them. See `bench/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use mco_bench::measure::{table, Figure, Samples};
use mco_client::{Call, ClientBuilder};
use mco_testsupport::web::WebGateway;
use mco_testsupport::{Fleet, NodeSpec};
use serde_json::json;

/// Measure the web gateway against the client library on this machine.
#[derive(Debug, Parser)]
#[command(name = "mco-web-bench", version, about, long_about = None)]
struct Cli {
    /// Calls for each latency figure.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Clients at once for the throughput figures.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Calls each client makes in the throughput figures.
    #[arg(long, default_value_t = 10)]
    calls_per_client: usize,
    /// Write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

const NODES: usize = 5;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mco-web-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mco-web-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let specs = (1..=NODES)
        .map(|i| NodeSpec::new(&format!("n{i}"), json!({"n": i}), &[]))
        .collect();
    // Broadcast calls: the gateway's cost is what is measured, not the direct queue's (with
    // 100 callers at once the JetStream acknowledgements of 500 queued requests are what
    // limits, through either path). Discovery ends 200 ms after the last of the 5 replies (50 ms missed
    // the first replies of a caller whose token the nodes had not yet verified).
    // On this thread, which lives for the whole run: the test support kills its children
    // when the thread that started them exits (PR_SET_PDEATHSIG), and a blocking-pool
    // thread exits after 10 s idle, which took the broker and the nodes down mid-run.
    let fleet = tokio::task::block_in_place(|| {
        Fleet::start_with_client_config(
            specs,
            "direct_addressing_threshold = 0\ndiscovery_end = \"window\"\ndiscovery_window_ms = 200\n",
        )
    });
    let gateway = WebGateway::start_with(&fleet, &["bench"], "max_calls_per_caller = 100000\n");
    let client = ClientBuilder::from_config(fleet.client_config())?
        .key_file(gateway.credentials_dir().join("bench.key"))
        .token_file(gateway.credentials_dir().join("bench.token"))
        .connect()
        .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.clients)
        .build()?;
    let url = format!("{}/api/v1/agents/rpcutil/actions/ping", gateway.url());
    let token = gateway.token("bench").to_string();
    let web_call = |http: reqwest::Client, url: String, token: String, stream: bool| async move {
        let response = http
            .post(url)
            .bearer_auth(token)
            .header(
                "accept",
                if stream {
                    "application/x-ndjson"
                } else {
                    "application/json"
                },
            )
            .json(&json!({"timeout": 5}))
            .send()
            .await?;
        let text = response.error_for_status()?.text().await?;
        let replies = if stream {
            text.matches("\"event\":\"reply\"").count()
        } else {
            serde_json::from_str::<serde_json::Value>(&text)?["replies"]
                .as_array()
                .map_or(0, Vec::len)
        };
        anyhow::ensure!(replies == NODES, "a call got {replies} of {NODES} replies");
        Ok::<_, anyhow::Error>(())
    };

    // Warm both paths (connections, DDLs, the caller's client in the gateway).
    for _ in 0..10 {
        client
            .call(Call::new("rpcutil", "ping"))
            .await?
            .collect()
            .await;
        web_call(http.clone(), url.clone(), token.clone(), false).await?;
    }

    eprintln!(
        "mco-web-bench: warm; {} calls one at a time on each path",
        cli.samples
    );
    let mut library = Samples::new();
    let mut web = Samples::new();
    for _ in 0..cli.samples {
        let started = Instant::now();
        let result = client
            .call(Call::new("rpcutil", "ping"))
            .await?
            .collect()
            .await;
        anyhow::ensure!(result.stats.responded == NODES, "library call incomplete");
        library.push(started.elapsed());
        let started = Instant::now();
        web_call(http.clone(), url.clone(), token.clone(), false).await?;
        web.push(started.elapsed());
    }
    let library_latency = Figure::timing("one call, library", NODES, &library);
    let web_latency = Figure::timing("one call, gateway (collected)", NODES, &web)
        .against(&library_latency, "library");

    let total = cli.clients * cli.calls_per_client;
    eprintln!("mco-web-bench: {} library clients at once", cli.clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.clients {
        let client = client.clone();
        let n = cli.calls_per_client;
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                let r = client
                    .call(Call::new("rpcutil", "ping"))
                    .await?
                    .collect()
                    .await;
                anyhow::ensure!(r.stats.responded == NODES, "library call incomplete");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let library_rate = total as f64 / started.elapsed().as_secs_f64();

    let call = Arc::new(web_call);
    eprintln!(
        "mco-web-bench: {} streaming HTTP clients at once",
        cli.clients
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.clients {
        let (http, url, token, call) = (http.clone(), url.clone(), token.clone(), call.clone());
        let n = cli.calls_per_client;
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                call(http.clone(), url.clone(), token.clone(), true).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await.context("a streaming client")??;
    }
    let web_rate = total as f64 / started.elapsed().as_secs_f64();
    let library_rate = Figure::value("calls/s, library", cli.clients, "calls/s", library_rate);
    let web_rate = Figure::value(
        "calls/s, gateway (NDJSON streams)",
        cli.clients,
        "calls/s",
        web_rate,
    )
    .against(&library_rate, "library");

    let figures = vec![library_latency, web_latency, library_rate, web_rate];
    println!("{}", table(&figures));
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&figures)?)
            .with_context(|| path.display().to_string())?;
    }
    drop(gateway);
    drop(fleet);
    Ok(())
}
