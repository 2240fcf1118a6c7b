//! The callbacks of `mco events --run COMMAND`: a command run for each event shown, with the
//! event as JSON on stdin and its fields in the environment, at most `--concurrency` at once
//! (one by default, in the order the events came), each within `--run-timeout`, through
//! `mco-runner` (its own process group, killed at the deadline with whatever it started).
//!
//! The command is the operator's own, run by `/bin/sh -c` with mco's environment (so a
//! callback that runs `mco` finds the same configuration). What comes from the network (the
//! event) reaches it only as data, never as part of the command line: `MCO_EVENT_TYPE`,
//! `MCO_EVENT_IDENTITY`, `MCO_EVENT_SEVERITY`, `MCO_EVENT_TIME` (Unix ms), `MCO_EVENT_ID`,
//! `MCO_EVENT_COLLECTIVE`, and `MCO_EVENT_DATA_<KEY>` for each top-level data field (the key
//! upper-cased, anything but letters and digits as `_`; non-string values as JSON). An `mco`
//! run by a callback does not take its stdin (the event) as a node list.
//!
//! Not for: choosing events (the `--type`/`--where`/filter flags do) or showing them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mco_client::ReceivedEvent;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The variable with the event's id, which also tells an `mco` run by a callback that its
/// stdin is the event rather than a node list.
pub const EVENT_ID_VARIABLE: &str = "MCO_EVENT_ID";

/// Most callbacks waiting for their turn; an event beyond them is not run, and said so.
const MAX_WAITING: usize = 1000;

/// Most bytes of a callback's stdout and of its stderr kept to show.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// The callbacks of one `mco events`.
pub struct Callbacks {
    command: Arc<String>,
    timeout: Duration,
    turns: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    running: JoinSet<bool>,
    /// Callbacks that exited non-zero, timed out or could not start.
    pub failed: usize,
    /// Events whose callback was not run because too many were waiting.
    pub skipped: usize,
}

impl Callbacks {
    /// Callbacks running `command`, `concurrency` at once, each for at most `timeout`.
    pub fn new(command: String, concurrency: usize, timeout: Duration) -> Callbacks {
        Callbacks {
            command: Arc::new(command),
            timeout,
            turns: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            running: JoinSet::new(),
            failed: 0,
            skipped: 0,
        }
    }

    /// Runs the callback for `received` when its turn comes (the semaphore is fair, so one
    /// at a time means in order).
    pub fn start(&mut self, received: &ReceivedEvent) {
        self.reap();
        if self.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
            self.skipped += 1;
            eprintln!(
                "mco: warning: {MAX_WAITING} callbacks are waiting; not running one for {} from {}",
                received.event.kind, received.event.identity
            );
            return;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let command = runner_command(&self.command, received, self.timeout);
        let (turns, waiting) = (self.turns.clone(), self.waiting.clone());
        let what = format!("{} from {}", received.event.kind, received.event.identity);
        self.running.spawn(async move {
            let Ok(_turn) = turns.acquire_owned().await else {
                return false;
            };
            waiting.fetch_sub(1, Ordering::Relaxed);
            let began = Instant::now();
            let result = command.run().await;
            report(&what, began.elapsed(), result)
        });
    }

    /// Waits for every callback started to end.
    pub async fn finish(&mut self) {
        while let Some(done) = self.running.join_next().await {
            if !done.unwrap_or(false) {
                self.failed += 1;
            }
        }
    }

    /// Counts the callbacks that ended, so that the set does not grow with a long watch.
    fn reap(&mut self) {
        while let Some(done) = self.running.try_join_next() {
            if !done.unwrap_or(false) {
                self.failed += 1;
            }
        }
    }
}

/// The command for one event: `/bin/sh -c COMMAND` with mco's environment, the event's
/// fields added, the event as JSON on stdin.
fn runner_command(
    command: &str,
    received: &ReceivedEvent,
    timeout: Duration,
) -> mco_runner::Command {
    let mut run = mco_runner::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(crate::events::event_json(received).into_bytes())
        .deadline(timeout)
        .stdout_limit(OUTPUT_LIMIT)
        .stderr_limit(OUTPUT_LIMIT);
    for (key, value) in std::env::vars_os() {
        run = run.env(key, value);
    }
    for (key, value) in event_environment(received) {
        run = run.env(key, value);
    }
    run
}

