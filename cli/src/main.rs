//! `mco`, the fleet's command line: flags (clap derive; their doc comments are the help
//! text), one file per application, rendering, and the exit codes. Everything a caller could
//! want from a call lives in the `mco-client` library; this binary parses, renders and maps
//! outcomes to exit codes.
//!
//! Exit codes follow MCollective: 0 every node answered OK; 1 nothing discovered, or a fatal
//! error (printed as one line on stderr); 2 some nodes failed or did not answer; 3 nodes were
//! discovered but none answered; 4 no discovery was done (nodes named with -I) and none
//! answered; 64 a usage error (unknown flag, bad value). A closed stdout (`mco ... | head`) is
//! not an error. `MCO_EXTRA_OPTS` adds default flags to every command.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mco_spec::Filter;

use mco_client::config::ClientConfig;
use mco_client::{CallError, Client, ClientBuilder, Ddls};

mod broker;
mod callbacks;
mod chart;
mod completion;
mod config;
mod discovery;
mod events;
mod examples;
mod facts;
mod find;
mod format;
mod inventory;
mod inventory_script;
mod keys;
mod man;
mod output;
mod ping;
mod plot;
mod plugin;
mod progress;
mod replies;
mod rpc;
mod runall;
mod shortcuts;
mod table;

const EXIT_CODES: &str = "Exit codes:
  0  every node answered OK
  1  no nodes discovered, or a fatal error
  2  some nodes failed or did not answer
  3  nodes were discovered but none answered
  4  nodes were named with -I (no discovery) and none answered
  64 a usage error: an unknown flag or a bad value

MCO_EXTRA_OPTS adds its flags to every command (e.g. MCO_EXTRA_OPTS='--dt 1 -T eu').";

/// mco: run actions on a fleet of nodes over NATS.
#[derive(Debug, Parser)]
// The first line of `mco --help` is the package's description from before the command line
// had a crate of its own, kept so that the help operators know (and its snapshot) is unchanged.
#[command(
    name = "mco",
    version,
    about = "The mco client library and the mco command line.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The applications.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ping every matching node and show how fast each answers.
    #[command(after_help = examples::PING)]
    Ping(ping::PingArgs),
    /// Call an agent's action: mco rpc AGENT ACTION [key=value...] [filters].
    #[command(after_help = examples::RPC)]
    Rpc(rpc::RpcArgs),
    /// Check, start, stop or restart a service: mco service NAME status|start|stop|restart.
    #[command(after_help = examples::SERVICE)]
    Service(shortcuts::ServiceArgs),
    /// Check, install, update, uninstall or purge a package: mco package NAME ACTION.
    #[command(after_help = examples::PACKAGE)]
    Package(shortcuts::PackageArgs),
    /// Run, check, enable or disable Puppet; count and summarise its state across the fleet.
    #[command(after_help = examples::PUPPET)]
    Puppet(shortcuts::PuppetArgs),
    /// Draw a numeric output across the matching nodes as a histogram: mco plot AGENT ACTION OUTPUT.
    #[command(after_help = examples::PLOT)]
    Plot(plot::PlotArgs),
    /// List the nodes that match the filters.
    #[command(after_help = examples::FIND)]
    Find(find::FindArgs),
    /// Count the values of a fact across the matching nodes.
    #[command(after_help = examples::FACTS)]
    Facts(facts::FactsArgs),
    /// Show everything one node reports about itself.
    #[command(after_help = examples::INVENTORY)]
    Inventory(inventory::InventoryArgs),
    /// Show agent documentation from their DDLs; check DDL files and convert Ruby ones.
    #[command(after_help = examples::PLUGIN)]
    Plugin(plugin::PluginArgs),
    /// Create the issuer key and issue client and server tokens; show and verify tokens.
    #[command(after_help = examples::KEYS)]
    Keys(keys::KeysArgs),
    /// Follow the fleet's events (services changed, Puppet runs, nodes started), live or since a time.
    #[command(after_help = examples::EVENTS)]
    Events(events::EventsArgs),
    /// Read replies sent to a subject (by mco rpc --reply-to SUBJECT), here or elsewhere.
    #[command(after_help = examples::REPLIES)]
    Replies(replies::RepliesArgs),
    /// Lock the broker down: nkeys, nats-server permissions and the direct-request streams.
    Broker(broker::BrokerArgs),
    /// Show the effective client configuration and where each value came from; --check validates it.
    #[command(after_help = examples::CONFIG)]
    Config(config::ConfigArgs),
    /// Write a shell completion script (bash, zsh, fish) with the DDLs' agent and action names.
    #[command(after_help = examples::COMPLETION)]
    Completion(completion::CompletionArgs),
    /// Write the man pages to DIR (for packaging; docs/man/ holds them).
    #[command(hide = true)]
    Man(man::ManArgs),
}

