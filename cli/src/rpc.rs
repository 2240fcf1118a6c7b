//! `mco rpc AGENT ACTION [key=value...]`: call an action on the matching nodes.
//!
//! With a DDL for the agent (mco ships rpcutil, service, package and puppet), arguments are
//! converted by their declared types and validated before anything is sent, replies are
//! printed by the action's display rule with their labels, and the declared aggregates are
//! printed after the per-node lines. Without one, values are sent as strings and every reply
//! is printed.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use mco_client::Ddls;
use mco_spec::Reply;
use serde_json::Map;

use crate::discovery::discovery_line;
use crate::format::{self, OutputArgs};
use crate::output;
use crate::progress::Progress;
use crate::{CommonArgs, Failure, Printed};
use mco_client::{Call, Event, Mode, Replies, Stats};
use mco_discovery::limit::Size;

/// Arguments of `mco rpc`.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// The agent, e.g. service (or --agent).
    pub agent: Option<String>,
    /// The action, e.g. restart (or --action).
    pub action: Option<String>,
    /// Inputs as key=value, e.g. service=httpd (or --arg).
    #[arg(value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// The agent, as MCollective's `mco rpc --agent` spells it; the words then are the action
    /// (unless --action) and the inputs.
    #[arg(long = "agent", value_name = "AGENT")]
    pub agent_flag: Option<String>,
    /// The action, as MCollective's `mco rpc --action` spells it.
    #[arg(long = "action", value_name = "ACTION")]
    pub action_flag: Option<String>,
    /// An input as key=value, as MCollective's `mco rpc --arg` spells it; repeat for more.
    #[arg(long = "arg", visible_alias = "argument", value_name = "KEY=VALUE")]
    pub args: Vec<String>,
    /// How long the request stays valid, seconds: a direct request to a node that is down
    /// runs if the node starts within it.
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u64>,
    /// Have replies sent to NAME under this caller's reply prefix
    /// (`<collective>.reply.<caller-hash>.NAME`, or a full subject under that prefix), print
    /// the request id and exit; read them with `mco replies NAME --id ID`. Nodes send replies
    /// nowhere else.
    #[arg(long, value_name = "NAME", conflicts_with = "batch")]
    pub reply_to: Option<String>,
    /// Send the request with this id (32 hex digits, e.g. from `uuidgen | tr -d -`) instead of a
    /// fresh one, so that a `mco replies NAME --id ID` started first knows it.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// Send the request, print its id and exit without waiting for replies.
    #[arg(long = "nr", visible_alias = "no-results", conflicts_with = "batch")]
    pub no_results: bool,
    #[command(flatten)]
    pub(super) call: CallArgs,
}

/// What every application that calls an action shares (`mco rpc` and MCollective's
/// per-agent applications): batches, the JSON forms, the output choices and the usual flags.
#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub batching: BatchArgs,
    /// Print one JSON object with the replies, the DDL's aggregates and the call statistics
    /// (`-j` prints only the replies, as an array other commands read).
    #[arg(long)]
    pub json_full: bool,
    #[command(flatten)]
    pub(super) output: OutputArgs,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

/// The agent, action and inputs of one `mco rpc` call.
#[derive(Debug, PartialEq, Eq)]
pub struct CallParts {
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The inputs, as key=value.
    pub inputs: Vec<String>,
}

impl RpcArgs {
    /// The agent, action and inputs, however they were spelt: `mco rpc AGENT ACTION K=V`,
    /// MCollective's `--agent A --action B --arg K=V`, or a mix. With a flag given, the words
    /// that remain are what follows it: `--agent A B K=V` is action B.
    pub fn call_parts(&self) -> Result<CallParts, crate::UsageError> {
        let mut words: std::collections::VecDeque<String> = self
            .agent
            .iter()
            .chain(&self.action)
            .chain(&self.inputs)
            .cloned()
            .collect();
        let agent = match &self.agent_flag {
            Some(a) => a.clone(),
            None => words.pop_front().ok_or_else(|| {
                crate::UsageError(
                    "mco rpc needs an agent: mco rpc AGENT ACTION [KEY=VALUE...]".into(),
                )
            })?,
        };
        let action = match &self.action_flag {
            Some(a) => a.clone(),
            None => words.pop_front().ok_or_else(|| {
                crate::UsageError(format!(
                    "mco rpc needs an action of {agent}: mco rpc {agent} ACTION [KEY=VALUE...]"
                ))
            })?,
        };
        if let Some(word) = words.iter().find(|w| !w.contains('=')) {
            return Err(crate::UsageError(format!(
                "{word:?} is not key=value (agent {agent}, action {action})"
            )));
        }
        let mut inputs: Vec<String> = words.into();
        inputs.extend(self.args.iter().cloned());
        Ok(CallParts {
            agent,
            action,
            inputs,
        })
    }
}

