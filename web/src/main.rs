//! `mco-web`: serves the gateway, checks its configuration, and adds bearer tokens. Flags and
//! one-line errors only; everything else is the `mco_web` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mco_client::ClientBuilder;
use mco_web::api::{router, AppState};
use mco_web::callers::{add_token, Callers};
use mco_web::config::{parse_listen, WebSettings};
use mco_web::serve;

/// The mco web gateway: an HTTP API and a browser console for calling the fleet.
///
/// Reads the same client.toml as mco (its [web] table for HTTP). Callers authenticate with
/// bearer tokens (`mco-web token add NAME`); each caller's requests are signed with that
/// caller's own mco key from credentials_dir.
#[derive(Debug, Parser)]
#[command(name = "mco-web", version)]
struct Cli {
    /// Client configuration file (default: where mco looks).
    #[arg(short = 'c', long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Listen on this address instead of [web] listen (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR:PORT", global = true)]
    listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and the console (the default).
    Serve,
    /// Check the configuration as `serve` would, without listening.
    Check,
    /// Manage bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token for a caller: printed once, its hash added to callers_file.
    Add {
        /// The caller; its mco key and token are credentials_dir/NAME.key and NAME.token.
        name: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCO_WEB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mco-web: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, without repeating a cause its context already says.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// The configuration file, the client settings and the `[web]` settings.
fn load(cli: &Cli) -> anyhow::Result<(Option<PathBuf>, ClientBuilder, WebSettings)> {
    let path = mco_client::config::locate(cli.config.as_deref());
    let (builder, mut settings) = match &path {
        Some(p) => (ClientBuilder::from_config(p)?, WebSettings::load(p)?),
        None => (ClientBuilder::default(), WebSettings::default()),
    };
    if let Some(listen) = &cli.listen {
        settings.listen = parse_listen(listen).map_err(anyhow::Error::msg)?;
    }
    Ok((path, builder, settings))
}

fn callers(settings: &WebSettings) -> anyhow::Result<Callers> {
    match &settings.callers_file {
        Some(path) if path.exists() => Ok(Callers::load(path)?),
        Some(_) | None => Ok(Callers::default()),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (path, builder, settings) = load(&cli)?;
    match &cli.command {
        Some(Command::Token {
            command: TokenCommand::Add { name },
        }) => {
            let file = settings.callers_file.clone().context(
                "no callers_file in [web]: set one (e.g. callers_file = \"web-callers.toml\")",
            )?;
            let token = add_token(&file, name)?;
            println!("{token}");
            eprintln!(
                "mco-web: added a token for {name} to {}; it is shown only now",
                file.display()
            );
            Ok(())
        }
        Some(Command::Check) => {
            let callers = callers(&settings)?;
            serve::check_exposure(&settings, callers.len())?;
            if let Some((cert, key)) = &settings.tls {
                serve::tls_config(cert, key)?;
            }
            println!(
                "{}: ok ({} caller token(s), listen {})",
                path.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "defaults".into()),
                callers.len(),
                settings.listen
            );
            Ok(())
        }
        Some(Command::Serve) | None => {
            let callers = callers(&settings)?;
            serve::check_exposure(&settings, callers.len())?;
            if callers.is_empty() {
                tracing::warn!(
                    "no caller tokens: every API call will be refused (mco-web token add NAME)"
                );
            }
            let tls = match &settings.tls {
                Some((cert, key)) => Some(serve::tls_config(cert, key)?),
                None => None,
            };
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(async move {
                let listener = serve::bind(&settings).await?;
                let addr = listener.local_addr().context("listening address")?;
                let scheme = if tls.is_some() { "https" } else { "http" };
                eprintln!("mco-web: serving {scheme}://{addr}/ (console at /, API at /api/v1)");
                let state = Arc::new(AppState::new(settings, callers, builder));
                serve::serve(listener, router(state), tls, shutdown_signal())
                    .await
                    .context("serving")?;
                Ok::<_, anyhow::Error>(())
            })?;
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            Ok(())
        }
    }
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
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
