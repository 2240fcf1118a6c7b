//! How `mco rpc` shows a call: the output format, which replies are shown, colour and the
//! progress bar, decided once from the flags and the terminal.
//!
//! Not for: rendering (see [`crate::output`] and [`crate::table`]) or the progress bar itself
//! (see [`crate::progress`]).

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use mco_ddl::Display;

/// The output flags of `mco rpc`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print a table: one row per node, one column per output (the DDL's labels), failures
    /// marked.
    #[arg(long, help_heading = "Output", conflicts_with_all = ["json", "json_full", "jsonl"])]
    pub table: bool,
    /// Print each reply as one line of JSON as it arrives (nothing is held in memory; mco
    /// reads the lines back as a node list).
    #[arg(long, help_heading = "Output", conflicts_with_all = ["json", "json_full"])]
    pub jsonl: bool,
    /// Which replies the text and table show, overriding the action's DDL (default: its
    /// display rule; -v shows all). JSON output always has every reply.
    #[arg(long, value_enum, value_name = "WHICH", help_heading = "Output")]
    pub display: Option<DisplayChoice>,
    /// Sort replies by node name: accepted for MCollective's scripts; mco always does.
    #[arg(long, help_heading = "Output")]
    pub sort: bool,
    /// No progress bar (it is drawn on stderr only when stderr is a terminal).
    #[arg(long = "np", visible_alias = "no-progress", help_heading = "Output")]
    pub no_progress: bool,
}

/// `--display`: MCollective's display rule, chosen by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DisplayChoice {
    /// Only successful replies.
    Ok,
    /// Only failed replies.
    Failed,
    /// Every reply.
    All,
    /// No per-node output: the aggregates and the summary only.
    None,
}

/// Which replies to show: `--display`, else the DDL's rule, else every reply; `-v` shows
/// every reply unless `--display` says otherwise.
pub fn shown(choice: Option<DisplayChoice>, ddl_rule: Option<Display>, verbose: bool) -> Shown {
    match choice {
        Some(DisplayChoice::Ok) => Shown::Rule(Display::Ok),
        Some(DisplayChoice::Failed) => Shown::Rule(Display::Failed),
        Some(DisplayChoice::All) => Shown::Rule(Display::Always),
        Some(DisplayChoice::None) => Shown::Nothing,
        None if verbose => Shown::Rule(Display::Always),
        None => Shown::Rule(ddl_rule.unwrap_or(Display::Always)),
    }
}

/// The replies a text or table output shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Those the rule shows.
    Rule(Display),
    /// None.
    Nothing,
}

impl Shown {
    /// Whether a reply with `status` is shown.
    pub fn shows(self, status: mco_spec::StatusCode) -> bool {
        match self {
            Shown::Rule(rule) => rule.shows(status),
            Shown::Nothing => false,
        }
    }
}

/// Whether to colour what goes to a stream: only a terminal, and never when `NO_COLOR` is
/// set to anything (<https://no-color.org>).
pub fn colour_for(is_terminal: bool) -> Palette {
    let disabled = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Palette {
        enabled: is_terminal && !disabled,
    }
}

/// Whether stdout is read by a person at a terminal (colours, charts) rather than by a
/// program (MCollective's plain text): the one place that asks.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// The palette for stdout.
pub fn stdout_palette() -> Palette {
    colour_for(stdout_is_terminal())
}

/// Colours, or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Palette {
    enabled: bool,
}

impl Palette {
    /// No colour (what the renderers' tests use).
    #[cfg(test)]
    pub const PLAIN: Palette = Palette { enabled: false };

    /// `text` marked as a failure (red).
    pub fn failure(self, text: &str) -> String {
        if !self.enabled || text.is_empty() {
            return text.to_string();
        }
        let red = anstyle::AnsiColor::Red.on_default().bold();
        format!("{}{text}{}", red.render(), red.render_reset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mco_spec::StatusCode;

    #[test]
    fn the_flag_overrides_the_ddl_and_verbose_shows_all() {
        let ok = StatusCode::Ok;
        let failed = StatusCode::Aborted;
        let ddl_failed_only = Some(Display::Failed);
        assert!(!shown(None, ddl_failed_only, false).shows(ok));
        assert!(shown(None, ddl_failed_only, true).shows(ok));
        assert!(shown(None, None, false).shows(ok));
        assert!(shown(Some(DisplayChoice::Ok), ddl_failed_only, false).shows(ok));
        assert!(!shown(Some(DisplayChoice::Ok), ddl_failed_only, true).shows(failed));
        assert!(shown(Some(DisplayChoice::All), ddl_failed_only, false).shows(ok));
        let none = shown(Some(DisplayChoice::None), None, true);
        assert!(!none.shows(ok) && !none.shows(failed));
    }

    #[test]
    fn colour_only_when_enabled() {
        assert_eq!(Palette::PLAIN.failure("down"), "down");
        let red = Palette { enabled: true }.failure("down");
        assert!(red.starts_with("\u{1b}[") && red.contains("down") && red.ends_with('m'));
    }
}