/// `--batch` and `--batch-sleep`, for every application that calls an action.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Send direct requests in slices of N nodes (or N%), waiting for each slice's replies
    /// before the next; Ctrl-C stops before the next slice.
    #[arg(long, value_name = "N|N%")]
    pub batch: Option<String>,
    /// Seconds to pause between slices.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 1.0,
        requires = "batch"
    )]
    pub batch_sleep: f64,
}

fn parse_inputs(inputs: &[String]) -> Result<Vec<(String, String)>, Failure> {
    inputs
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{kv:?} is not key=value").into())
        })
        .collect()
}

/// The call `mco rpc` and `mco plot` make, connected: see [`call_of_flags`].
pub(super) async fn prepared_call(
    common: &CommonArgs,
    agent: &str,
    action: &str,
    inputs: &[String],
    ttl: Option<u64>,
) -> Result<(mco_client::Client, Call), Failure> {
    let call = call_of_flags(common, agent, action, inputs, ttl).await?;
    let client = common.connect().await?;
    Ok((client, call))
}

/// A call as the flags describe it: inputs converted and checked against the DDL (before
/// anything else, so a bad input is an error even with no broker), the filters, discovery,
/// limits, collective, TTL and time limits. Does not connect.
pub(super) async fn call_of_flags(
    common: &CommonArgs,
    agent: &str,
    action: &str,
    inputs: &[String],
    ttl: Option<u64>,
) -> Result<Call, Failure> {
    let filter = common.filter()?;
    let raw = parse_inputs(inputs)?;
    let (config, ddl_dirs, base) = common.client_config()?;
    // The library checks the inputs again when calling, validator plugins included;
    // checking them here too makes a bad input an error before anything else, a broker that
    // cannot be reached included.
    let plugins = mco_ddl::Plugins::load(&config.plugins_dir(&base))
        .map_err(|e| anyhow::anyhow!("plugins_dir: {e}"))?;
    let ddls = Ddls::new(ddl_dirs).with_plugins(plugins);
    let ddl = ddls.action(agent, action)?;
    let data = ddls.inputs(ddl.as_ref(), Map::new(), &raw).await?;
    let targeting = common.targeting(&config)?;

    let mut call = Call::new(agent, action)
        .data(data)
        .filter(filter)
        .discovery(targeting.discovery);
    if let Some(limit) = targeting.limit {
        call = call.limit(limit.size, limit.seed);
    }
    if let Some(t) = &common.target {
        call = call.collective(t);
    }
    if let Some(ttl) = ttl {
        call = call.ttl(ttl);
    }
    if let Some(dt) = common.discovery_timeout()? {
        call = call.discovery_timeout(dt);
    }
    // Wait as long as the action may run on the node, plus a second for the round trip.
    let timeout = match (common.timeout()?, &ddl) {
        (Some(t), _) => Some(t),
        (None, Some(ddl)) => Some(Duration::from_secs(ddl.agent().metadata.timeout + 1)),
        (None, None) => None,
    };
    if let Some(t) = timeout {
        call = call.timeout(t);
    }
    Ok(call)
}

