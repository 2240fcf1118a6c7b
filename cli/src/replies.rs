//! `mco replies NAME --id ID`: read the replies that nodes send to a subject named with
//! `mco rpc ... --reply-to NAME`, in this process or another, and print them as `mco rpc`
//! does. Only replies to request `ID` are taken: any other signed reply that reaches the
//! subject (an old one, one to another request) is dropped. Ends after `--count` replies or
//! at the timeout.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::output;
use crate::{Failure, Printed};

/// Arguments of `mco replies`.
#[derive(Debug, Args)]
pub struct RepliesArgs {
    /// The reply subject, as given to mco rpc --reply-to (a name under this caller's reply
    /// prefix, or the full subject).
    pub subject: String,
    /// Stop after this many replies.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// The request id (given to or printed by mco rpc --reply-to): only its replies are
    /// taken.
    #[arg(long, visible_alias = "request-id", value_name = "ID")]
    pub id: String,
    /// The collective the request was sent in (the main one by default).
    #[arg(short = 'T', long = "target", value_name = "COLLECTIVE")]
    pub target: Option<String>,
    /// How long to wait, seconds.
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 60.0)]
    pub timeout: f64,
    /// Print the replies as a JSON array (as mco rpc -j) at the end.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Client configuration file.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// NATS server URL; repeat for a pool.
    #[arg(long, value_name = "URL")]
    pub broker: Vec<String>,
}

pub(super) async fn run(args: &RepliesArgs, printed: &mut Printed) -> Result<u8, Failure> {
    let timeout = super::seconds("-t", Some(args.timeout))?.unwrap_or_default();
    if args.count == Some(0) {
        return Err(anyhow::anyhow!("--count must be at least 1").into());
    }
    let (_, ddl_dirs, _) = super::load_config(args.config.as_deref())?;
    let client = super::connect(args.config.as_deref(), &args.broker).await?;
    let subject = client.reply_subject(args.target.as_deref(), &args.subject)?;
    let mut listener = client.listen(&subject, &args.id).await?;
    // Tell whoever waits for us (a script about to send) that the subscription is in place.
    let _ = writeln!(
        std::io::stderr(),
        "Listening for replies to {} on {subject} for {:.0} s",
        args.id,
        timeout.as_secs_f64()
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let mut replies = Vec::new();
    while args.count.is_none_or(|c| replies.len() < c) {
        let Some(mut reply) = listener.next_before(deadline).await else {
            break;
        };
        let ddl = mco_ddl::builtin::find(&reply.agent, &ddl_dirs)
            .ok()
            .flatten();
        let action = ddl.as_ref().and_then(|d| d.action(&reply.action));
        if let (Some(action), serde_json::Value::Object(map)) = (action, &mut reply.data) {
            action.apply_output_defaults(map);
        }
        if !args.json {
            // Printed as they come: a listener may run for a long time.
            let block = output::reply_block(&reply, action, false, crate::format::stdout_palette());
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{block}").and_then(|_| stdout.flush());
        }
        replies.push(reply);
    }
    if args.json {
        printed.out.push_str(&output::replies_json(&replies));
    } else {
        printed.err.push_str(&format!(
            "Received {} repl{} on {}\n",
            replies.len(),
            if replies.len() == 1 { "y" } else { "ies" },
            subject
        ));
    }
    if listener.forged() > 0 {
        printed.err.push_str(&format!(
            "Ignored {} forged repl{} (bad signature or token)\n",
            listener.forged(),
            if listener.forged() == 1 { "y" } else { "ies" }
        ));
    }
    let complete = match args.count {
        Some(c) => replies.len() >= c,
        None => !replies.is_empty(),
    };
    Ok(if complete { 0 } else { 1 })
}
