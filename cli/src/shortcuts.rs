//! MCollective's per-agent applications, for operators who type them from memory:
//! `mco service NAME ACTION`, `mco package NAME ACTION` and `mco puppet ACTION`. Each is
//! `mco rpc` of that agent's action, with the same flags, checks and output
//! ([`crate::rpc::run`]). An action that changes nodes, addressed to the whole fleet with no
//! filter, asks first on a terminal, as MCollective does, and is refused without `-y` where
//! there is nobody to ask.
//!
//! Not for: anything `mco rpc` does not do; `mco puppet runall` (keeping N runs going across
//! the fleet) is not here.

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, ValueEnum};

use crate::format::{DisplayChoice, OutputArgs};
use crate::rpc::{BatchArgs, RpcArgs};
use crate::{CommonArgs, Failure, Printed};

/// What the three applications share: the safety prompt, batches, output and the usual flags.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// Do not ask before changing every node of the collective (no filter given).
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    #[command(flatten)]
    pub batching: BatchArgs,
    /// Print one JSON object with the replies, the DDL's aggregates and the call statistics.
    #[arg(long)]
    pub json_full: bool,
    #[command(flatten)]
    pub(super) output: OutputArgs,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// Arguments of `mco service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service, e.g. httpd.
    pub service: String,
    /// What to do with it.
    #[arg(value_enum)]
    pub action: ServiceAction,
    #[command(flatten)]
    pub(super) act: ActArgs,
}

/// `mco service` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceAction {
    /// Whether it runs.
    Status,
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
}

/// Arguments of `mco package`.
#[derive(Debug, Args)]
pub struct PackageArgs {
    /// The package, e.g. openssl.
    pub package: String,
    /// What to do with it.
    #[arg(value_enum)]
    pub action: PackageAction,
    /// More inputs as key=value (install: version=VERSION).
    #[arg(value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub(super) act: ActArgs,
}

/// `mco package` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PackageAction {
    /// Whether and which version is installed.
    Status,
    /// Install it.
    Install,
    /// Upgrade it to the newest version.
    Update,
    /// Remove it.
    Uninstall,
    /// Remove it with its configuration.
    Purge,
}

/// Arguments of `mco puppet`.
#[derive(Debug, Args)]
pub struct PuppetArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: PuppetAction,
    /// Inputs as key=value (runonce: tags, environment, splay...; disable: message).
    #[arg(value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// runonce: apply even if a run is in progress or splayed (force=true).
    #[arg(long)]
    pub force: bool,
    /// runonce: report what would change without changing it (noop=true).
    #[arg(long)]
    pub noop: bool,
    #[command(flatten)]
    pub(super) act: ActArgs,
}

/// `mco puppet` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PuppetAction {
    /// Run the Puppet agent once now.
    Runonce,
    /// Each node's Puppet state.
    Status,
    /// Enable the Puppet agent.
    Enable,
    /// Disable the Puppet agent (message=why).
    Disable,
    /// How many nodes are enabled, running, applying or idling (the summaries of status).
    Count,
    /// Run times and resource counts across the fleet (the summaries of last_run_summary).
    Summary,
}

/// `mco service NAME ACTION`.
pub(super) async fn service(args: ServiceArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let action = args
        .action
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let changes = args.action != ServiceAction::Status;
    let inputs = vec![format!("service={}", args.service)];
    let what = format!("{action} the service {}", args.service);
    act(
        "service", &action, inputs, changes, &what, None, args.act, printed,
    )
    .await
}

/// `mco package NAME ACTION`.
pub(super) async fn package(args: PackageArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let action = args
        .action
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let changes = args.action != PackageAction::Status;
    let mut inputs = vec![format!("package={}", args.package)];
    inputs.extend(args.inputs.iter().cloned());
    let what = format!("{action} the package {}", args.package);
    act(
        "package", &action, inputs, changes, &what, None, args.act, printed,
    )
    .await
}

/// `mco puppet ACTION`.
pub(super) async fn puppet(args: PuppetArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let (action, changes, display) = puppet_call(args.action);
    if (args.force || args.noop) && args.action != PuppetAction::Runonce {
        return Err(anyhow::anyhow!("--force and --noop are for runonce only").into());
    }
    let mut inputs = args.inputs.clone();
    if args.force {
        inputs.push("force=true".into());
    }
    if args.noop {
        inputs.push("noop=true".into());
    }
    let what = format!("{action} Puppet");
    act(
        "puppet", action, inputs, changes, &what, display, args.act, printed,
    )
    .await
}

/// The puppet agent's action for `action`, whether it changes nodes, and the display it
/// calls for (count and summary show only the summaries).
fn puppet_call(action: PuppetAction) -> (&'static str, bool, Option<DisplayChoice>) {
    match action {
        PuppetAction::Runonce => ("runonce", true, None),
        PuppetAction::Status => ("status", false, None),
        PuppetAction::Enable => ("enable", true, None),
        PuppetAction::Disable => ("disable", true, None),
        PuppetAction::Count => ("status", false, Some(DisplayChoice::None)),
        PuppetAction::Summary => ("last_run_summary", false, Some(DisplayChoice::None)),
    }
}

/// Runs `agent#action` as `mco rpc` would, after the safety prompt when it `changes` nodes.
#[allow(clippy::too_many_arguments)]
async fn act(
    agent: &str,
    action: &str,
    inputs: Vec<String>,
    changes: bool,
    what: &str,
    display: Option<DisplayChoice>,
    mut act: ActArgs,
    printed: &mut Printed,
) -> Result<u8, Failure> {
    if changes && !act.yes && act.common.addresses_whole_fleet()? {
        confirm_whole_fleet(what)?;
    }
    if act.output.display.is_none() {
        act.output.display = display;
    }
    let rpc = RpcArgs {
        agent: agent.to_string(),
        action: action.to_string(),
        inputs,
        ttl: None,
        batching: act.batching,
        reply_to: None,
        request_id: None,
        no_results: false,
        json_full: act.json_full,
        output: act.output,
        common: act.common,
    };
    crate::rpc::run(&rpc, printed).await
}

/// MCollective's question before changing every node: asked on a terminal; with nobody to
/// ask (a script, a pipe), the answer is no.
fn confirm_whole_fleet(what: &str) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(anyhow::anyhow!(
            "refusing to {what} on every node with no filter: give a filter, or -y to act on the whole fleet"
        )
        .into());
    }
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "You are about to {what} on every node, unfiltered. Continue? (y/n) "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(anyhow::anyhow!("not confirmed: nothing was done").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn puppet_count_and_summary_show_the_summaries_only() {
        assert_eq!(
            puppet_call(PuppetAction::Count),
            ("status", false, Some(DisplayChoice::None))
        );
        assert_eq!(
            puppet_call(PuppetAction::Summary),
            ("last_run_summary", false, Some(DisplayChoice::None))
        );
        assert!(puppet_call(PuppetAction::Runonce).1 && puppet_call(PuppetAction::Disable).1);
    }

    #[test]
    fn the_applications_parse_as_mcollective_spells_them() {
        let parsed = Cli::try_parse_from([
            "mco",
            "service",
            "httpd",
            "restart",
            "-W",
            "country=uk",
            "-y",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
        let parsed =
            Cli::try_parse_from(["mco", "package", "openssl", "install", "version=3.0", "-1"]);
        assert!(parsed.is_ok(), "{parsed:?}");
        let parsed = Cli::try_parse_from([
            "mco",
            "puppet",
            "runonce",
            "--force",
            "tags=web",
            "--with-class",
            "role::web",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(Cli::try_parse_from(["mco", "service", "httpd", "reboot"]).is_err());
    }
}
