//! `mco plugin doc [AGENT]`: the agents mco has DDLs for, or one agent's documentation, with
//! the warnings of loading its DDL as Choria does; `mco plugin lint FILE...`: every schema and
//! semantic problem of DDL files, for their authors.
//!
//! Not for: loading or checking DDLs itself (`mco_ddl::load`).

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
    ///
    /// DDLs load as Choria loads them; what mco does not enforce or skips (an unknown
    /// validator or aggregate, a regex that does not compile) is printed on stderr.
    Doc {
        /// The agent to document.
        agent: Option<String>,
    },
    /// Check DDL files strictly: Choria's JSON Schema and mco's semantic checks.
    ///
    /// Prints one line per problem, naming the file and the action and field (or the JSON
    /// path). Exits 0 when every file is clean, 1 otherwise.
    Lint {
        /// The DDL files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
    },
}

pub(super) fn run(args: &PluginArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let agent = match &args.command {
        PluginCommand::Doc { agent } => agent,
        PluginCommand::Lint { files } => return Ok(lint(files, printed)),
    };
    let (config, dirs, base) = super::load_config(args.config.as_deref())?;
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
        Some(name) => match mco_ddl::builtin::find_with_warnings(name, &dirs)? {
            Some(loaded) => {
                // What an installed plugin provides is enforced: no warning for it.
                let plugins = mco_ddl::Plugins::load(&config.plugins_dir(&base))
                    .map_err(|e| anyhow::anyhow!("plugins_dir: {e}"))?;
                for warning in plugins.unresolved(&loaded.ddl, loaded.warnings.clone()) {
                    printed
                        .err
                        .push_str(&format!("warning: agent {name}: {warning}\n"));
                }
                printed
                    .out
                    .push_str(&mco_ddl::doc::render_agent(&loaded.ddl));
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

fn lint(files: &[std::path::PathBuf], printed: &mut Printed) -> u8 {
    let mut clean = true;
    for file in files {
        match mco_ddl::load::lint(file) {
            Ok(findings) if findings.is_empty() => {
                printed.out.push_str(&format!("{}: ok\n", file.display()));
            }
            Ok(findings) => {
                clean = false;
                for finding in findings {
                    printed
                        .out
                        .push_str(&format!("{}: {finding}\n", file.display()));
                }
            }
            Err(e) => {
                clean = false;
                printed.out.push_str(&format!("{e}\n"));
            }
        }
    }
    if clean {
        0
    } else {
        1
    }
}
