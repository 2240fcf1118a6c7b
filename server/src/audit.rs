//! The audit log: one JSON line per request decision (accepted or rejected, with the reason):
//! time, request id, caller, sender, agent, action, data, decision.
//!
//! Lines are appended with a single `write` each so concurrent writers never interleave
//! within a line; a failure to write is reported to the caller, which logs it (an audit
//! outage must be visible, not silent).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditDecision {
    /// It passed every check and the action ran.
    Accepted,
    /// It was refused; `reason` says by which stage.
    Rejected,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord<'a> {
    /// When the decision was made, Unix milliseconds.
    pub time: u64,
    /// The request id (empty when the request could not be decoded).
    pub request_id: &'a str,
    /// The verified caller, or the claimed one when verification failed.
    pub caller: &'a str,
    /// The sending host.
    pub sender: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// The action.
    pub action: &'a str,
    /// The inputs.
    pub data: &'a Map<String, Value>,
    /// Accepted or rejected.
    pub decision: AuditDecision,
    /// Why it was rejected (or which policy rule allowed it).
    pub reason: &'a str,
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

    /// Appends one record as one line.
    pub fn write(&self, record: &AuditRecord<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.log")).unwrap();
        let data = serde_json::json!({"service": "httpd"})
            .as_object()
            .unwrap()
            .clone();
        for decision in [AuditDecision::Accepted, AuditDecision::Rejected] {
            log.write(&AuditRecord {
                time: 1,
                request_id: "r1",
                caller: "alice",
                sender: "admin1",
                agent: "service",
                action: "restart",
                data: &data,
                decision,
                reason: "test",
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["decision"], "accepted");
        assert_eq!(lines[1]["decision"], "rejected");
        assert_eq!(lines[0]["data"]["service"], "httpd");
    }
}
