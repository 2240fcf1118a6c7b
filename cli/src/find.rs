//! `mco find`: the identities of the matching nodes, one per line, sorted.

use clap::Args;

use crate::{CommonArgs, Failure, Printed};

/// Arguments of `mco find`.
#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

pub(super) async fn run(args: &FindArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let filter = args.common.filter()?;
    let client = args.common.connect().await?;
    let nodes = args
        .common
        .discover_nodes(&client, &filter, &mut printed.err)
        .await?
        .nodes;
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
