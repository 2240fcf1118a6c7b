//! The `external` discovery method: any executable speaking Choria's external discovery
//! protocol, so discovery scripts written for Choria work unmodified.
//!
//! The program is run (never through a shell) as `<command...> <request file> <reply file>
//! io.choria.choria.discovery.v1.external_request`, with only `PATH` and the
//! `CHORIA_EXTERNAL_REQUEST`, `CHORIA_EXTERNAL_REPLY` and `CHORIA_EXTERNAL_PROTOCOL` variables
//! in its environment. The request file holds
//!
//! ```json
//! {"$schema": "https://choria.io/schemas/choria/discovery/v1/external_request.json",
//!  "protocol": "io.choria.choria.discovery.v1.external_request",
//!  "collective": "mco", "timeout": 2, "federations": [], "options": {"key": "value"},
//!  "filter": {"fact": [{"fact": "country", "operator": "==", "value": "uk"}],
//!             "cf_class": ["webserver"], "agent": ["rpcutil"], "identity": [], "compound": []}}
//! ```
//!
//! (`options` are the `--do key=value` pairs; `compound` holds the `-S` expressions as
//! written.) The program writes `{"protocol": "io.choria.choria.discovery.v1.external_reply",
//! "nodes": [...]}` or `{"error": "..."}` to the reply file. It runs through [`mco_runner`]
//! (its own process group, killed at the timeout, when discovery is abandoned and when it
//! exits; the files in a private directory). A non-zero exit, a missing, malformed or
//! oversized reply, or running past the timeout is an error that names the command.
//!
//! Not for: deciding what the nodes are (the program does), or running agents.

use std::collections::BTreeMap;
use std::time::Duration;

use mco_runner::external::Exchange;
use mco_runner::RunError;
use mco_spec::Filter;
use serde_json::{json, Value};

use crate::DiscoveryError;

/// The protocol name in the request and in the third argument.
pub const REQUEST_PROTOCOL: &str = "io.choria.choria.discovery.v1.external_request";
/// The protocol name of a reply.
pub const REPLY_PROTOCOL: &str = "io.choria.choria.discovery.v1.external_reply";
/// The largest reply read: hundreds of thousands of identities.
const MAX_REPLY_BYTES: u64 = 16 * 1024 * 1024;
/// How much of the program's stderr is kept for the error message.
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// What the program is asked.
#[derive(Debug, Clone)]
pub struct ExternalRequest<'a> {
    /// The collective.
    pub collective: &'a str,
    /// The filter (the agent of the call included).
    pub filter: &'a Filter,
    /// `--do key=value` options.
    pub options: &'a BTreeMap<String, String>,
    /// How long the program may take.
    pub timeout: Duration,
}

/// The request document for `request`.
pub fn request_json(request: &ExternalRequest<'_>) -> Value {
    let filter = request.filter;
    json!({
        "$schema": "https://choria.io/schemas/choria/discovery/v1/external_request.json",
        "protocol": REQUEST_PROTOCOL,
        "collective": request.collective,
        "filter": {
            "fact": filter.fact,
            "cf_class": filter.class,
            "agent": filter.agent,
            "identity": filter.identity,
            "compound": filter.compound,
        },
        "federations": [],
        "options": request.options,
        "timeout": request.timeout.as_secs().max(1),
    })
}

/// Runs `command` (program and arguments) and returns the nodes it names, sorted.
pub async fn discover(
    command: &[String],
    request: &ExternalRequest<'_>,
) -> Result<Vec<String>, DiscoveryError> {
    let Some(program) = command.first() else {
        return Err(DiscoveryError::InvalidOption(
            "the external discovery method needs a command (--do command=PATH, or external_discovery_command in the client configuration)".into(),
        ));
    };
    let failed = |reason: String| DiscoveryError::External {
        command: command.join(" "),
        reason,
    };
    let exchange = Exchange::new(
        REQUEST_PROTOCOL,
        request_json(request).to_string().as_bytes(),
    )
    .map_err(|e| failed(e.to_string()))?;
    let run = exchange
        .apply(mco_runner::Command::new(program).args(&command[1..]))
        // stdout is not part of the protocol: read and dropped.
        .stdout_limit(0)
        .stderr_limit(MAX_STDERR_BYTES)
        .deadline(request.timeout)
        .run()
        .await;
    let output = run.map_err(|e| match e {
        RunError::Spawn { source, .. } => failed(format!("cannot run it: {source}")),
        RunError::Timeout { limit, .. } => {
            failed(format!("did not finish within {limit:?} and was killed"))
        }
        other => failed(other.to_string()),
    })?;
    if !output.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        return Err(failed(format!("exited with {}: {tail}", output.status)));
    }
    let reply = exchange
        .read_reply(MAX_REPLY_BYTES)
        .map_err(|e| failed(e.to_string()))?;
    parse_reply(&String::from_utf8_lossy(&reply)).map_err(failed)
}

