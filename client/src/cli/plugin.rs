//! `mco plugin doc [AGENT]`: the agents mco has DDLs for, or one agent's documentation.

use clap::{Args, Subcommand};

use super::{Failure, Printed};

/// Arguments of `mco plugin`.
#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// List agents, or show one agent's actions, inputs, outputs and summaries.
    Doc {
        /// The agent to document.
        agent: Option<String>,
    },
}

pub(super) fn run(args: &PluginArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let PluginCommand::Doc { agent } = &args.command;
    match agent {
        None => {
            printed
                .out
                .push_str("Please specify a plugin. Available plugins are:\n\nAgents:\n");
            for name in mco_ddl::builtin::names() {
                let ddl = mco_ddl::builtin::ddl(name);
                let description = ddl.map(|d| d.metadata.description).unwrap_or_default();
                printed
                    .out
                    .push_str(&format!("  {name:<20} {description}\n"));
            }
            Ok(0)
        }
        Some(name) => match mco_ddl::builtin::ddl(name) {
            Some(ddl) => {
                printed.out.push_str(&mco_ddl::doc::render_agent(&ddl));
                Ok(0)
            }
            None => Err(anyhow::anyhow!(
                "no DDL for agent {name:?} (known: {})",
                mco_ddl::builtin::names().collect::<Vec<_>>().join(", ")
            )
            .into()),
        },
    }
}