/// Options every application takes: connection, targeting and output.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Client configuration file (default: $MCO_CONFIG, ~/.config/mco/client.toml, /etc/mco/client.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// NATS server URL; repeat for a pool. Overrides the configuration file.
    #[arg(long, value_name = "URL")]
    pub broker: Vec<String>,
    /// Fact filter: fact=value, with == != =~ < > <= >=, /regex/ values, dotted paths (os.family).
    #[arg(
        short = 'F',
        long = "wf",
        visible_alias = "with-fact",
        value_name = "FACT",
        help_heading = "Filters"
    )]
    pub fact_filter: Vec<String>,
    /// Class filter: a class name or /regex/.
    #[arg(
        short = 'C',
        long = "wc",
        visible_alias = "with-class",
        value_name = "CLASS",
        help_heading = "Filters"
    )]
    pub class_filter: Vec<String>,
    /// Identity filter: a node name or /regex/; several are OR'd. Plain names skip discovery.
    #[arg(
        short = 'I',
        long = "wi",
        visible_alias = "with-identity",
        value_name = "IDENTITY",
        help_heading = "Filters"
    )]
    pub identity_filter: Vec<String>,
    /// Agent filter: an agent name or /regex/.
    #[arg(
        short = 'A',
        long = "wa",
        visible_alias = "with-agent",
        id = "agent_filter",
        value_name = "AGENT",
        help_heading = "Filters"
    )]
    pub agent_filter: Vec<String>,
    /// Combined fact and class filter: "country=uk webserver".
    #[arg(
        short = 'W',
        long = "with",
        value_name = "FILTER",
        help_heading = "Filters"
    )]
    pub with_filter: Vec<String>,
    /// Compound filter: "(country=uk and /web/) or not environment=dev", fstat('/etc/hosts').size>=100.
    #[arg(
        short = 'S',
        long = "select",
        value_name = "EXPR",
        help_heading = "Filters"
    )]
    pub compound_filter: Vec<String>,
    /// Collective to address (must be one the client knows).
    #[arg(short = 'T', long = "target", value_name = "COLLECTIVE")]
    pub target: Option<String>,
    /// Discovery method: broadcast (mc), flatfile, stdin, registry, external. Default: stdin
    /// when stdin is a pipe or file, else the configured default (broadcast).
    #[arg(
        long = "dm",
        alias = "disc-method",
        value_name = "METHOD",
        help_heading = "Discovery"
    )]
    pub discovery_method: Option<String>,
    /// Discovery option KEY=VALUE (flatfile: file=PATH, or just PATH as in MCollective;
    /// registry: url=URL; external: command=PROGRAM, and any other options it takes).
    /// Repeatable.
    #[arg(
        long = "do",
        alias = "disc-option",
        value_name = "KEY=VALUE",
        help_heading = "Discovery"
    )]
    pub discovery_options: Vec<String>,
    /// Discover from a file of node names (one a line, or a JSON/YAML list): --dm flatfile.
    #[arg(long, value_name = "FILE", help_heading = "Discovery")]
    pub nodes: Option<PathBuf>,
    /// Act on N nodes, or N% of them, chosen at random from those discovered.
    #[arg(
        long = "limit-nodes",
        visible_aliases = ["ln", "limit"],
        value_name = "N|N%",
        help_heading = "Discovery"
    )]
    pub limit_nodes: Option<String>,
    /// Act on one node chosen at random from those discovered (--limit-nodes 1).
    #[arg(
        short = '1',
        long = "one",
        conflicts_with = "limit_nodes",
        help_heading = "Discovery"
    )]
    pub one: bool,
    /// Seed for --limit-nodes: the same seed picks the same nodes.
    #[arg(
        long,
        value_name = "SEED",
        requires = "limit_nodes",
        help_heading = "Discovery"
    )]
    pub limit_seed: Option<u64>,
    /// Discovery timeout, seconds.
    #[arg(
        long = "dt",
        alias = "discovery-timeout",
        value_name = "SECONDS",
        help_heading = "Discovery"
    )]
    pub discovery_timeout: Option<f64>,
    /// How long to wait for replies, seconds.
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Print JSON instead of text.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Say more: which nodes, timings, call statistics.
    #[arg(short = 'v', long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Say less: no discovery line and no progress bar (results and warnings still print).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// A fatal error with its exit code (1 unless said otherwise).
#[derive(Debug)]
pub struct Failure(pub anyhow::Error);

/// A mistake on the command line found after parsing (arguments that only make sense
/// together): it exits with [`USAGE_ERROR`], as clap's own usage errors do, so a script can
/// tell a typo from nodes that failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.into())
    }
}

