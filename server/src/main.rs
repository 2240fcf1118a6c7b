//! `mcod`: the mco node daemon. Parses flags, loads the configuration, and runs the daemon
//! (or, with `mcod registry`, the registry service) until SIGTERM or SIGINT. Exit codes: 0
//! after a clean shutdown, 1 on a configuration or startup error (printed as one line).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mco_server::facts::{builtin_facts, FactStore};
use mco_server::{Node, Settings};

/// The mco node daemon: serves agents to the fleet over NATS.
#[derive(Debug, Parser)]
#[command(name = "mcod", version, about, long_about = None)]
struct Cli {
    /// The configuration file (TOML; see mcod.example.toml).
    #[arg(
        short,
        long,
        default_value = "/etc/mco/mcod.toml",
        env = "MCOD_CONFIG",
        global = true
    )]
    config: PathBuf,
    /// Check the configuration, print one line and exit.
    #[arg(long)]
    check: bool,
    /// Override the configured log level (error, warn, info, debug, trace).
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Override the configured log format: auto (text on a terminal, else JSON), text, json.
    #[arg(long, global = true, value_enum)]
    log_format: Option<mco_server::config::LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry service instead of the node daemon: store the registrations the
    /// fleet publishes in a database, for `mco ... --dm registry`. Uses the configuration's
    /// brokers, collectives, broker_auth and issuer_keys; the node's agents are not served.
    Registry(RegistryArgs),
    /// Events on this node: `mcod event emit TYPE key=value...` says one through the running
    /// mcod (its local socket), signed with the node's key, for tools without broker
    /// credentials of their own.
    Event {
        #[command(subcommand)]
        command: EventCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EventCommand {
    /// Say an event: `mcod event emit check.disk_full mount=/ used=97 --severity warning`.
    Emit(EmitArgs),
}

#[derive(Debug, Args)]
struct EmitArgs {
    /// The type, `<category>.<name>` (not node.* or agent.*, which are mcod's own).
    #[arg(value_name = "TYPE")]
    kind: String,
    /// The data, as key=value (strings).
    #[arg(value_name = "KEY=VALUE")]
    fields: Vec<String>,
    /// The data as a JSON object (fields given as key=value are added to it).
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// How much it matters: debug, info, warning, error, critical.
    #[arg(long, default_value = "info")]
    severity: String,
}

#[derive(Debug, Args)]
struct RegistryArgs {
    /// The database: an SQLite file (created if missing, mode 0640; default registry.sqlite
    /// in the configuration's state_dir) or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=CA.pem]
    /// (TLS as libpq's sslmode says; without it, required for a server that is not on this
    /// machine).
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Forget nodes that have not registered for this many seconds. Keep it a few times the
    /// nodes' [registration] interval_seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    expire_after: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcod: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.config)?;
    if let Some(Command::Event {
        command: EventCommand::Emit(args),
    }) = &cli.command
    {
        return emit(&settings, args);
    }
    if cli.check {
        println!(
            "{}: OK (identity {}, collectives {})",
            cli.config.display(),
            settings.identity,
            settings.collectives.join(",")
        );
        return Ok(());
    }
    let level = cli
        .log_level
        .clone()
        .unwrap_or_else(|| settings.log_level.clone());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,mco_server={level},mco_agents={level},mco_discovery={level},mcod={level}"
        ))
    });
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let format = cli.log_format.unwrap_or(settings.log_format);
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if format.is_json(on_terminal) {
        logger.json().init();
    } else {
        // Colour codes only for a terminal: log files and journald get plain text.
        logger.with_ansi(on_terminal).init();
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Some(Command::Registry(args)) = cli.command {
        let options = mco_server::registry::RegistryOptions {
            db: args
                .db
                .unwrap_or_else(|| mco_server::registry::RegistryOptions::default_db(&settings)),
            expire_after: std::time::Duration::from_secs(args.expire_after),
        };
        return runtime.block_on(async move {
            mco_server::registry::serve(&settings, options, shutdown_signal())
                .await
                .map_err(anyhow::Error::from)
        });
    }
    let result = runtime.block_on(async move {
        let facts = FactStore::new(
            builtin_facts(),
            settings.facts_files.clone(),
            settings.classes_file.clone(),
        );
        let agents = mco_server::reload::agents_at_start(&settings, &facts.facts()).await;
        let security = mco_server::security::Security::load(&settings)?;
        let plugins = mco_ddl::Plugins::load(&settings.plugins_dir)?;
        let node = Arc::new(
            Node::new(settings, facts, agents)
                .with_security(security)
                .with_plugins(plugins),
        );
        mco_server::run_reloading(node, shutdown_signal(), hangups())
            .await
            .map_err(anyhow::Error::from)
    });
    // A data-plugin call stuck in a blocking read (it was given up on at its time limit)
    // must not keep the daemon from exiting: dropping the runtime would wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// `mcod event emit`: one event through the running mcod's local socket.
fn emit(settings: &Settings, args: &EmitArgs) -> anyhow::Result<()> {
    let mut data = match &args.data {
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => anyhow::bail!("--data must be a JSON object"),
        },
        None => serde_json::Map::new(),
    };
    for field in &args.fields {
        let Some((key, value)) = field.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            anyhow::bail!("{field:?} is not key=value");
        };
        data.insert(key.to_string(), value.into());
    }
    let severity: mco_spec::event::Severity = args
        .severity
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let event = serde_json::json!({"type": args.kind, "severity": severity, "data": data});
    let path = mco_server::emit::socket_path(settings);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(mco_server::emit::emit(&path, &event))
        .map_err(|e| anyhow::anyhow!(e))
}

/// Yields on each SIGHUP: reload facts, policies and external agents.
fn hangups() -> impl futures::Stream<Item = ()> + Send + 'static {
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    futures::stream::unfold(hangup, |hangup| async move {
        match hangup {
            Ok(mut signal) => signal.recv().await.map(|()| ((), Ok(signal))),
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP, so it will not reload: {e}");
                None
            }
        }
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
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
