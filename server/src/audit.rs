//! The audit log: one JSON line per request decision, and the gate that keeps refusals from
//! flooding it.
//!
//! - An **accepted** request is written in full: time, request id, caller, sender, agent,
//!   action, its inputs (with the values of secret-looking inputs replaced, see
//!   [`Redaction`]) and the policy rule that allowed it.
//! - A **refusal** is written in bounded form: ids, the caller the message claims, agent,
//!   action, the message's size and the reason — never its data, and every string cut to a
//!   bounded length. Anyone who can publish on the broker can make a node refuse things, so
//!   what a refusal costs on disk must not depend on what the sender put in the message.
//! - Refusals pass a [`RefusalGate`] first: at most a configured number per second are
//!   written (and logged as warnings); the rest are counted, and the next line that passes
//!   is preceded by one `suppressed` line saying how many were not written.
//!
//! Lines are appended with a single `write` each, so concurrent writers never interleave
//! within a line; a failure to write is reported to the caller, which logs it (an audit
//! outage must be visible, not silent).
//!
//! Not for: deciding anything (the pipeline decides, this records).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

/// The longest id, name or action written in a refusal line, in characters.
pub const MAX_REFUSAL_FIELD_CHARS: usize = 128;

/// The longest reason written in a refusal line, in characters.
pub const MAX_REFUSAL_REASON_CHARS: usize = 512;

/// The value written in place of a redacted input.
pub const REDACTED: &str = "[redacted]";

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditDecision {
    /// It passed every check and the action ran.
    Accepted,
    /// It was refused; `reason` says by which stage.
    Rejected,
    /// Refusals that the rate limit kept out of the log, counted.
    Suppressed,
}

/// An accepted request, as audited.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted<'a> {
    /// When the decision was made, Unix milliseconds.
    pub time: u64,
    /// The request id.
    pub request_id: &'a str,
    /// The verified caller.
    pub caller: &'a str,
    /// The sending host.
    pub sender: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// The action.
    pub action: &'a str,
    /// The inputs, redacted.
    pub data: Value,
    /// Always [`AuditDecision::Accepted`].
    pub decision: AuditDecision,
    /// Which policy rule allowed it (`service.policy:3`), or why no policy applied.
    pub rule: &'a str,
    /// The same, in the words refusals use.
    pub reason: String,
}

/// A refusal, as audited: bounded whatever the message held.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// When the decision was made, Unix milliseconds.
    pub time: u64,
    /// The request id the message claims (empty when it could not be read).
    pub request_id: String,
    /// The caller the message claims (or the verified one, when verification passed).
    pub caller: String,
    /// The sending host it claims.
    pub sender: String,
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The message's size in bytes.
    pub size: usize,
    /// Always [`AuditDecision::Rejected`].
    pub decision: AuditDecision,
    /// Which stage refused it, and why.
    pub reason: String,
}

/// Cuts `text` to at most `limit` characters, marking the cut.
pub fn bounded(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

impl Refusal {
    /// A refusal line from the fields a message claims, each cut to its bound.
    pub fn new(claimed: &Claimed<'_>, size: usize, reason: &str, time: u64) -> Refusal {
        let field = |s: &str| bounded(s, MAX_REFUSAL_FIELD_CHARS);
        Refusal {
            time,
            request_id: field(claimed.request_id),
            caller: field(claimed.caller),
            sender: field(claimed.sender),
            agent: field(claimed.agent),
            action: field(claimed.action),
            size,
            decision: AuditDecision::Rejected,
            reason: bounded(reason, MAX_REFUSAL_REASON_CHARS),
        }
    }
}

/// What a refused message says about itself (possibly nothing, possibly lies).
#[derive(Debug, Clone, Copy, Default)]
pub struct Claimed<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// The caller.
    pub caller: &'a str,
    /// The sending host.
    pub sender: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// The action.
    pub action: &'a str,
}

/// Which inputs are secrets: names containing one of the configured words, ignoring case.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    words: Vec<String>,
}

