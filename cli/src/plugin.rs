//! `mco plugin doc [AGENT]`: the agents mco has DDLs for, or one agent's documentation, with
//! the warnings of loading its DDL as Choria does; `mco plugin lint FILE...`: every schema and
//! semantic problem of DDL files, for their authors; `mco plugin convert FILE`: an MCollective
//! Ruby agent DDL as Choria's JSON.
//!
//! Not for: loading, checking or converting DDLs itself (`mco_ddl::load`, `mco_ddl::ruby`).

use std::path::{Path, PathBuf};

use anyhow::Context;
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
    /// Convert an MCollective Ruby agent DDL into a Choria JSON DDL, without running Ruby.
    ///
    /// Reads the documented subset of the DDL language (metadata, requires, action, input,
    /// output, display, summarize and aggregate, with Ruby's literals, comments and both hash
    /// syntaxes); anything else is an error naming FILE:LINE:COLUMN, exit code 1. Prints the
    /// JSON, or writes it to OUT. What was dropped, and any problem mco plugin lint would
    /// report, is printed on stderr. Only agent DDLs convert: data, discovery, validator,
    /// aggregate and connector DDLs are refused.
    Convert {
        /// The Ruby DDL (AGENT.ddl).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write the JSON to OUT instead of stdout (AGENT.json, to use it from ddl_dirs).
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
}

pub(super) fn run(args: &PluginArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let agent = match &args.command {
        PluginCommand::Doc { agent } => agent,
        PluginCommand::Lint { files } => return Ok(lint(files, printed)),
        PluginCommand::Convert { file, output } => {
            return convert(file, output.as_deref(), printed)
        }
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

fn convert(file: &Path, output: Option<&Path>, printed: &mut Printed) -> Result<u8, Failure> {
    let shown = file.display();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {shown}"))?;
    let converted = mco_ddl::ruby::convert(&text)
        .map_err(|e| anyhow::anyhow!("{shown}:{}:{}: {}", e.line, e.column, e.reason))?;
    for warning in &converted.warnings {
        printed.err.push_str(&format!(
            "warning: {shown}:{}:{}: {}\n",
            warning.line, warning.column, warning.message
        ));
    }
    // A sane Ruby DDL converts to one that lints clean; one that does not (a name with a
    // space, a one-second timeout) is said now rather than when it is first loaded. The
    // name is checked against the file the JSON goes to, else against the Ruby file's.
    let target = output.unwrap_or(file);
    let stem = target.file_stem().and_then(|s| s.to_str());
    let place = output.map_or_else(
        || "the converted DDL".to_string(),
        |o| o.display().to_string(),
    );
    match mco_ddl::load::lint_json(&converted.json, &place, stem) {
        Ok(findings) => {
            for finding in findings {
                printed.err.push_str(&format!(
                    "warning: {place}: {finding} (mco plugin lint reports it)\n"
                ));
            }
        }
        Err(e) => printed.err.push_str(&format!("warning: {e}\n")),
    }
    match output {
        Some(out) => std::fs::write(out, &converted.json)
            .with_context(|| format!("cannot write {}", out.display()))?,
        None => printed.out.push_str(&converted.json),
    }
    Ok(0)
}