pub(super) async fn run(args: &RpcArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let parts = args.call_parts()?;
    let (client, mut call) = prepared_call(
        &args.call.common,
        &parts.agent,
        &parts.action,
        &parts.inputs,
        args.ttl,
    )
    .await?;
    if let Some(size) = &args.call.batching.batch {
        let size: Size = size.parse().map_err(|e| anyhow::anyhow!("--batch: {e}"))?;
        let sleep = super::seconds(
            "--batch-sleep",
            Some(args.call.batching.batch_sleep).filter(|s| *s > 0.0),
        )?
        .unwrap_or_default();
        call = call.batch(size, sleep);
    }
    if let Some(id) = &args.request_id {
        call = call.request_id(id);
    }
    if args.no_results || args.reply_to.is_some() {
        if let Some(name) = &args.reply_to {
            call = call.reply_to(client.reply_subject(args.call.common.target.as_deref(), name)?);
        }
        return send_only(args, &client, call, printed).await;
    }

    let mut progress = Progress::start(!args.call.output.no_progress && !args.call.common.quiet);
    let mut replies = client.call(call).await?;
    let stats = replies.stats();
    if let Some(line) = discovery_line(&stats, &args.call.common) {
        printed.err.push_str(&line);
    }
    if stats.discovered == 0 {
        warn_clock(&stats, printed);
        printed
            .err
            .push_str("No request sent, we did not discover any nodes.\n");
        return Ok(1);
    }
    describe_mode(&stats, args.call.common.verbose, printed);
    progress.expect(stats.discovered);
    if stats.batches_planned > 1 || args.call.output.jsonl || progress.is_drawn() {
        // Batch progress and streamed replies are written as they happen; what came before
        // goes out first.
        if !printed.err.is_empty() {
            progress.say(printed.err.trim_end_matches('\n'));
            printed.err.clear();
        }
    }
    let streamed = if args.call.output.jsonl {
        let mut stdout = std::io::stdout();
        read_events(
            &mut replies,
            stats.batches_planned,
            &mut progress,
            |reply, progress| {
                let line = format!("{}\n", mco_client::reply_json(&reply));
                Sink::from(progress.suspend(|| stdout.write_all(line.as_bytes()).is_ok()))
            },
        )
        .await
    } else {
        read_events(
            &mut replies,
            stats.batches_planned,
            &mut progress,
            |reply, _| Sink::Keep(reply),
        )
        .await
    };
    progress.finish();
    let (collected, reader_gone) = match streamed {
        Read::All(collected) => (collected, false),
        Read::ReaderGone => (Vec::new(), true),
    };
    let mut result = replies.result(collected);
    result.run_aggregate_plugins().await;
    result.replies.sort_by(|a, b| a.sender.cmp(&b.sender));
    // What went wrong during the call (a slice that could not be sent) comes after the
    // warnings of its start.
    for warning in result.stats.warnings.iter().skip(stats.warnings.len()) {
        printed.err.push_str(&format!("mco: warning: {warning}\n"));
    }
    warn_clock(&result.stats, printed);
    if reader_gone {
        // `| head`: whoever reads has what they wanted.
        printed.err.clear();
        return Ok(0);
    }
    let call_name = format!("{}#{}", parts.agent, parts.action);
    if args.call.output.jsonl {
        // stdout holds only the replies, for the next command of the pipeline.
        printed.err.push_str(&output::summary(
            &result.stats,
            args.call.common.verbose,
            &call_name,
        ));
        return Ok(output::exit_code(&result.stats));
    }
    if args.call.json_full {
        printed.out.push_str(&output::full_json(&result));
        return Ok(output::exit_code(&result.stats));
    }
    if args.call.common.json {
        printed.out.push_str(&output::replies_json(&result.replies));
        return Ok(output::exit_code(&result.stats));
    }
    let action = result.action_ddl().map(|a| a.action());
    let shown = format::shown(
        args.call.output.display,
        action.map(|a| a.display),
        args.call.common.verbose,
    );
    let on_terminal = format::stdout_is_terminal();
    let palette = format::colour_for(on_terminal);
    let chosen: Vec<&Reply> = result
        .replies
        .iter()
        .filter(|r| shown.shows(r.statuscode))
        .collect();
    printed.out.push('\n');
    if args.call.output.table {
        let table = crate::table::replies_table(&chosen, action, args.call.common.verbose, palette);
        if !table.is_empty() {
            printed.out.push_str(&table);
            printed.out.push('\n');
        }
    } else {
        for reply in chosen {
            printed.out.push_str(&output::reply_block(
                reply,
                action,
                args.call.common.verbose,
                palette,
            ));
            printed.out.push('\n');
        }
    }
    // A summary over no successful replies has nothing to say; printing its heading alone
    // would read as a result. On a terminal the summaries are drawn, and numeric outputs
    // summarised too; a pipe gets MCollective's text.
    let charts = on_terminal;
    for aggregate in result.aggregates().iter().filter(|a| !a.lines.is_empty()) {
        printed.out.push_str(&if charts {
            crate::chart::aggregate_with_bars(aggregate)
        } else {
            aggregate.render()
        });
        printed.out.push('\n');
    }
    if charts {
        for numbers in crate::chart::numeric_summaries(&result.replies, action) {
            printed.out.push_str(&numbers.render());
            printed.out.push('\n');
        }
    }
    printed.out.push_str(&output::summary(
        &result.stats,
        args.call.common.verbose,
        &call_name,
    ));
    Ok(output::exit_code(&result.stats))
}

