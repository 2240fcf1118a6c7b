//! `mco plugin doc [AGENT]`: the agents mco has DDLs for, or one agent's documentation.

use clap::{Args, Subcommand};

use crate::{Failure, Printed};

/// Arguments of `mco plugin`.
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// Client configuration file (its ddl_dirs are searched).
    #[arg(short = 'c', long, value_name = "FILE", global = true)]
    config: Option<std::path::PathBuf>,
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
    let (_, dirs, _) = super::load_config(args.config.as_deref())?;
    match agent {
        None => {
            printed
                .out
                .push_str("Please specify a plugin. Available plugins are:\n\nAgents:\n");
            for name in mco_ddl::builtin::all_names(&dirs) {
                let description = match mco_ddl::builtin::find(&name, &dirs) {
                    Ok(Some(d)) => d.metadata.description,
                    Ok(None) => String::new(),
                    Err(e) => format!("(invalid DDL: {e})"),
                };
                printed
                    .out
                    .push_str(&format!("  {name:<20} {description}\n"));
            }
            Ok(0)
        }
        Some(name) => match mco_ddl::builtin::find(name, &dirs)? {
            Some(ddl) => {
                printed.out.push_str(&mco_ddl::doc::render_agent(&ddl));
                Ok(0)
            }
            None => Err(anyhow::anyhow!(
                "no DDL for agent {name:?} (known: {})",
                mco_ddl::builtin::all_names(&dirs).join(", ")
            )
            .into()),
        },
    }
}
