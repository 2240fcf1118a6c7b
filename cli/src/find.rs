//! `mco find`: the identities of the matching nodes, one per line, sorted.

use clap::Args;

use crate::discovery::discovery_text;
use crate::{CommonArgs, Failure, Printed};

/// Arguments of `mco find`.
#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

pub(super) async fn run(args: &FindArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let filter = args.common.filter()?;
    let (config, _, _) = args.common.client_config()?;
    let targeting = args.common.targeting(&config)?;
    let client = args.common.connect().await?;
    let found = client
        .discover_with(
            &targeting.discovery,
            &filter,
            args.common.target.as_deref(),
            args.common.discovery_timeout()?,
        )
        .await?;
    let nodes = match targeting.limit {
        Some(limit) => mco_discovery::limit::choose(&found.nodes, limit.size, limit.seed),
        None => found.nodes,
    };
    if !args.common.quiet {
        printed.err.push_str(&discovery_text(
            found.method,
            found.elapsed,
            nodes.len(),
            found.ending.as_ref(),
            args.common.verbose,
        ));
    }
    if args.common.json {
        printed
            .out
            .push_str(&format!("{}\n", serde_json::json!(nodes)));
    } else {
        for node in &nodes {
            printed.out.push_str(node);
            printed.out.push('\n');
        }
    }
    Ok(if nodes.is_empty() { 1 } else { 0 })
}