/// Prints the mode (with -v) and every warning (always) on stderr.
fn describe_mode(stats: &Stats, verbose: bool, printed: &mut Printed) {
    if verbose {
        let mode = match stats.mode {
            Some(Mode::Direct) => match stats.queued {
                Some(true) => "direct requests, queued in JetStream",
                _ => "direct requests",
            },
            _ => "broadcast",
        };
        printed.err.push_str(&format!(
            "Mode: {mode} ({})\n",
            stats
                .mode_reason
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ));
    }
    for warning in &stats.warnings {
        printed.err.push_str(&format!("mco: warning: {warning}\n"));
    }
}

/// Names, on stderr, the nodes that refused the call or its discovery for clock trouble:
/// known only once the replies are in, so apart from the warnings of the start.
fn warn_clock(stats: &Stats, printed: &mut Printed) {
    if let Some(warning) = stats.clock_warning() {
        printed.err.push_str(&format!("mco: warning: {warning}\n"));
    }
}

/// What to do with a reply that came in.
enum Sink {
    /// Keep it for the result.
    Keep(Reply),
    /// It has been written out: drop it.
    Written,
    /// Nobody reads any more: stop the call.
    Stop,
}

impl From<bool> for Sink {
    /// `true`: written; `false`: the reader has gone.
    fn from(written: bool) -> Sink {
        if written {
            Sink::Written
        } else {
            Sink::Stop
        }
    }
}

/// How reading the replies ended.
enum Read {
    /// The call is over; the replies kept.
    All(Vec<Reply>),
    /// The reader of a streamed output went away and the call was stopped.
    ReaderGone,
}

/// Reads replies and batch progress until the call is over, handing each reply to `sink`
/// (which may write it out around the progress bar).
/// With batches, progress goes to stderr as it happens, and Ctrl-C stops before the next
/// slice (a second Ctrl-C stops waiting at once); without, Ctrl-C keeps its usual meaning.
async fn read_events(
    replies: &mut Replies,
    batches: usize,
    progress: &mut Progress,
    mut sink: impl FnMut(Reply, &Progress) -> Sink,
) -> Read {
    let mut collected = Vec::new();
    let hard_stop = std::sync::Arc::new(tokio::sync::Notify::new());
    // The handler is installed here, before the first slice can finish: `ctrl_c()` would
    // install it only when the spawned task first runs, and an interrupt right after a fast
    // first slice would then kill mco instead of stopping the batches.
    let interrupts = (batches > 1)
        .then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok())
        .flatten();
    let watcher = interrupts.map(|mut interrupts| {
        let stopper = replies.stopper();
        let hard_stop = hard_stop.clone();
        tokio::spawn(async move {
            if interrupts.recv().await.is_none() {
                return;
            }
            stopper.stop();
            let _ = writeln!(
                std::io::stderr(),
                "Interrupted: no further batches will be sent; waiting for this batch's replies (Ctrl-C again to stop now)"
            );
            if interrupts.recv().await.is_some() {
                hard_stop.notify_one();
            }
        })
    });
    let mut read = None;
    while read.is_none() {
        let event = tokio::select! {
            event = replies.next_event() => event,
            _ = hard_stop.notified() => {
                replies.close();
                None
            }
        };
        match event {
            None => read = Some(Read::All(std::mem::take(&mut collected))),
            Some(Event::Reply(reply)) => {
                progress.reply(reply.statuscode.is_ok());
                match sink(reply, progress) {
                    Sink::Keep(reply) => collected.push(reply),
                    Sink::Written => {}
                    Sink::Stop => {
                        replies.close();
                        read = Some(Read::ReaderGone);
                    }
                }
            }
            Some(Event::BatchSent { number, of, nodes }) => {
                progress.batch(number, of);
                progress.say(&format!(
                    "Batch {number}/{of}: sent to {} node(s)",
                    nodes.len()
                ));
            }
            Some(Event::Pause { before, sleep }) => progress.say(&format!(
                "Sleeping {:.1} s before batch {before}",
                sleep.as_secs_f64()
            )),
        }
    }
    if let Some(task) = watcher {
        task.abort();
    }
    read.unwrap_or(Read::All(collected))
}

