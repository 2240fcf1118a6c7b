//! The node's local event socket: how anything else on the node (a Nagios check, a Puppet
//! report processor, a deploy script) says an event through mcod, signed with the node's key,
//! without broker credentials of its own. `mcod event emit TYPE key=value...` is its client.
//!
//! The socket is `<state_dir>/events.sock` (or `[events] socket`), mode 0600: only the user
//! mcod runs as (root) may emit. Each line written to it is one event,
//! `{"type": "check.disk_full", "severity": "warning", "data": {...}}`, answered by one line,
//! `ok` or `error: why`. What a local tool may not say: the `node` and `agent` categories,
//! which are mcod's own; a line over [`MAX_LINE_BYTES`]; data that is not an object. At most
//! [`MAX_CONNECTIONS`] connections are served at once, each for at most [`IDLE_LIMIT`]
//! between lines, so a stuck writer holds nothing for long.
//!
//! Not for: publishing (the [`crate::events`] sink does) or events from the network.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mco_spec::event::{is_valid_type, Severity};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The longest line (one event) read, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// Longest wait for the next line of a connection.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Categories only mcod itself says.
const RESERVED_CATEGORIES: &[&str] = &["node", "agent"];

/// One line of the socket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalEvent {
    /// `<category>.<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How much it matters (default info).
    #[serde(default = "info")]
    pub severity: Severity,
    /// What happened (an object; default empty).
    #[serde(default = "empty")]
    pub data: Value,
}

fn info() -> Severity {
    Severity::Info
}

fn empty() -> Value {
    Value::Object(Default::default())
}

/// The socket's path for these settings (a relative `[events] socket` is in the state
/// directory).
pub fn socket_path(settings: &crate::Settings) -> PathBuf {
    match &settings.events.socket {
        Some(path) => settings.state_dir.join(path),
        None => settings.state_dir.join("events.sock"),
    }
}

/// Reads one line as an event a local tool may say, or why not.
pub fn parse_line(line: &str) -> Result<LocalEvent, String> {
    let event: LocalEvent = serde_json::from_str(line).map_err(|e| format!("not an event: {e}"))?;
    if !is_valid_type(&event.kind) {
        return Err(format!(
            "{:?} is not <category>.<name> (lowercase letters, digits and _)",
            event.kind
        ));
    }
    let category = event.kind.split('.').next().unwrap_or_default();
    if RESERVED_CATEGORIES.contains(&category) {
        return Err(format!("{category}.* events are mcod's own"));
    }
    if !event.data.is_object() {
        return Err("data must be a JSON object".into());
    }
    Ok(event)
}

/// Listens on the socket until the task is aborted; `None` when events are off or the socket
/// cannot be made (said in the log).
pub fn spawn(node: Arc<crate::node::Node>) -> Option<tokio::task::JoinHandle<()>> {
    if !node.settings.events.enabled || !node.settings.events.local {
        return None;
    }
    let path = socket_path(&node.settings);
    let listener = match bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                "no local event socket at {}: {e}; `mcod event emit` will not reach this node",
                path.display()
            );
            return None;
        }
    };
    tracing::info!("local events accepted on {}", path.display());
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    Some(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Busy: the connection closes unanswered rather than waiting in memory.
                drop(stream);
                continue;
            };
            let node = node.clone();
            tokio::spawn(async move {
                serve(&node, stream).await;
                drop(slot);
            });
        }
    }))
}

/// Makes the socket, owner-only, replacing a stale one (never anything but a socket).
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ))
        }
        Err(_) => {}
    }
    // Made owner-only before anyone can connect: bound in a private directory of its own,
    // made 0600, then moved into place (a listener keeps its socket through a rename), so
    // neither a moment of a looser mode nor a change to the process's umask is needed.
    let dir = path.parent().unwrap_or(Path::new("."));
    let staging = dir.join(format!(".events.sock.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&staging)?;
    let staged = staging.join("s");
    let bound = UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

async fn serve(node: &crate::node::Node, stream: UnixStream) {
    use tokio::io::AsyncReadExt;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // One byte more than a line may have, to tell a long line from a full one.
        let mut limited = (&mut reader).take(MAX_LINE_BYTES as u64 + 1);
        let read = tokio::time::timeout(IDLE_LIMIT, limited.read_until(b'\n', &mut line)).await;
        let answer = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) if line.len() > MAX_LINE_BYTES => {
                let _ = write
                    .write_all(
                        format!("error: a line may have at most {MAX_LINE_BYTES} bytes\n")
                            .as_bytes(),
                    )
                    .await;
                return;
            }
            Ok(Ok(_)) => match std::str::from_utf8(&line)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(|l| parse_line(l.trim_end()))
            {
                Ok(event) => {
                    node.events
                        .emit(&event.kind, event.severity, event.data, None);
                    "ok\n".to_string()
                }
                Err(why) => format!("error: {why}\n"),
            },
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// `mcod event emit`: says one event through the socket at `path` and returns mcod's answer.
pub async fn emit(path: &Path, event: &Value) -> Result<(), String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(5), UnixStream::connect(path))
        .await
        .map_err(|_| format!("{}: mcod did not answer", path.display()))?
        .map_err(|e| {
            format!(
                "{}: {e} (is mcod running, with [events] enabled?)",
                path.display()
            )
        })?;
    let mut line = event.to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(stream).read_line(&mut answer),
    )
    .await
    .map_err(|_| format!("{}: mcod did not answer", path.display()))?
    .map_err(|e| format!("{}: {e}", path.display()))?;
    match answer.trim_end() {
        "ok" => Ok(()),
        "" => Err(format!(
            "{}: mcod closed the connection (busy?)",
            path.display()
        )),
        other => Err(other.strip_prefix("error: ").unwrap_or(other).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tools_say_their_own_categories_only() {
        let ok =
            parse_line(r#"{"type":"check.disk_full","severity":"warning","data":{"mount":"/"}}"#)
                .unwrap();
        assert_eq!(
            (ok.kind.as_str(), ok.severity),
            ("check.disk_full", Severity::Warning)
        );
        assert_eq!(
            parse_line(r#"{"type":"deploy.done"}"#).unwrap().severity,
            Severity::Info
        );
        for (line, says) in [
            (r#"{"type":"node.stopping"}"#, "mcod's own"),
            (r#"{"type":"agent.action"}"#, "mcod's own"),
            (r#"{"type":"Bad"}"#, "not <category>.<name>"),
            (r#"{"type":"a.b","data":[1]}"#, "object"),
            (r#"{"type":"a.b","extra":1}"#, "not an event"),
            ("nonsense", "not an event"),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }
}