impl CommonArgs {
    /// The filter the flags describe, with its data-plugin names checked against the DDLs
    /// the configuration names: a typo is an error here, never an empty result.
    pub fn filter(&self) -> Result<Filter, CallError> {
        let mut filter = Filter::default();
        for f in &self.fact_filter {
            filter.add_fact(f)?;
        }
        for c in &self.class_filter {
            filter.add_class(c)?;
        }
        for i in &self.identity_filter {
            filter.add_identity(i)?;
        }
        for a in &self.agent_filter {
            filter.add_agent(a)?;
        }
        for w in &self.with_filter {
            filter.add_with(w)?;
        }
        for s in &self.compound_filter {
            filter.add_compound(s)?;
        }
        let dirs = self
            .client_config()
            .map(|(_, dirs, _)| dirs)
            .unwrap_or_default();
        Ddls::new(dirs).check_filter(&filter)?;
        Ok(filter)
    }

    /// The configuration file's settings and the DDL directories it names.
    pub fn client_config(&self) -> Result<(ClientConfig, Vec<PathBuf>, PathBuf), Failure> {
        load_config(self.config.as_deref())
    }

    /// Connects with the configuration file and flags applied.
    pub async fn connect(&self) -> Result<Client, Failure> {
        let client = connect(self.config.as_deref(), &self.broker).await?;
        client.collective(self.target.as_deref())?;
        Ok(client)
    }

    /// `--dt` as a duration.
    pub fn discovery_timeout(&self) -> Result<Option<Duration>, Failure> {
        seconds("--dt", self.discovery_timeout)
    }

    /// `-t` as a duration.
    pub fn timeout(&self) -> Result<Option<Duration>, Failure> {
        seconds("-t", self.timeout)
    }
}

/// Connects with the configuration file (`explicit`, or the usual places) and `--broker`
/// URLs applied.
pub async fn connect(
    explicit: Option<&std::path::Path>,
    brokers: &[String],
) -> Result<Client, Failure> {
    let mut builder = match mco_client::config::locate(explicit) {
        Some(path) => ClientBuilder::from_config(path)?,
        None => ClientBuilder::default(),
    };
    if !brokers.is_empty() {
        builder = builder.brokers(brokers.to_vec());
    }
    Ok(builder.connect().await?)
}

/// Loads the configuration file (if any) and resolves its DDL directories.
pub fn load_config(
    explicit: Option<&std::path::Path>,
) -> Result<(ClientConfig, Vec<PathBuf>, PathBuf), Failure> {
    match mco_client::config::locate(explicit) {
        Some(path) => {
            let config = ClientConfig::load(&path)?;
            let base = path
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            let dirs = config.ddl_dirs(&base);
            Ok((config, dirs, base))
        }
        None => Ok((ClientConfig::default(), Vec::new(), PathBuf::new())),
    }
}

pub(crate) fn seconds(flag: &str, value: Option<f64>) -> Result<Option<Duration>, Failure> {
    match value {
        None => Ok(None),
        Some(v) if v > 0.0 && v <= 86_400.0 => Ok(Some(Duration::from_secs_f64(v))),
        Some(v) => Err(anyhow::anyhow!(
            "{flag} {v}: must be a number of seconds between 0 and 86400"
        )
        .into()),
    }
}

/// Text for stdout and stderr, written at the end so a closed pipe is handled in one place.
#[derive(Debug, Default)]
pub struct Printed {
    /// For stdout.
    pub out: String,
    /// For stderr.
    pub err: String,
}

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(run())
}

/// The exit code of a usage error (an unknown flag, a bad value): sysexits' `EX_USAGE`, apart
/// from 1 to 4, which say what happened to a call, so a script can tell a typo from a
/// partial failure.
pub const USAGE_ERROR: u8 = 64;

/// The command line: the arguments, then the words of `MCO_EXTRA_OPTS` (default flags for
/// every command, as MCollective's `MCOLLECTIVE_EXTRA_OPTS`), before any `--`.
fn arguments() -> Result<Vec<std::ffi::OsString>, String> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(extra) = std::env::var_os("MCO_EXTRA_OPTS").filter(|v| !v.is_empty()) else {
        return Ok(args);
    };
    let extra = extra
        .to_str()
        .and_then(shlex::split)
        .ok_or("MCO_EXTRA_OPTS is not a list of shell words")?;
    // Only after an application: `mco` alone, or `mco --help`, stays as it is.
    if args.len() > 1 {
        let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.splice(end..end, extra.into_iter().map(Into::into));
    }
    Ok(args)
}

