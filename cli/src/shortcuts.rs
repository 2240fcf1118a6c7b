//! MCollective's per-agent applications, for operators who type them from memory:
//! `mco service NAME ACTION`, `mco package NAME ACTION` and `mco puppet ACTION`. Each is
//! `mco rpc` of that agent's action, with the same flags, checks and output
//! ([`crate::rpc::run`]). An action that changes nodes, addressed to the whole fleet with no
//! filter, asks first on a terminal, as MCollective does, and is refused without `-y` where
//! there is nobody to ask.
//!
//! Not for: anything `mco rpc` does not do; `mco puppet runall` (keeping N runs going across
//! the fleet) is in [`crate::runall`].

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, ValueEnum};

use crate::format::DisplayChoice;
use crate::rpc::{CallArgs, RpcArgs};
use crate::{Failure, Printed};

/// What the three applications share: the safety prompt and what `mco rpc` calls with.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// Do not ask before changing every node of the collective (no filter given).
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    #[command(flatten)]
    pub(super) call: CallArgs,
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
    /// Inputs as key=value (runonce: tags, environment, splay...; disable: message); runall
    /// takes the number of runs at once first.
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
    /// Run Puppet on every node, at most N at once: `runall N [KEY=VALUE...]`.
    Runall,
}

/// `mco service NAME ACTION`.
pub(super) async fn service(args: ServiceArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let changes = args.action != ServiceAction::Status;
    on_named(
        "service",
        &args.service,
        args.action,
        changes,
        Vec::new(),
        args.act,
        printed,
    )
    .await
}

/// `mco package NAME ACTION`.
pub(super) async fn package(args: PackageArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let changes = args.action != PackageAction::Status;
    on_named(
        "package",
        &args.package,
        args.action,
        changes,
        args.inputs,
        args.act,
        printed,
    )
    .await
}

/// `mco AGENT NAME ACTION`, for the agents whose every action takes the thing it acts on as
/// the input named after the agent (`service=httpd`, `package=openssl`).
async fn on_named(
    agent: &str,
    name: &str,
    action: impl ValueEnum,
    changes: bool,
    more_inputs: Vec<String>,
    act_args: ActArgs,
    printed: &mut Printed,
) -> Result<u8, Failure> {
    let action = action
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let mut inputs = vec![format!("{agent}={name}")];
    inputs.extend(more_inputs);
    let what = format!("{action} the {agent} {name}");
    act(
        agent, &action, inputs, changes, &what, None, act_args, printed,
    )
    .await
}

/// `mco puppet ACTION`.
pub(super) async fn puppet(args: PuppetArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let (action, changes, display) = puppet_call(args.action);
    if (args.force || args.noop)
        && !matches!(args.action, PuppetAction::Runonce | PuppetAction::Runall)
    {
        return Err(anyhow::anyhow!("--force and --noop are for runonce and runall only").into());
    }
    let mut inputs = args.inputs.clone();
    let runall_concurrency = if args.action == PuppetAction::Runall {
        let first = (!inputs.is_empty()).then(|| inputs.remove(0));
        Some(crate::runall::concurrency(first.as_deref())?)
    } else {
        None
    };
    if args.force {
        inputs.push("force=true".into());
    }
    if args.noop {
        inputs.push("noop=true".into());
    }
    let what = format!("{action} Puppet");
    if let Some(concurrency) = runall_concurrency {
        confirm_unless_filtered(&what, &args.act)?;
        return crate::runall::run(concurrency, inputs, args.act, printed).await;
    }
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
        PuppetAction::Runall => ("runonce", true, None),
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
    if changes {
        confirm_unless_filtered(what, &act)?;
    }
    if act.call.output.display.is_none() {
        act.call.output.display = display;
    }
    let rpc = RpcArgs {
        agent: Some(agent.to_string()),
        action: Some(action.to_string()),
        inputs,
        agent_flag: None,
        action_flag: None,
        args: Vec::new(),
        ttl: None,
        reply_to: None,
        request_id: None,
        no_results: false,
        call: act.call,
    };
    crate::rpc::run(&rpc, printed).await
}

/// Asks before `what` changes every node, unless `-y` or the flags select fewer.
fn confirm_unless_filtered(what: &str, act: &ActArgs) -> Result<(), Failure> {
    if !act.yes && act.call.common.addresses_whole_fleet()? {
        confirm_whole_fleet(what)?;
    }
    Ok(())
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