/// `--nr` and `--reply-to`: send, print the request id, exit.
async fn send_only(
    args: &RpcArgs,
    client: &mco_client::Client,
    call: Call,
    printed: &mut Printed,
) -> Result<u8, Failure> {
    let sent = client.send(call).await?;
    if let Some(line) = discovery_line(&sent.stats, &args.call.common) {
        printed.err.push_str(&line);
    }
    if sent.nodes.is_empty() {
        printed
            .err
            .push_str("No request sent, we did not discover any nodes.\n");
        return Ok(1);
    }
    describe_mode(&sent.stats, args.call.common.verbose, printed);
    for (node, why) in &sent.stats.send_failures {
        printed
            .err
            .push_str(&format!("mco: {node}: the request was not queued: {why}\n"));
    }
    if args.call.common.json {
        printed.out.push_str(&format!(
            "{}\n",
            serde_json::json!({
                "request_id": sent.request_id,
                "reply_to": sent.reply_to,
                "nodes": sent.nodes,
            })
        ));
    } else if args.reply_to.is_some() {
        printed.out.push_str(&format!(
            "Request sent with id: {} replies to {}\n",
            sent.request_id, sent.reply_to
        ));
    } else {
        printed
            .out
            .push_str(&format!("Request sent with id: {}\n", sent.request_id));
    }
    Ok(if sent.stats.send_failures.is_empty() {
        0
    } else {
        2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_key_value_pairs() {
        assert!(parse_inputs(&["novalue".into()]).is_err());
        assert!(parse_inputs(&["=x".into()]).is_err());
        assert_eq!(
            parse_inputs(&["a=b=c".into()]).unwrap(),
            [("a".to_string(), "b=c".to_string())]
        );
    }

    fn parts(args: &[&str]) -> Result<CallParts, crate::UsageError> {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(["mco", "rpc"].iter().chain(args))
            .map_err(|e| crate::UsageError(e.to_string()))?;
        match cli.command {
            crate::Command::Rpc(rpc) => rpc.call_parts(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn agent_action_and_inputs_are_spelt_either_way() {
        let want = CallParts {
            agent: "package".into(),
            action: "status".into(),
            inputs: vec!["package=foo".into(), "verbose=1".into()],
        };
        for args in [
            &["package", "status", "package=foo", "verbose=1"][..],
            &[
                "--agent",
                "package",
                "--action",
                "status",
                "--arg",
                "package=foo",
                "--arg",
                "verbose=1",
            ],
            &[
                "--agent",
                "package",
                "status",
                "package=foo",
                "--argument",
                "verbose=1",
            ],
            &["package", "--action", "status", "package=foo", "verbose=1"],
        ] {
            assert_eq!(parts(args).as_ref().ok(), Some(&want), "{args:?}");
        }
        let no_agent = parts(&[]).unwrap_err().to_string();
        assert!(no_agent.contains("needs an agent"), "{no_agent}");
        let no_action = parts(&["--agent", "package"]).unwrap_err().to_string();
        assert!(no_action.contains("action of package"), "{no_action}");
        let stray = parts(&["--agent", "package", "--action", "status", "foo"])
            .unwrap_err()
            .to_string();
        assert!(stray.contains("\"foo\" is not key=value"), "{stray}");
    }
}