/// Parses the command line, runs the application and returns the exit code.
fn run() -> u8 {
    let args = match arguments() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("mco: {e}");
            return USAGE_ERROR;
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and --version are asked for; the rest are mistakes.
            return if e.use_stderr() { USAGE_ERROR } else { 0 };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mco: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let mut printed = Printed::default();
    let code = runtime.block_on(async {
        let result = match cli.command {
            Command::Ping(a) => ping::run(&a, &mut printed).await,
            Command::Rpc(a) => rpc::run(&a, &mut printed).await,
            Command::Service(a) => shortcuts::service(a, &mut printed).await,
            Command::Package(a) => shortcuts::package(a, &mut printed).await,
            Command::Puppet(a) => shortcuts::puppet(a, &mut printed).await,
            Command::Plot(a) => plot::run(&a, &mut printed).await,
            Command::Find(a) => find::run(&a, &mut printed).await,
            Command::Facts(a) => facts::run(&a, &mut printed).await,
            Command::Inventory(a) => inventory::run(&a, &mut printed).await,
            Command::Plugin(a) => plugin::run(&a, &mut printed),
            Command::Keys(a) => keys::run(&a, &mut printed),
            Command::Replies(a) => replies::run(&a, &mut printed).await,
            Command::Events(a) => events::run(&a, &mut printed).await,
            Command::Broker(a) => broker::run(&a, &mut printed).await,
            Command::Config(a) => config::run(&a, &mut printed).await,
            Command::Completion(a) => completion::run(&a, &mut printed),
            Command::Man(a) => man::run(&a, &mut printed),
        };
        match result {
            Ok(code) => code,
            Err(Failure(e)) => {
                printed.err.push_str(&format!("mco: {}\n", one_line(&e)));
                if e.downcast_ref::<UsageError>().is_some() {
                    USAGE_ERROR
                } else {
                    1
                }
            }
        }
    });
    emit(&printed);
    code
}

/// An error and its causes as one line, each cause said once: the library's errors already
/// name their cause, and also keep it as their source.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn emit(printed: &Printed) {
    // A reader that went away (`| head`) is not an error: stop writing quietly.
    let _ = std::io::stderr().write_all(printed.err.as_bytes());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(printed.out.as_bytes())
        .and_then(|_| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `mco --help` and each application's help are checked in under `cli/help/`, so a
    /// change to the flags shows up in review and the docs cannot drift. `MCO_BLESS=1`
    /// rewrites them.
    #[test]
    fn help_texts_match_the_checked_in_snapshots() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("help");
        let mut root = Cli::command().term_width(100);
        root.build();
        let mut texts = vec![("mco.txt".to_string(), root.render_long_help().to_string())];
        for sub in root
            .get_subcommands_mut()
            .filter(|s| s.get_name() != "help" && !s.is_hide_set())
        {
            let name = format!("mco-{}.txt", sub.get_name());
            texts.push((name, sub.render_long_help().to_string()));
        }
        let bless = std::env::var_os("MCO_BLESS").is_some();
        let mut stale = Vec::new();
        for (name, text) in texts {
            let path = dir.join(&name);
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "help changed for {stale:?}: review and run MCO_BLESS=1 cargo test -p mco-cli help_texts"
        );
    }

    /// Each application's help ends with examples (broker's with its workflow, which is one).
    #[test]
    fn every_application_shows_examples() {
        let mut root = Cli::command();
        root.build();
        for sub in root
            .get_subcommands_mut()
            .filter(|s| s.get_name() != "help" && !s.is_hide_set())
        {
            let text = sub.render_long_help().to_string();
            assert!(
                text.contains("\nExamples:\n") || text.contains("\nWorkflow:\n"),
                "mco {} --help has no examples",
                sub.get_name()
            );
        }
    }

    #[test]
    fn filters_come_from_flags() {
        let cli = Cli::try_parse_from([
            "mco",
            "find",
            "-F",
            "cpus>=4",
            "-W",
            "country=uk web",
            "-I",
            "/^db/",
            "-I",
            "web1",
        ])
        .unwrap();
        let Command::Find(args) = cli.command else {
            panic!()
        };
        let filter = args.common.filter().unwrap();
        assert_eq!(filter.fact.len(), 2);
        assert_eq!(filter.class, ["web"]);
        assert_eq!(filter.identity, ["/^db/", "web1"]);
        let bad = Cli::try_parse_from(["mco", "find", "-S", "nope('x').a=1"]).unwrap();
        let Command::Find(args) = bad.command else {
            panic!()
        };
        assert!(args
            .common
            .filter()
            .unwrap_err()
            .to_string()
            .contains("unknown data plugin \"nope\""));
        assert!(seconds("--dt", Some(-1.0)).is_err());
    }
}