/// The `MCO_EVENT_*` variables of an event.
pub fn event_environment(received: &ReceivedEvent) -> Vec<(String, String)> {
    let event = &received.event;
    let mut vars = vec![
        ("MCO_EVENT_TYPE".to_string(), event.kind.clone()),
        ("MCO_EVENT_IDENTITY".to_string(), event.identity.clone()),
        (
            "MCO_EVENT_SEVERITY".to_string(),
            event.severity.name().to_string(),
        ),
        ("MCO_EVENT_TIME".to_string(), event.time.to_string()),
        (EVENT_ID_VARIABLE.to_string(), event.id.clone()),
        ("MCO_EVENT_COLLECTIVE".to_string(), event.collective.clone()),
    ];
    if let Value::Object(data) = &event.data {
        for (key, value) in data {
            let name: String = key
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let text = crate::events::data_text(value);
            // A NUL cannot be in an environment value; such a field is left out.
            if !text.contains('\0') {
                vars.push((format!("MCO_EVENT_DATA_{name}"), text));
            }
        }
    }
    vars
}

/// Says on stderr how a callback ended, with what it printed; whether it succeeded.
fn report(
    what: &str,
    took: Duration,
    result: Result<mco_runner::Output, mco_runner::RunError>,
) -> bool {
    let mut text = String::new();
    let ok = match &result {
        Ok(out) => {
            for (bytes, cut) in [
                (&out.stdout, out.stdout_truncated),
                (&out.stderr, out.stderr_truncated),
            ] {
                for line in String::from_utf8_lossy(bytes).lines() {
                    text.push_str(&format!("  | {line}\n"));
                }
                if cut {
                    text.push_str("  | (cut)\n");
                }
            }
            let how = match out.code() {
                Some(code) => format!("exit {code}"),
                None => "killed by a signal".to_string(),
            };
            text.insert_str(
                0,
                &format!(
                    "mco: callback for {what}: {how} in {:.1} s\n",
                    took.as_secs_f64()
                ),
            );
            out.success()
        }
        Err(e) => {
            text.push_str(&format!("mco: callback for {what} failed: {e}\n"));
            false
        }
    };
    eprint!("{text}");
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use mco_spec::event::{Event, Severity};
    use serde_json::json;

    fn received(data: Value) -> ReceivedEvent {
        ReceivedEvent {
            event: Event {
                id: "a".repeat(32),
                kind: "service.state_changed".into(),
                identity: "web1".into(),
                collective: "mco".into(),
                time: 5,
                severity: Severity::Info,
                data,
            },
            sequence: None,
        }
    }

    #[test]
    fn the_event_reaches_the_command_as_variables_only() {
        let vars = event_environment(&received(json!({
            "service": "httpd", "state": "running", "pid": 42, "we-ird.key": "$(rm -rf /)", "nul": "a\u{0}b"
        })));
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MCO_EVENT_TYPE"), Some("service.state_changed"));
        assert_eq!(get("MCO_EVENT_IDENTITY"), Some("web1"));
        assert_eq!(get("MCO_EVENT_DATA_SERVICE"), Some("httpd"));
        assert_eq!(get("MCO_EVENT_DATA_PID"), Some("42"));
        assert_eq!(get("MCO_EVENT_DATA_WE_IRD_KEY"), Some("$(rm -rf /)"));
        assert_eq!(get("MCO_EVENT_DATA_NUL"), None);
    }

    #[tokio::test]
    async fn callbacks_run_in_order_one_at_a_time_within_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut callbacks = Callbacks::new(
            format!(
                "echo start $MCO_EVENT_DATA_N >> {0}; sleep 0.2; read -r line; echo end $MCO_EVENT_DATA_N >> {0}",
                log.display()
            ),
            1,
            Duration::from_secs(10),
        );
        for n in 0..3 {
            callbacks.start(&received(json!({ "n": n })));
        }
        callbacks.finish().await;
        assert_eq!(callbacks.failed, 0);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "start 0\nend 0\nstart 1\nend 1\nstart 2\nend 2\n");

        let mut slow = Callbacks::new("sleep 30".into(), 1, Duration::from_millis(300));
        slow.start(&received(json!({})));
        let began = Instant::now();
        slow.finish().await;
        assert_eq!(slow.failed, 1);
        assert!(began.elapsed() < Duration::from_secs(10));
    }
}