/// The nodes in a reply document, or the error it reports.
pub fn parse_reply(text: &str) -> Result<Vec<String>, String> {
    let reply: Value =
        serde_json::from_str(text).map_err(|e| format!("the reply is not JSON: {e}"))?;
    if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
        let message = error
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        if !message.is_empty() {
            return Err(format!("it reported: {message}"));
        }
    }
    let Some(nodes) = reply.get("nodes").and_then(Value::as_array) else {
        return Err("the reply has neither nodes nor error".into());
    };
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node.as_str() {
            Some(n) if mco_spec::subjects::is_valid_identity(n) => out.push(n.to_string()),
            _ => return Err(format!("{node} is not a valid node identity")),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_choria_shape() {
        let mut filter = Filter::default();
        filter.add_fact("country=uk").unwrap();
        filter.add_class("webserver").unwrap();
        filter.add_agent("rpcutil").unwrap();
        let options = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        let doc = request_json(&ExternalRequest {
            collective: "mco",
            filter: &filter,
            options: &options,
            timeout: Duration::from_millis(500),
        });
        assert_eq!(doc["protocol"], REQUEST_PROTOCOL);
        assert_eq!(doc["collective"], "mco");
        assert_eq!(doc["timeout"], 1);
        assert_eq!(doc["options"]["region"], "eu");
        assert_eq!(doc["filter"]["cf_class"], json!(["webserver"]));
        assert_eq!(doc["filter"]["agent"], json!(["rpcutil"]));
        assert_eq!(
            doc["filter"]["fact"],
            json!([{"fact": "country", "operator": "==", "value": "uk"}])
        );
    }

    #[test]
    fn replies_are_checked() {
        assert_eq!(
            parse_reply(r#"{"protocol":"x","nodes":["b","a","a"]}"#).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            parse_reply(r#"{"nodes":[],"error":""}"#).unwrap(),
            Vec::<String>::new()
        );
        let table = [
            (r#"{"error":"no inventory"}"#, "it reported: no inventory"),
            ("{}", "neither nodes nor error"),
            ("nope", "not JSON"),
            (r#"{"nodes":["a b"]}"#, "not a valid node identity"),
            (r#"{"nodes":[1]}"#, "not a valid node identity"),
        ];
        for (text, want) in table {
            let message = parse_reply(text).unwrap_err();
            assert!(message.contains(want), "{want:?} not in {message:?}");
        }
    }

    fn make_executable(path: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn a_real_program_is_run_with_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("disco");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$3\" = \"$CHORIA_EXTERNAL_PROTOCOL\" ] || exit 3\ngrep -q '\"collective\":\"eu\"' \"$CHORIA_EXTERNAL_REQUEST\" || exit 4\necho '{\"nodes\":[\"web2\",\"web1\"]}' > \"$2\"\n",
        )
        .unwrap();
        make_executable(&script);
        let filter = Filter::default();
        let options = BTreeMap::new();
        let request = ExternalRequest {
            collective: "eu",
            filter: &filter,
            options: &options,
            timeout: Duration::from_secs(5),
        };
        let command = vec![script.display().to_string()];
        assert_eq!(
            discover(&command, &request).await.unwrap(),
            ["web1", "web2"]
        );

        // A new file each time: rewriting a script that was just run can meet ETXTBSY.
        let broken = dir.path().join("broken");
        std::fs::write(&broken, "#!/bin/sh\necho broken >&2\nexit 2\n").unwrap();
        make_executable(&broken);
        let command = vec![broken.display().to_string()];
        let message = discover(&command, &request).await.unwrap_err().to_string();
        assert!(
            message.contains("exited with exit status: 2: broken"),
            "{message}"
        );

        let slow = dir.path().join("slow");
        std::fs::write(&slow, "#!/bin/sh\nsleep 30\n").unwrap();
        make_executable(&slow);
        let command = vec![slow.display().to_string()];
        let quick = ExternalRequest {
            timeout: Duration::from_millis(300),
            ..request.clone()
        };
        let started = std::time::Instant::now();
        let message = discover(&command, &quick).await.unwrap_err().to_string();
        assert!(message.contains("was killed"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let missing = vec!["/nonexistent/disco".to_string()];
        assert!(discover(&missing, &request)
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot run it"));
    }
}
