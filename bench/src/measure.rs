//! Samples and what is reported about them: percentiles, rates, process memory, and the
//! figures table the benchmark prints and writes as JSON.

use std::time::Duration;

use serde::Serialize;

/// Durations measured over repeated rounds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<Duration>,
}

impl Samples {
    /// No samples yet.
    pub fn new() -> Samples {
        Samples::default()
    }

    /// Adds one sample.
    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `p`-th percentile (0–100) by nearest rank, in milliseconds; 0 without samples.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        let mut sorted = self.values.clone();
        sorted.sort();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, sorted.len()) - 1;
        sorted[index].as_secs_f64() * 1000.0
    }

    /// The median, milliseconds.
    pub fn p50(&self) -> f64 {
        self.percentile_ms(50.0)
    }

    /// The 99th percentile, milliseconds.
    pub fn p99(&self) -> f64 {
        self.percentile_ms(99.0)
    }
}

/// One line of the figures table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured (`broadcast ping`, `direct RTT`, ...).
    pub name: String,
    /// The scale (nodes, in-flight requests).
    pub n: usize,
    /// Unit of `value`/`p50`/`p99` (`ms`, `req/s`, `MB`).
    pub unit: String,
    /// Median (or the single value).
    pub p50: f64,
    /// 99th percentile (equal to `p50` for single values).
    pub p99: f64,
    /// How many samples.
    pub samples: usize,
    /// Rounds left out because not every reply came within the round timeout.
    pub incomplete: usize,
    /// The p50 of the baseline it is compared with, same unit.
    pub baseline_p50: Option<f64>,
    /// Which baseline (`raw`, `raw+sig`).
    pub baseline: Option<String>,
    /// `p50 / baseline_p50` (for rates: `baseline / p50`, so above 1 is always slower).
    pub ratio: Option<f64>,
    /// The target, in words.
    pub target: Option<String>,
    /// Whether the target is met.
    pub met: Option<bool>,
}

impl Figure {
    /// A figure from timing samples, in milliseconds.
    pub fn timing(name: &str, n: usize, samples: &Samples) -> Figure {
        Figure {
            p99: samples.p99(),
            samples: samples.len(),
            ..Figure::value(name, n, "ms", samples.p50())
        }
    }

    /// A single value.
    pub fn value(name: &str, n: usize, unit: &str, value: f64) -> Figure {
        Figure {
            name: name.to_string(),
            n,
            unit: unit.to_string(),
            p50: value,
            p99: value,
            samples: 1,
            incomplete: 0,
            baseline_p50: None,
            baseline: None,
            ratio: None,
            target: None,
            met: None,
        }
    }

    /// Compares with a baseline figure of the same unit (a time: higher is slower).
    pub fn against(mut self, baseline: &Figure, label: &str) -> Figure {
        self.baseline_p50 = Some(baseline.p50);
        self.baseline = Some(label.to_string());
        if baseline.p50 > 0.0 && self.p50 > 0.0 {
            self.ratio = Some(if self.unit.ends_with("/s") {
                baseline.p50 / self.p50
            } else {
                self.p50 / baseline.p50
            });
        }
        self
    }

    /// Records how many rounds were left out as incomplete.
    pub fn incomplete(mut self, rounds: usize) -> Figure {
        self.incomplete = rounds;
        self
    }

    /// Records a target and whether it is met.
    pub fn target(mut self, words: &str, met: bool) -> Figure {
        self.target = Some(words.to_string());
        self.met = Some(met);
        self
    }
}

/// Prints figures as a table.
pub fn table(figures: &[Figure]) -> String {
    // As wide as the longest name, so that every column lines up.
    let width = figures
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(44);
    let mut out = format!(
        "{:<width$} {:>6} {:>10} {:>10} {:>6} {:>10} {:>9} {:>7}  {}\n",
        "figure", "n", "p50", "p99", "unit", "baseline", "vs", "ratio", "target"
    );
    for f in figures {
        let ratio = f.ratio.map(|r| format!("{r:.2}x")).unwrap_or_default();
        let baseline = f.baseline_p50.map(fmt).unwrap_or_default();
        let mut target = match (&f.target, f.met) {
            (Some(t), Some(true)) => format!("met: {t}"),
            (Some(t), _) => format!("MISSED: {t}"),
            _ => String::new(),
        };
        if f.incomplete > 0 {
            target.push_str(&format!(" ({} incomplete rounds left out)", f.incomplete));
        }
        out.push_str(&format!(
            "{:<width$} {:>6} {:>10} {:>10} {:>6} {:>10} {:>9} {:>7}  {}\n",
            f.name,
            f.n,
            fmt(f.p50),
            fmt(f.p99),
            f.unit,
            baseline,
            f.baseline.clone().unwrap_or_default(),
            ratio,
            target
        ));
    }
    out
}

fn fmt(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A process's resident memory (`VmRSS`) and peak (`VmHWM`), in MB, from `/proc`.
pub fn memory_mb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The CPU time this process has used so far, user and system, on all its threads.
///
/// Wall time on a busy 2-core machine moves with whatever else runs; the CPU a round costs
/// the process does much less, so it is what tells whether a change made the nodes' work
/// cheaper.
pub fn process_cpu() -> Duration {
    let (user, system) = mco_server::stats::process_cpu_times();
    Duration::from_secs_f64(user + system)
}

/// Runs one round and measures the CPU time it cost this process (every thread: the caller,
/// the fleet under test, the connections), which the machine's other load moves much less
/// than the round's wall time.
pub async fn with_cpu<T>(round: impl std::future::Future<Output = T>) -> (T, Duration) {
    let before = process_cpu();
    let outcome = round.await;
    (outcome, process_cpu().saturating_sub(before))
}

/// How many rounds to run for `n` nodes: `rounds` up to 1,000 nodes, fewer above (at least
/// 3), so a 10,000-node run stays within a minute.
pub fn rounds_for(n: usize, rounds: usize) -> usize {
    if n <= 1000 {
        rounds
    } else {
        (rounds * 1000 / n).max(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::new();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.p50(), 50.0);
        assert_eq!(s.p99(), 99.0);
        assert_eq!(s.percentile_ms(100.0), 100.0);
        assert_eq!(Samples::new().p50(), 0.0);
    }

    #[test]
    fn ratios_say_how_much_slower() {
        let base = Figure::value("raw", 1, "ms", 2.0);
        assert_eq!(
            Figure::value("mco", 1, "ms", 3.0)
                .against(&base, "raw")
                .ratio,
            Some(1.5)
        );
        let base = Figure::value("raw", 1, "req/s", 300.0);
        assert_eq!(
            Figure::value("mco", 1, "req/s", 100.0)
                .against(&base, "raw")
                .ratio,
            Some(3.0)
        );
    }
}
