//! `mco-sim`: a simulated fleet as a load generator for benchmarks and scale tests. Runs
//! `--count` node identities in one process through mcod's request pipeline (see
//! `mco_bench::sim`) until SIGTERM or SIGINT. Prints one line when every identity is
//! subscribed. Exit codes: 0 after a clean stop, 1 on a startup error (one line on stderr).
//!
//! ```text
//! mco keys issuer --dir ca
//! mco-sim --broker nats://127.0.0.1:4222 --count 10000 --issuer-key ca/issuer.key
//! mco ping                  # with a client token from the same issuer
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mco_bench::keys::Issuer;
use mco_bench::sim::{Fleet, FleetSpec};

/// Simulate many mco nodes in one process (a load generator, not a node).
#[derive(Debug, Parser)]
#[command(name = "mco-sim", version, about, long_about = None)]
struct Cli {
    /// The NATS server, or a cluster's servers separated by commas (the connections are
    /// spread over them).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    broker: String,
    /// How many node identities.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Identities are PREFIX-00000, PREFIX-00001, ...
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// A collective every identity belongs to; repeat for several (the first is the main one).
    #[arg(long = "collective", default_value = "mco")]
    collectives: Vec<String>,
    /// NATS connections the identities share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The issuer's private key (from `mco keys issuer`): each identity gets its own key and
    /// a server token signed by it, and trusts only client tokens it signed.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure")]
    issuer_key: Option<PathBuf>,
    /// Run without signatures: accept unsigned requests, send unsigned replies.
    #[arg(long, conflicts_with = "issuer_key")]
    insecure: bool,
    /// Action policies every identity applies (mcod's policy_dir).
    #[arg(long, value_name = "DIR")]
    policy_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mco-sim: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let issuer = match &cli.issuer_key {
        Some(path) => Some(Issuer::from_file(path)?),
        None => None,
    };
    let spec = FleetSpec {
        count: cli.count,
        prefix: cli.prefix.clone(),
        collectives: cli.collectives.clone(),
        connections: cli.connections,
        issuer,
        policy_dir: cli.policy_dir.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let started = std::time::Instant::now();
        let fleet = Fleet::start(spec, &cli.broker).await?;
        println!(
            "mco-sim: {} identities ({}-00000 …) ready in {:.1} s on {} connection(s), {}",
            fleet.nodes().len(),
            cli.prefix,
            started.elapsed().as_secs_f64(),
            cli.connections.max(1),
            if cli.insecure { "INSECURE" } else { "signed" }
        );
        shutdown_signal().await;
        fleet.stop().await;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
