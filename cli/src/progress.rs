//! The progress bar of `mco rpc` on stderr: a spinner while nodes are discovered, then
//! replies received of expected, failures so far and the elapsed time, with the slice
//! number when the call is batched. Drawn only when stderr is a terminal and `--np` is not
//! given, and cleared before anything else is printed, so a pipe or a log sees nothing of it.
//!
//! Not for: what is printed when the call ends ([`crate::output`]).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    failed: usize,
    batch: Option<(usize, usize)>,
}

impl Progress {
    /// A spinner for discovery when `wanted` and stderr is a terminal; otherwise nothing.
    pub fn start(wanted: bool) -> Progress {
        let bar = (wanted && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} Discovering nodes {elapsed_precise}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            bar,
            failed: 0,
            batch: None,
        }
    }

    /// Discovery is over: from now on, replies of `expected`.
    pub fn expect(&mut self, expected: usize) {
        let Some(bar) = &self.bar else { return };
        bar.set_length(expected as u64);
        bar.set_position(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} replies, {msg} {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.reset_elapsed();
        self.describe();
    }

    /// A reply came in.
    pub fn reply(&mut self, ok: bool) {
        let Some(bar) = &self.bar else { return };
        if !ok {
            self.failed += 1;
            self.describe();
        }
        bar.inc(1);
    }

    /// Slice `number` of `of` was sent.
    pub fn batch(&mut self, number: usize, of: usize) {
        self.batch = Some((number, of));
        self.describe();
    }

    /// Whether a bar is drawn.
    pub fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// Writes `line` to stderr above the bar (or plainly, without one).
    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Runs `write` (to stdout, say) with the bar out of the way.
    pub fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Removes the bar, before the results are printed.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn describe(&self) {
        let Some(bar) = &self.bar else { return };
        let mut message = format!("{} failed", self.failed);
        if let Some((number, of)) = self.batch {
            message.push_str(&format!(", batch {number}/{of}"));
        }
        bar.set_message(message);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
