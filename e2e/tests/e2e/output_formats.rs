//! `mco rpc`'s output formats against the five-node fleet: the text, table, JSON and JSON
//! lines outputs pinned by snapshots, `--display`, JSON lines streamed into the next command,
//! a closed pipe ending the call quietly, colour, charts and the progress bar on a terminal
//! (a pty from `script`) and never in a pipe; `mco plot`'s histogram in text and as a PNG.

use std::path::Path;

use mco_testsupport::{Fleet, Run};

use crate::{five_nodes, on_terminal};

/// Compares `text` with `e2e/tests/e2e/snapshots/NAME`; `MCO_BLESS=1` rewrites it.
fn snapshot(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/snapshots")
        .join(name);
    if std::env::var_os("MCO_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text, want,
        "{name} changed: review it and run MCO_BLESS=1 cargo test -p mco-e2e --test e2e output_formats"
    );
}

/// Output with the call's timing replaced, so that it can be pinned.
fn untimed(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once(" hosts in ") {
            Some((head, _)) => format!("{head} hosts in <ms>"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn rpc(fleet: &Fleet, args: &[&str]) -> Run {
    let mut all = vec!["rpc", "rpcutil"];
    all.extend(args);
    let run = fleet.mco(&all);
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stderr.contains('\u{1b}'),
        "escape codes in a pipe: {run:?}"
    );
    run
}

#[test]
fn text_table_json_and_json_lines_are_pinned() {
    let fleet = five_nodes();
    let fact = ["get_fact", "fact=country"];
    let text = rpc(&fleet, &fact);
    assert_eq!(text.code, Some(0), "{text:?}");
    snapshot("get_fact.txt", &untimed(&text.stdout));

    let table = rpc(&fleet, &[&fact[..], &["--table"]].concat());
    assert_eq!(table.code, Some(0), "{table:?}");
    snapshot("get_fact.table.txt", &untimed(&table.stdout));

    let json = rpc(&fleet, &[&fact[..], &["-j"]].concat());
    snapshot("get_fact.json", &json.stdout);

    // One reply per line as they arrive (so in arrival order); the same replies as -j, and
    // nothing else on stdout: the summary is on stderr.
    let jsonl = rpc(&fleet, &[&fact[..], &["--jsonl"]].concat());
    assert_eq!(jsonl.code, Some(0), "{jsonl:?}");
    let mut lines: Vec<serde_json::Value> = jsonl
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    lines.sort_by(|a, b| a["sender"].as_str().cmp(&b["sender"].as_str()));
    assert_eq!(serde_json::Value::Array(lines), json.json());
    assert!(
        jsonl.stderr.contains("Finished processing 5 / 5 hosts"),
        "{}",
        jsonl.stderr
    );

    // A failure on every node: marked in the table, shown by the DDL's rule in the text.
    let failing = ["get_config_item", "item=nope"];
    let failed = rpc(
        &fleet,
        &[&failing[..], &["--table", "-W", "country=uk"]].concat(),
    );
    assert_eq!(failed.code, Some(2), "{failed:?}");
    snapshot("get_config_item.failed.table.txt", &untimed(&failed.stdout));

    // --display overrides the DDL's rule (get_fact's is "always").
    let only_failed = rpc(&fleet, &[&fact[..], &["--display", "failed"]].concat());
    assert!(!only_failed.stdout.contains("Value: uk"), "{only_failed:?}");
    assert!(
        only_failed.stdout.contains("Summary of Value:"),
        "aggregates stay: {only_failed:?}"
    );
    let none = rpc(&fleet, &[&failing[..], &["--display", "none"]].concat());
    assert!(
        !none.stdout.contains("web1") && none.stdout.contains("Finished processing 5 / 5"),
        "{none:?}"
    );
    let bad = fleet.mco(&["rpc", "rpcutil", "ping", "--display", "some"]);
    assert_eq!(bad.code, Some(64), "a usage error: {bad:?}");
    assert!(
        bad.stderr
            .contains("possible values: ok, failed, all, none"),
        "{bad:?}"
    );
    let clash = fleet.mco(&["rpc", "rpcutil", "ping", "--table", "-j"]);
    assert_eq!(clash.code, Some(64), "{clash:?}");
}

/// The nodes that ran `rpcutil#ping`.
fn pinged(fleet: &Fleet) -> usize {
    fleet
        .nodes
        .iter()
        .filter(|n| {
            n.audit().iter().any(|a| {
                a["agent"] == "rpcutil" && a["action"] == "ping" && a["decision"] == "accepted"
            })
        })
        .count()
}

#[test]
fn json_lines_feed_the_next_command_and_a_closed_pipe_ends_the_call_quietly() {
    let fleet = five_nodes();
    let chain = fleet.shell(
        "$MCO rpc rpcutil get_fact fact=country --jsonl -W country=uk | $MCO rpc rpcutil ping -j",
    );
    assert_eq!(chain.code, Some(0), "{chain:?}");
    assert_eq!(chain.senders(), ["db2", "web1", "web2"]);

    // The text output into `head`: exit 0 and no complaint.
    let text = fleet.shell("$MCO rpc rpcutil get_fact fact=country | head -1");
    assert_eq!(text.code, Some(0), "{text:?}");
    assert_eq!(text.stdout, "\n", "{text:?}");

    // One node per slice, so a reader gone after the first line is seen while slices are
    // still to come: mco stops sending them and exits 0 without a word about the pipe.
    let streamed = fleet.shell(
        "$MCO rpc rpcutil ping --jsonl -I web1 -I web2 -I web3 -I db1 -I db2 --batch 1 --batch-sleep 0.3 | head -1",
    );
    assert_eq!(streamed.code, Some(0), "{streamed:?}");
    assert_eq!(streamed.stdout.lines().count(), 1, "{streamed:?}");
    assert!(
        !streamed.stderr.contains("mco:") && !streamed.stderr.to_lowercase().contains("pipe"),
        "{streamed:?}"
    );
    let ran = pinged(&fleet);
    assert!(
        ran < 5,
        "the call went on after its reader left: {ran} nodes pinged"
    );
}

#[test]
fn progress_and_colour_on_a_terminal_and_never_in_a_pipe() {
    let fleet = five_nodes();
    // Three slices with pauses between them, so the bar is drawn while the call runs.
    let batched = [
        "rpc",
        "rpcutil",
        "ping",
        "--batch",
        "2",
        "--batch-sleep",
        "0.4",
    ];
    let terminal = on_terminal(&fleet, &batched, &[]);
    assert!(terminal.contains("replies, 0 failed"), "{terminal:?}");
    assert!(terminal.contains("batch 3/3"), "{terminal:?}");
    assert!(
        terminal.contains("Finished processing 5 / 5 hosts"),
        "{terminal:?}"
    );
    let piped = fleet.mco(&batched);
    assert_eq!(piped.code, Some(0), "{piped:?}");
    assert!(
        !piped.stderr.contains("replies,") && !piped.stderr.contains('\u{1b}'),
        "{piped:?}"
    );
    assert!(
        piped.stderr.contains("Batch 3/3: sent to 1 node(s)"),
        "{piped:?}"
    );
    let quiet = on_terminal(&fleet, &[&batched[..], &["--np"]].concat(), &[]);
    assert!(!quiet.contains("replies,"), "{quiet:?}");

    // Summaries drawn as bars, and numeric outputs summarised, on a terminal only.
    let fact = ["rpc", "rpcutil", "get_fact", "fact=country", "--np"];
    let drawn = on_terminal(&fleet, &fact, &[]);
    assert!(drawn.contains("uk = 3 ████"), "{drawn:?}");
    let stats = on_terminal(&fleet, &["rpc", "rpcutil", "daemon_stats", "--np"], &[]);
    assert!(
        stats.contains("   min ") && stats.contains("(5 nodes)"),
        "{stats:?}"
    );
    let piped = rpc(&fleet, &fact[2..]);
    assert!(piped.stdout.contains("   uk = 3\n"), "{piped:?}");
    let piped_stats = rpc(&fleet, &["daemon_stats"]);
    assert!(!piped_stats.stdout.contains("   min "), "{piped_stats:?}");

    // Failures in red on a terminal; not with NO_COLOR.
    let failing = [
        "rpc",
        "rpcutil",
        "get_config_item",
        "item=nope",
        "--np",
        "-I",
        "web1",
    ];
    let red = on_terminal(&fleet, &failing, &[]);
    assert!(red.contains("\u{1b}[") && red.contains("31m"), "{red:?}");
    let plain = on_terminal(&fleet, &failing, &[("NO_COLOR", "1")]);
    assert!(
        plain.contains("web1") && !plain.contains('\u{1b}'),
        "{plain:?}"
    );
}

#[test]
fn plot_draws_a_numeric_output_across_the_fleet_and_writes_a_png() {
    let fleet = five_nodes();
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("cpus.png");
    let png_arg = png.display().to_string();
    // cpus: web1 4, web2 2, web3 8, db1 16, db2 8.
    let args = [
        "plot",
        "rpcutil",
        "get_fact",
        "value",
        "fact=cpus",
        "--buckets",
        "7",
    ];
    let plot = fleet.mco(&[&args[..], &["--png", &png_arg]].concat());
    assert_eq!(plot.code, Some(0), "{plot:?}");
    snapshot("plot.txt", &untimed(&plot.stdout));
    assert!(plot.stderr.contains("Histogram written to"), "{plot:?}");

    let file = std::fs::File::open(&png).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (800, 480));
    let bar_pixels = pixels[..frame.buffer_size()]
        .chunks(3)
        .filter(|p| p == &[70, 110, 180])
        .count();
    assert!(bar_pixels > 1000, "the bars are drawn: {bar_pixels} pixels");
    let dark = pixels
        .chunks(3)
        .filter(|p| p.iter().all(|c| *c < 80))
        .count();
    assert!(
        dark > 500,
        "the title, axes and labels are drawn: {dark} pixels"
    );

    let unknown = fleet.mco(&["plot", "rpcutil", "get_fact", "nope", "fact=cpus"]);
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("rpcutil#get_fact has no output \"nope\"; its outputs: fact, value"),
        "{unknown:?}"
    );
    let words = fleet.mco(&["plot", "rpcutil", "get_fact", "value", "fact=country"]);
    assert_eq!(words.code, Some(1), "{words:?}");
    assert!(
        words
            .stderr
            .contains("no node answered with a number for value")
            && words.stdout.contains("No number for value from:"),
        "{words:?}"
    );
}
