//! `mco facts FACT`: how often each value of a fact occurs across the matching nodes
//! (rpcutil `get_fact` on each).

use std::collections::BTreeMap;

use clap::Args;
use serde_json::Value;

use crate::output;
use crate::{CommonArgs, Failure, Printed};
use mco_client::Call;

/// Arguments of `mco facts`.
#[derive(Debug, Args)]
pub struct FactsArgs {
    /// The fact (a dotted path such as os.family is fine).
    pub fact: String,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

pub(super) async fn run(args: &FactsArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let filter = args.common.filter()?;
    let (config, _, _) = args.common.client_config()?;
    let targeting = args.common.targeting(&config)?;
    let client = args.common.connect().await?;
    let mut call = Call::new("rpcutil", "get_fact")
        .arg("fact", args.fact.clone())
        .filter(filter)
        .discovery(targeting.discovery);
    if let Some(limit) = targeting.limit {
        call = call.limit(limit.size, limit.seed);
    }
    if let Some(t) = &args.common.target {
        call = call.collective(t);
    }
    if let Some(dt) = args.common.discovery_timeout()? {
        call = call.discovery_timeout(dt);
    }
    if let Some(t) = args.common.timeout()? {
        call = call.timeout(t);
    }
    let result = client.call(call).await?.collect().await;
    if let Some(line) = super::discovery::discovery_line(&result.stats, &args.common) {
        printed.err.push_str(&line);
    }
    for warning in &result.stats.warnings {
        printed.err.push_str(&format!("mco: warning: {warning}\n"));
    }
    if result.stats.discovered == 0 {
        printed
            .err
            .push_str("No request sent, we did not discover any nodes.\n");
        return Ok(1);
    }
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for reply in result.replies.iter().filter(|r| r.statuscode.is_ok()) {
        let value = reply.data.get("value").unwrap_or(&Value::Null);
        let key = if value.is_null() {
            "(missing)".to_string()
        } else {
            output::show(value)
        };
        values.entry(key).or_default().push(reply.sender.clone());
    }
    if args.common.json {
        for nodes in values.values_mut() {
            nodes.sort();
        }
        printed.out.push_str(&format!(
            "{}\n",
            serde_json::to_string_pretty(&values).unwrap_or_default()
        ));
    } else {
        printed.out.push_str(&output::fact_report(
            &args.fact,
            &values,
            args.common.verbose,
        ));
        printed.out.push('\n');
        printed
            .out
            .push_str(&output::summary(&result.stats, false, "rpcutil#get_fact"));
    }
    Ok(output::exit_code(&result.stats))
}
