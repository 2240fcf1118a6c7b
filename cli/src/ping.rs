//! `mco ping`: a discovery ping to every matching node, printing each node's round trip.
//! No prior discovery: the ping is the discovery. With another discovery method (`--nodes`,
//! stdin, `--dm ...`), each listed node gets a direct `rpcutil ping` instead.

use std::time::Instant;

use clap::Args;

use crate::discovery::ending_line;
use crate::output::columns;
use crate::{CommonArgs, Failure, Printed};
use futures::StreamExt;
use mco_client::result::clock_offset;
use mco_client::Discovery;
use mco_client::{Call, Warning};

/// Arguments of `mco ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Draw the spread of the response times as a line of bars (MCollective's --graph).
    #[arg(short = 'g', long)]
    pub graph: bool,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

pub(super) async fn run(args: &PingArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let filter = args.common.filter()?;
    let (config, _, _) = args.common.client_config()?;
    let targeting = args.common.targeting(&config)?;
    let client = args.common.connect().await?;
    let timeout = args.common.discovery_timeout()?;
    let (found, clock_refused, missing) = match targeting.discovery {
        Discovery::Broadcast if targeting.limit.is_none() => {
            let pinged = client
                .ping_discovery(&filter, args.common.target.as_deref(), timeout)
                .await?;
            if args.common.verbose {
                printed.err.push_str(&ending_line(&pinged.ending));
            }
            (pinged.answered, pinged.clock_refused, pinged.missing)
        }
        discovery => {
            let mut call = Call::new("rpcutil", "ping")
                .filter(filter)
                .discovery(discovery);
            if let Some(limit) = targeting.limit {
                call = call.limit(limit.size, limit.seed);
            }
            if let Some(t) = &args.common.target {
                call = call.collective(t);
            }
            if let Some(t) = args.common.timeout()?.or(timeout) {
                call = call.timeout(t);
            }
            let mut replies = client.call(call).await?;
            let sent = Instant::now();
            let mut found = Vec::new();
            while let Some(reply) = replies.next().await {
                if clock_offset(&reply).is_none() {
                    found.push((reply.sender, sent.elapsed()));
                }
            }
            let stats = replies.stats();
            (found, stats.clock_refused, stats.no_response_from)
        }
    };
    if let Some(warning) = Warning::clock_skew(&clock_refused) {
        printed.err.push_str(&format!("mco: warning: {warning}\n"));
    }
    if args.common.json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|(n, t)| serde_json::json!({"sender": n, "time_ms": t.as_secs_f64() * 1000.0}))
            .collect();
        printed
            .out
            .push_str(&format!("{}\n", serde_json::Value::Array(rows)));
        return Ok(if found.is_empty() { 1 } else { 0 });
    }
    let times: Vec<f64> = found
        .iter()
        .map(|(_, t)| t.as_secs_f64() * 1000.0)
        .collect();
    for ((node, _), ms) in found.iter().zip(&times) {
        printed
            .out
            .push_str(&format!("{node:<40} time={ms:.2} ms\n"));
    }
    printed.out.push_str("\n\n---- ping statistics ----\n");
    if times.is_empty() {
        printed.out.push_str("No responses received\n");
        no_response(&missing, printed);
        return Ok(1);
    }
    let max = times.iter().cloned().fold(f64::MIN, f64::max);
    let min = times.iter().cloned().fold(f64::MAX, f64::min);
    let avg = times.iter().sum::<f64>() / times.len() as f64;
    printed.out.push_str(&format!(
        "{} replies max: {max:.2} min: {min:.2} avg: {avg:.2}\n",
        times.len()
    ));
    if args.graph {
        let spread = crate::chart::sparkline(&crate::chart::histogram(&times, 20));
        printed
            .out
            .push_str(&format!("{min:.2} ms {spread} {max:.2} ms\n"));
    }
    no_response(&missing, printed);
    Ok(0)
}

/// The nodes that were expected (or, without broadcast discovery, pinged) and did not
/// answer, as `mco rpc` lists them.
fn no_response(missing: &[String], printed: &mut Printed) {
    if !missing.is_empty() {
        printed.out.push_str("\nNo response from:\n\n");
        printed.out.push_str(&columns(missing));
    }
}
