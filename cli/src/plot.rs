//! `mco plot AGENT ACTION OUTPUT [key=value...]`: calls the action on the matching nodes and
//! draws the distribution of one numeric output across them as a histogram, titled and
//! labelled from the DDL, in text and, with `--png FILE`, as a picture.
//!
//! Not for: the call's flags and checks (shared with `mco rpc`, [`crate::rpc::prepared_call`])
//! or the text pictures themselves ([`crate::chart`]).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;
use mco_client::Ddls;

use crate::chart::{self, Bucket, NumericSummary};
use crate::discovery::discovery_line;
use crate::output;
use crate::{CommonArgs, Failure, Printed};

/// Arguments of `mco plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The agent, e.g. puppet.
    pub agent: String,
    /// The action, e.g. last_run_summary.
    pub action: String,
    /// The numeric output to plot, e.g. config_retrieval_time.
    pub output: String,
    /// Inputs as key=value.
    #[arg(value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// How many bars the histogram has.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub buckets: u16,
    /// Also draw the histogram as a PNG picture in FILE.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    #[command(flatten)]
    pub(super) common: CommonArgs,
}

pub(super) async fn run(args: &PlotArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let (_, ddl_dirs, _) = args.common.client_config()?;
    let ddl = Ddls::new(ddl_dirs).action(&args.agent, &args.action)?;
    let label = match ddl.as_ref().map(|d| d.action()) {
        Some(action) => match action.output.get(&args.output) {
            Some(output) => output.display_as.clone(),
            None => {
                let known: Vec<&str> = action.output.keys().map(String::as_str).collect();
                return Err(anyhow!(
                    "{}#{} has no output {:?}; its outputs: {}",
                    args.agent,
                    args.action,
                    args.output,
                    known.join(", ")
                )
                .into());
            }
        },
        None => args.output.clone(),
    };
    let (client, call) =
        crate::rpc::prepared_call(&args.common, &args.agent, &args.action, &args.inputs, None)
            .await?;
    let replies = client.call(call).await?;
    let stats = replies.stats();
    if let Some(line) = discovery_line(&stats, &args.common) {
        printed.err.push_str(&line);
    }
    if stats.discovered == 0 {
        printed
            .err
            .push_str("No request sent, we did not discover any nodes.\n");
        return Ok(1);
    }
    let mut result = replies.collect().await;
    result.replies.sort_by(|a, b| a.sender.cmp(&b.sender));
    let mut without = Vec::new();
    let mut values = Vec::new();
    for reply in result.replies.iter().filter(|r| r.statuscode.is_ok()) {
        match chart::numeric(reply, &args.output) {
            Some(value) => values.push(value),
            None => without.push(reply.sender.clone()),
        }
    }
    let call_name = format!("{}#{}", args.agent, args.action);
    let title = format!("{label} across {} nodes ({call_name})", values.len());
    let buckets = chart::histogram(&values, usize::from(args.buckets));
    printed.out.push_str(&format!("\n{title}\n\n"));
    printed.out.push_str(&histogram_text(&buckets));
    let numbers = NumericSummary {
        output: args.output.clone(),
        label: label.clone(),
        values,
    };
    if !numbers.values.is_empty() {
        printed.out.push_str(&format!(
            "\n   min {}  avg {}  max {}\n",
            chart::number(numbers.min()),
            chart::number(numbers.avg()),
            chart::number(numbers.max())
        ));
    }
    if !without.is_empty() {
        printed.out.push_str(&format!(
            "\nNo number for {} from:\n\n{}",
            args.output,
            output::columns(&without)
        ));
    }
    printed.out.push('\n');
    printed.out.push_str(&output::summary(
        &result.stats,
        args.common.verbose,
        &call_name,
    ));
    if numbers.values.is_empty() {
        printed.err.push_str(&format!(
            "mco: no node answered with a number for {}\n",
            args.output
        ));
        return Ok(1);
    }
    if let Some(path) = &args.png {
        write_png(path, &title, &label, &buckets)?;
        printed
            .err
            .push_str(&format!("Histogram written to {}\n", path.display()));
    }
    Ok(output::exit_code(&result.stats))
}

/// One line a bucket: its range, a bar and its count.
fn histogram_text(buckets: &[Bucket]) -> String {
    let most = buckets.iter().map(|b| b.count).max().unwrap_or(0) as f64;
    let lows: Vec<String> = buckets.iter().map(|b| chart::number(b.low)).collect();
    let highs: Vec<String> = buckets.iter().map(|b| chart::number(b.high)).collect();
    let low_width = lows.iter().map(String::len).max().unwrap_or(0);
    let high_width = highs.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for ((bucket, low), high) in buckets.iter().zip(&lows).zip(&highs) {
        out.push_str(&format!(
            "   {low:>low_width$} – {high:<high_width$}  {} {}\n",
            chart::bar(bucket.count as f64, most),
            bucket.count
        ));
    }
    out
}

/// Fonts tried for the picture's text, in order, after `$MCO_PLOT_FONT`.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
];

/// Makes a TrueType font on this machine the one the picture's text is drawn with.
fn register_font() -> anyhow::Result<()> {
    let explicit = std::env::var_os("MCO_PLOT_FONT").map(PathBuf::from);
    let candidates = explicit
        .iter()
        .cloned()
        .chain(FONTS.iter().map(PathBuf::from));
    let Some((path, bytes)) = candidates
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .next()
    else {
        return Err(anyhow!(
            "--png needs a TrueType font: install fonts-dejavu-core or set MCO_PLOT_FONT to a .ttf file"
        ));
    };
    // The font lives as long as the process, as plotters requires.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a TrueType font it can use", path.display()))
}

/// Draws the histogram as an 800×480 PNG in `path`.
fn write_png(path: &Path, title: &str, x_label: &str, buckets: &[Bucket]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let failed = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let (low, high) = match (buckets.first(), buckets.last()) {
        (Some(first), Some(last)) if last.high > first.low => (first.low, last.high),
        (Some(first), _) => (first.low - 0.5, first.low + 0.5),
        _ => (0.0, 1.0),
    };
    let most = buckets.iter().map(|b| b.count).max().unwrap_or(0) as u32;
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(50)
        .build_cartesian_2d(low..high, 0u32..most + 1)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(x_label)
        .y_desc("nodes")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    let width = (high - low) / buckets.len().max(1) as f64;
    chart
        .draw_series(buckets.iter().enumerate().map(|(i, bucket)| {
            // A thin gap between neighbours, so two full buckets read as two bars.
            let gap = width * 0.03;
            let (left, right) = if buckets.len() == 1 {
                (low, high)
            } else {
                let left = low + width * i as f64;
                (left + gap, left + width - gap)
            };
            Rectangle::new(
                [(left, 0), (right, bucket.count as u32)],
                RGBColor(70, 110, 180).filled(),
            )
        }))
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}