impl Redaction {
    /// Redacts inputs whose names contain any of `words` (compared in lower case).
    pub fn new(words: &[String]) -> Redaction {
        Redaction {
            words: words.iter().map(|w| w.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether the input called `name` is a secret.
    pub fn applies_to(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.words.iter().any(|w| name.contains(w.as_str()))
    }

    /// `data` with every secret input's value replaced by [`REDACTED`].
    pub fn apply(&self, data: &Map<String, Value>) -> Value {
        Value::Object(
            data.iter()
                .map(|(k, v)| {
                    let value = if self.applies_to(k) {
                        Value::String(REDACTED.into())
                    } else {
                        v.clone()
                    };
                    (k.clone(), value)
                })
                .collect(),
        )
    }
}

/// The rate limit on refusals: a token bucket holding one second's allowance.
#[derive(Debug)]
pub struct RefusalGate {
    per_second: f64,
    tokens: f64,
    last_ms: u64,
    suppressed: u64,
}

/// What the gate says about one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Write it (after a line saying how many before it were not written, if any).
    Pass {
        /// Refusals kept out since the last one that passed.
        suppressed: u64,
    },
    /// Count it only.
    Hold,
}

impl RefusalGate {
    /// A gate letting `per_second` refusals through each second (bursts of as many).
    pub fn new(per_second: u32) -> RefusalGate {
        let per_second = f64::from(per_second.max(1));
        RefusalGate {
            per_second,
            tokens: per_second,
            last_ms: 0,
            suppressed: 0,
        }
    }

    /// Decides about one refusal at `now_ms`.
    pub fn check(&mut self, now_ms: u64) -> Gate {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            let suppressed = std::mem::take(&mut self.suppressed);
            Gate::Pass { suppressed }
        } else {
            self.suppressed += 1;
            Gate::Hold
        }
    }
}

#[derive(Serialize)]
struct SuppressedLine {
    time: u64,
    decision: AuditDecision,
    count: u64,
    reason: String,
}

/// An append-only JSON-lines audit file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating, mode 0640) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, record: &impl Serialize) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line)
    }

    /// Appends an accepted request.
    pub fn accepted(&self, record: &Accepted<'_>) -> std::io::Result<()> {
        self.append(record)
    }

    /// Appends a refusal that passed the gate, after a line for the `suppressed` refusals
    /// before it.
    pub fn refusal(&self, record: &Refusal, suppressed: u64) -> std::io::Result<()> {
        if suppressed > 0 {
            self.append(&SuppressedLine {
                time: record.time,
                decision: AuditDecision::Suppressed,
                count: suppressed,
                reason: format!(
                    "{suppressed} refusals over the audit_refusals_per_second limit were not written"
                ),
            })?;
        }
        self.append(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines_and_refusals_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.log")).unwrap();
        let data = serde_json::json!({"service": "httpd", "db_password": "hunter2"})
            .as_object()
            .unwrap()
            .clone();
        let redaction = Redaction::new(&["Password".to_string()]);
        log.accepted(&Accepted {
            time: 1,
            request_id: "r1",
            caller: "alice",
            sender: "admin1",
            agent: "service",
            action: "restart",
            data: redaction.apply(&data),
            decision: AuditDecision::Accepted,
            rule: "service.policy:3",
            reason: "allowed by service.policy:3".into(),
        })
        .unwrap();
        let huge = "x".repeat(100_000);
        let claimed = Claimed {
            request_id: &huge,
            caller: &huge,
            sender: "s",
            agent: "a",
            action: "b",
        };
        log.refusal(&Refusal::new(&claimed, 1_000_000, &huge, 2), 7)
            .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["decision"], "accepted");
        assert_eq!(lines[0]["data"]["service"], "httpd");
        assert_eq!(lines[0]["data"]["db_password"], REDACTED);
        assert_eq!(lines[0]["rule"], "service.policy:3");
        assert_eq!(lines[1]["decision"], "suppressed");
        assert_eq!(lines[1]["count"], 7);
        assert_eq!(lines[2]["decision"], "rejected");
        assert_eq!(lines[2]["size"], 1_000_000);
        assert!(lines[2].get("data").is_none());
        assert!(text.len() < 2_000, "{} bytes", text.len());
    }

    #[test]
    fn the_gate_lets_a_second_s_worth_through_and_counts_the_rest() {
        let mut gate = RefusalGate::new(3);
        let passed = (0..10)
            .filter(|_| matches!(gate.check(1_000), Gate::Pass { .. }))
            .count();
        assert_eq!(passed, 3);
        // Half a second later, one and a half more tokens: one passes and reports the 7.
        assert_eq!(gate.check(1_500), Gate::Pass { suppressed: 7 });
        assert_eq!(gate.check(1_500), Gate::Hold);
        // A long quiet spell refills no more than a second's worth.
        let passed = (0..10)
            .filter(|_| matches!(gate.check(100_000), Gate::Pass { .. }))
            .count();
        assert_eq!(passed, 3);
    }

    #[test]
    fn bounded_cuts_at_characters_not_bytes() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("ééééé", 2), "éé…");
    }
}
