//! `mco find`: the identities of the matching nodes, one per line, sorted.

use clap::Args;

use super::{CommonArgs, Failure, Printed};

/// Arguments of `mco find`.
#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

pub(super) async fn run(args: &FindArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let filter = args.common.filter()?;
    let client = args.common.connect().await?;
    let started = std::time::Instant::now();
    let nodes = client
        .discover(
            &filter,
            args.common.target.as_deref(),
            args.common.discovery_timeout()?,
        )
        .await?;
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
    if args.common.verbose {
        printed.err.push_str(&format!(
            "Discovered {} nodes using the broadcast method in {:.2} ms\n",
            nodes.len(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
    }
    Ok(if nodes.is_empty() { 1 } else { 0 })
}
