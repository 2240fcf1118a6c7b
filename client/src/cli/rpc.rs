//! `mco rpc AGENT ACTION [key=value...]`: call an action on the matching nodes.
//!
//! With a DDL for the agent (mco ships rpcutil, service, package and puppet), arguments are
//! converted by their declared types and validated before anything is sent, replies are
//! printed by the action's display rule with their labels, and the declared aggregates are
//! printed after the per-node lines. Without one, values are sent as strings and every reply
//! is printed.

use std::time::Duration;

use clap::Args;
use mco_ddl::{AgentDdl, Aggregator};
use serde_json::{Map, Value};

use super::output;
use super::{CommonArgs, Failure, Printed};
use crate::call::{Call, Mode};

/// Arguments of `mco rpc`.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// The agent, e.g. service.
    pub agent: String,
    /// The action, e.g. restart.
    pub action: String,
    /// Inputs as key=value, e.g. service=httpd.
    #[arg(value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// How long the request stays valid on the nodes, seconds.
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u64>,
    /// Print one JSON object with the replies, the DDL's aggregates and the call statistics
    /// (`-j` prints only the replies, as an array other commands read).
    #[arg(long)]
    pub json_full: bool,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

fn parse_inputs(inputs: &[String]) -> Result<Vec<(&str, &str)>, Failure> {
    inputs
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| anyhow::anyhow!("{kv:?} is not key=value").into())
        })
        .collect()
}

/// Converts and validates inputs with the DDL, or passes strings when there is none.
fn inputs(
    ddl: Option<&AgentDdl>,
    agent: &str,
    action: &str,
    raw: &[(&str, &str)],
) -> Result<Map<String, Value>, Failure> {
    let Some(ddl) = ddl else {
        return Ok(raw
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect());
    };
    let Some(spec) = ddl.action(action) else {
        let known: Vec<&str> = ddl.action_names().collect();
        return Err(anyhow::anyhow!(
            "agent {agent} has no action {action} (actions: {})",
            known.join(", ")
        )
        .into());
    };
    let mut data = spec
        .convert_cli_args(raw.iter().copied())
        .map_err(anyhow::Error::from)?;
    spec.validate_inputs(&mut data)
        .map_err(anyhow::Error::from)?;
    Ok(data)
}

pub(super) async fn run(args: &RpcArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let filter = args.common.filter()?;
    let raw = parse_inputs(&args.inputs)?;
    let (_, ddl_dirs, _) = args.common.client_config()?;
    let ddl = mco_ddl::builtin::find(&args.agent, &ddl_dirs)?;
    let data = inputs(ddl.as_ref(), &args.agent, &args.action, &raw)?;
    let action = ddl.as_ref().and_then(|d| d.action(&args.action));
    let client = args.common.connect().await?;

    // Plain -I names are the node list: no discovery happens, so none is reported.
    let discovers = filter.plain_identities().is_none();
    let mut call = Call::new(&args.agent, &args.action)
        .data(data)
        .filter(filter);
    if let Some(t) = &args.common.target {
        call = call.collective(t);
    }
    if let Some(ttl) = args.ttl {
        call = call.ttl(ttl);
    }
    if let Some(dt) = args.common.discovery_timeout()? {
        call = call.discovery_timeout(dt);
    }
    // Wait as long as the action may run on the node, plus a second for the round trip.
    let timeout = match (args.common.timeout()?, &ddl) {
        (Some(t), _) => Some(t),
        (None, Some(ddl)) => Some(Duration::from_secs(ddl.metadata.timeout + 1)),
        (None, None) => None,
    };
    if let Some(t) = timeout {
        call = call.timeout(t);
    }

    let replies = client.call(call).await?;
    let stats = replies.stats().clone();
    if discovers {
        printed.err.push_str(&format!(
            "Discovering hosts using the mc method for {:.2} second(s) .... {}\n",
            stats.discovery_time.as_secs_f64(),
            stats.discovered
        ));
    }
    if stats.discovered == 0 {
        printed
            .err
            .push_str("No request sent, we did not discover any nodes.\n");
        return Ok(1);
    }
    if args.common.verbose {
        let why = match stats.mode {
            Some(Mode::Direct) => "direct requests: the node list was given with -I",
            _ => "broadcast: the filter selects the nodes",
        };
        printed.err.push_str(&format!("Mode: {why}\n"));
    }
    let mut result = replies.collect().await;
    if let Some(action) = action {
        for reply in &mut result.replies {
            if let Value::Object(map) = &mut reply.data {
                action.apply_output_defaults(map);
            }
        }
    }
    result.replies.sort_by(|a, b| a.sender.cmp(&b.sender));

    let aggregates = match action {
        Some(action) => {
            let mut aggregator = Aggregator::new(action);
            for reply in result.replies.iter().filter(|r| r.statuscode.is_ok()) {
                if let Some(map) = reply.data.as_object() {
                    aggregator.add(map);
                }
            }
            aggregator.results()
        }
        None => Vec::new(),
    };
    if args.json_full {
        printed.out.push_str(&output::full_json(
            &result.replies,
            &aggregates,
            &result.stats,
        ));
        return Ok(output::exit_code(&result.stats));
    }
    if args.common.json {
        printed.out.push_str(&output::replies_json(&result.replies));
        return Ok(output::exit_code(&result.stats));
    }
    printed.out.push('\n');
    for reply in &result.replies {
        if output::shows(reply, action, args.common.verbose) {
            printed
                .out
                .push_str(&output::reply_block(reply, action, args.common.verbose));
            printed.out.push('\n');
        }
    }
    // A summary over no successful replies has nothing to say; printing its heading alone
    // would read as a result.
    for aggregate in aggregates.iter().filter(|a| !a.lines.is_empty()) {
        printed.out.push_str(&aggregate.render());
        printed.out.push('\n');
    }
    printed.out.push_str(&output::summary(
        &result.stats,
        args.common.verbose,
        &format!("{}#{}", args.agent, args.action),
    ));
    Ok(output::exit_code(&result.stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_converted_and_checked_before_sending() {
        let ddl = mco_ddl::builtin::ddl("puppet").unwrap();
        let data = inputs(
            Some(&ddl),
            "puppet",
            "runonce",
            &[("noop", "yes"), ("splaylimit", "30")],
        )
        .unwrap();
        assert_eq!(
            Value::Object(data),
            serde_json::json!({"noop": true, "splaylimit": 30})
        );
        let service = mco_ddl::builtin::ddl("service").unwrap();
        let err = inputs(Some(&service), "service", "restart", &[])
            .unwrap_err()
            .0
            .to_string();
        assert_eq!(err, "action restart needs a service argument");
        let err = inputs(
            Some(&service),
            "service",
            "restart",
            &[("service", "x;reboot")],
        )
        .unwrap_err()
        .0
        .to_string();
        assert!(err.contains("invalid input service"), "{err}");
        let err = inputs(Some(&service), "service", "explode", &[])
            .unwrap_err()
            .0
            .to_string();
        assert!(
            err.contains("has no action explode (actions: restart, start, status, stop)"),
            "{err}"
        );
        let plain = inputs(None, "custom", "go", &[("n", "5")]).unwrap();
        assert_eq!(plain["n"], "5");
        assert!(parse_inputs(&["novalue".into()]).is_err());
        assert!(parse_inputs(&["=x".into()]).is_err());
        assert_eq!(parse_inputs(&["a=b=c".into()]).unwrap(), [("a", "b=c")]);
    }
}
