//! `mco puppet runall N`: a Puppet run on every matching node, keeping at most N runs going
//! at once across those nodes, as MCollective's `mco puppet runall` does. Every round asks
//! the nodes for their Puppet status, counts those applying a catalog (whoever started the
//! run: mco, a daemon's schedule or a person) and starts runs on the next waiting nodes
//! while fewer than N apply. It ends when every node has been started, without waiting for
//! the last runs to finish; `mco puppet status` follows them.
//!
//! Not for: one run on many nodes at once (`mco puppet runonce`, with `--batch` for slices),
//! or splaying runs over time (the puppet agent's `splay`, which runall turns off).

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use mco_client::{Call, Client};
use mco_spec::Reply;

use crate::rpc::call_of_flags;
use crate::shortcuts::ActArgs;
use crate::{Failure, Printed, UsageError};

/// How long a round waits before asking again how many nodes apply.
const ROUND: Duration = Duration::from_secs(1);

/// The N of `runall N`: how many runs may go at once (at least one).
pub fn concurrency(word: Option<&str>) -> Result<usize, UsageError> {
    let usage = || {
        UsageError(
            "mco puppet runall needs how many runs may go at once: mco puppet runall N [KEY=VALUE...]"
                .into(),
        )
    };
    let word = word.ok_or_else(usage)?;
    match word.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(UsageError(format!(
            "runall {word:?}: the number of runs at once must be a whole number of 1 or more"
        ))),
    }
}

/// Runs `runall` with at most `concurrency` runs at once; `inputs` go to every runonce.
pub(super) async fn run(
    concurrency: usize,
    mut inputs: Vec<String>,
    act: ActArgs,
    printed: &mut Printed,
) -> Result<u8, Failure> {
    let common = &act.call.common;
    // A splayed run would start later than runall counts it, and so overrun N.
    if !inputs.iter().any(|i| i.starts_with("splay=")) {
        inputs.push("splay=false".into());
    }
    let runonce = call_of_flags(common, "puppet", "runonce", &inputs, None).await?;
    let status = call_of_flags(common, "puppet", "status", &[], None).await?;
    let mut filter = common.filter()?;
    filter.add_agent("puppet")?;
    let client = common.connect().await?;
    let found = common
        .discover_nodes(&client, &filter, &mut printed.err)
        .await?;
    if found.nodes.is_empty() {
        printed
            .err
            .push_str("No request sent, we did not discover any nodes.\n");
        return Ok(1);
    }
    let began = Instant::now();
    let total = found.nodes.len();
    let mut waiting: VecDeque<String> = found.nodes.iter().cloned().collect();
    let mut out = Lines::default();
    out.say(
        printed,
        &format!("Running Puppet on {total} nodes, at most {concurrency} at a time"),
    );
    let mut started = 0usize;
    let mut failed: Vec<(String, String)> = Vec::new();
    while !waiting.is_empty() {
        let applying = applying(&client, &status, &found.nodes).await?;
        let free = concurrency.saturating_sub(applying);
        if free > 0 {
            let next: Vec<String> = (0..free).filter_map(|_| waiting.pop_front()).collect();
            let replies = replies_of(&client, &runonce, &next).await?;
            for node in &next {
                match replies.iter().find(|r| &r.sender == node) {
                    Some(reply) if reply.statuscode.is_ok() => {
                        started += 1;
                        out.say(
                            printed,
                            &format!("{node}: Puppet run started ({started} of {total})"),
                        );
                    }
                    Some(reply) => {
                        out.say(printed, &format!("{node}: {}", reply.statusmsg));
                        failed.push((node.clone(), reply.statusmsg.clone()));
                    }
                    None => {
                        out.say(printed, &format!("{node}: no response"));
                        failed.push((node.clone(), "no response".into()));
                    }
                }
            }
            if out.reader_gone {
                // `| head`: whoever reads has what they wanted; start nothing more.
                printed.err.clear();
                return Ok(0);
            }
        }
        if !waiting.is_empty() {
            tokio::time::sleep(ROUND).await;
        }
    }
    let mut summary = format!(
        "\nStarted Puppet on {started} of {total} nodes, at most {concurrency} at a time, in {:.1} s\n",
        began.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        summary.push_str(&format!("Not started on {}:\n", failed.len()));
        for (node, why) in &failed {
            summary.push_str(&format!("   {node}: {why}\n"));
        }
    }
    out.say(printed, summary.trim_end());
    Ok(if failed.is_empty() { 0 } else { 2 })
}

/// How many of `nodes` are applying a catalog now. A node that does not answer counts as
/// idle: it cannot be asked to run either, and its runonce will say so.
async fn applying(client: &Client, status: &Call, nodes: &[String]) -> Result<usize, Failure> {
    let replies = replies_of(client, status, nodes).await?;
    Ok(replies.iter().filter(|r| is_applying(r)).count())
}

/// The replies of `call` sent directly to `nodes`.
async fn replies_of(client: &Client, call: &Call, nodes: &[String]) -> Result<Vec<Reply>, Failure> {
    Ok(client
        .call(call.clone().nodes(nodes.iter().cloned()))
        .await?
        .collect()
        .await
        .replies)
}

fn is_applying(reply: &Reply) -> bool {
    reply.statuscode.is_ok() && reply.data["applying"].as_bool() == Some(true)
}

/// Lines written as they happen (a runall may take hours), and whether the reader left.
#[derive(Default)]
struct Lines {
    reader_gone: bool,
}

impl Lines {
    fn say(&mut self, printed: &mut Printed, line: &str) {
        // What came before (the discovery line) goes out first.
        if !printed.err.is_empty() {
            let _ = std::io::stderr().write_all(printed.err.as_bytes());
            printed.err.clear();
        }
        if !self.reader_gone {
            let mut stdout = std::io::stdout().lock();
            self.reader_gone = writeln!(stdout, "{line}")
                .and_then(|_| stdout.flush())
                .is_err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mco_spec::StatusCode;
    use serde_json::json;

    #[test]
    fn the_number_of_runs_is_one_or_more() {
        assert_eq!(concurrency(Some("3")).ok(), Some(3));
        assert!(concurrency(Some("0")).is_err());
        assert!(concurrency(Some("two")).is_err());
        assert!(concurrency(Some("-1")).is_err());
        let missing = concurrency(None).unwrap_err().to_string();
        assert!(missing.contains("runall N"), "{missing}");
    }

    #[test]
    fn only_a_successful_status_that_says_applying_counts() {
        let reply = |statuscode: StatusCode, applying: bool| Reply {
            request_id: "r".into(),
            sender: "x".into(),
            agent: "puppet".into(),
            action: "status".into(),
            time: 0,
            statuscode,
            statusmsg: String::new(),
            data: json!({"applying": applying}),
        };
        assert!(is_applying(&reply(StatusCode::Ok, true)));
        assert!(!is_applying(&reply(StatusCode::Ok, false)));
        assert!(!is_applying(&reply(StatusCode::Aborted, true)));
    }
}
