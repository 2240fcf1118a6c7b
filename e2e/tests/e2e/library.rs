//! The client library used the way a web application uses it: one shared `Client` built from
//! the command line's own `client.toml`, many concurrent calls from different tasks, replies
//! as a stream, DDL checks before sending, the DDL's aggregates, and error kinds a handler
//! can branch on. The example web application runs against a signed fleet.

use std::time::Duration;

use futures::StreamExt;
use mco_client::{
    Call, CallErrorKind, Client, ClientBuilder, ConnectErrorKind, Filter, Mode, StatusCode,
};
use serde_json::Value;

use crate::five_nodes;

#[test]
fn a_shared_client_serves_concurrent_calls() {
    let fleet = five_nodes();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let builder = Client::builder()
            .collectives(["mco", "uk", "eu"])
            .discovery_timeout(Duration::from_secs(2))
            // 3 uk nodes are more than 2: broadcast; the 2 others get direct requests.
            .direct_threshold(2);
        let client = crate::signed_client(&fleet, builder).await;

        // Ten "HTTP handlers" at once, each with its own filter, on one connection.
        let mut handlers = Vec::new();
        for i in 0..10 {
            let client = client.clone();
            handlers.push(tokio::spawn(async move {
                let mut filter = Filter::default();
                filter
                    .add_fact(if i % 2 == 0 {
                        "country=uk"
                    } else {
                        "country!=uk"
                    })
                    .unwrap();
                let result = client
                    .call(
                        Call::new("rpcutil", "get_fact")
                            .arg("fact", "country")
                            .filter(filter),
                    )
                    .await
                    .unwrap()
                    .collect()
                    .await;
                (i, result)
            }));
        }
        for handler in handlers {
            let (i, result) = handler.await.unwrap();
            let want = if i % 2 == 0 { 3 } else { 2 };
            assert_eq!(result.stats.discovered, want);
            assert_eq!(result.stats.responded, want);
            assert_eq!(result.stats.ok, want);
            assert!(result.stats.no_response_from.is_empty());
            let mode = if i % 2 == 0 {
                Mode::Broadcast
            } else {
                Mode::Direct
            };
            assert_eq!(
                result.stats.mode,
                Some(mode),
                "{:?}",
                result.stats.mode_reason
            );
            for reply in &result.replies {
                assert_eq!(reply.statuscode, StatusCode::Ok);
                assert_eq!(reply.data["value"] == "uk", i % 2 == 0);
            }
        }

        // A known node list: direct requests, and an explicit row for the node that is absent.
        let result = client
            .call(
                Call::new("rpcutil", "ping")
                    .nodes(["web1", "db2", "ghost"])
                    .timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(result.stats.mode, Some(Mode::Direct));
        assert_eq!(result.stats.discovered, 3);
        assert_eq!(result.stats.responded, 2);
        assert_eq!(result.stats.no_response_from, ["ghost"]);

        // Replies as a stream, as a handler streaming results to a browser would read them.
        let mut replies = client
            .call(Call::new("rpcutil", "ping").collective("eu"))
            .await
            .unwrap();
        let mut senders = Vec::new();
        while let Some(reply) = replies.next().await {
            senders.push(reply.sender);
        }
        senders.sort();
        assert_eq!(senders, ["db1", "web3"]);

        let nodes = client
            .discover(&Filter::default(), Some("uk"), None)
            .await
            .unwrap();
        assert_eq!(nodes, ["db2", "web1", "web2"]);
        assert!(client
            .discover(&Filter::default(), Some("nowhere"), None)
            .await
            .is_err());
    });
}

#[test]
fn connecting_to_a_dead_broker_fails_fast_with_its_own_error_kind() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("nats://127.0.0.1:{}", mco_testsupport::free_port());
        let err = Client::builder()
            .broker(url)
            .insecure(true)
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ConnectErrorKind::Unavailable, "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot connect to the broker at"),
            "{err}"
        );
    });
}

/// The library does what `mco rpc` does, from the same configuration file: inputs refused
/// before anything is sent, the DDL's aggregates as `--json-full` prints them, errors of the
/// kinds a web handler maps to status codes, and the replies as a `Stream`.
#[test]
fn the_library_checks_inputs_sums_up_and_types_its_errors() {
    let fleet = five_nodes();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = ClientBuilder::from_config(fleet.client_config())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let total = |fleet: &mco_testsupport::Fleet| -> u64 {
            fleet.nodes.iter().map(|n| n.audit().len() as u64).sum()
        };
        let before = total(&fleet);
        // An input the DDL refuses: no node hears of it.
        let err = client
            .call(Call::new("rpcutil", "get_fact").arg("fact", 5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CallErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("invalid input fact"), "{err}");
        let err = client
            .call(Call::new("service", "restart").text_arg("service", "x;reboot"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CallErrorKind::InvalidInput, "{err}");
        let err = client
            .call(Call::new("rpcutil", "explode"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CallErrorKind::InvalidInput, "{err}");
        let mut bad = Filter::default();
        bad.compound.push("(country=uk".into());
        let err = client
            .call(Call::new("rpcutil", "ping").filter(bad))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CallErrorKind::InvalidInput, "{err}");
        let err = client
            .call(Call::new("rpcutil", "ping").collective("nowhere"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CallErrorKind::UnknownCollective, "{err}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(total(&fleet), before, "a node saw a refused call");

        // The DDL's aggregates, equal to what mco rpc --json-full prints.
        let result = client
            .call(Call::new("rpcutil", "get_fact").text_arg("fact", "country"))
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(result.stats.ok, 5);
        let aggregates = serde_json::to_value(result.aggregates()).unwrap();
        let cli = fleet.mco(&["rpc", "rpcutil", "get_fact", "fact=country", "--json-full"]);
        assert_eq!(cli.code, Some(0), "{cli:?}");
        let cli: Value = serde_json::from_str(&cli.stdout).unwrap();
        assert_eq!(aggregates, cli["aggregates"]);
        assert!(!aggregates.as_array().unwrap().is_empty(), "{aggregates}");

        // Replies as a stream, with StreamExt's combinators.
        let uk: Vec<String> = client
            .call(Call::new("rpcutil", "get_fact").arg("fact", "country"))
            .await
            .unwrap()
            .filter(|r| futures::future::ready(r.data["value"] == "uk"))
            .map(|r| r.sender)
            .collect()
            .await;
        let mut uk = uk;
        uk.sort();
        assert_eq!(uk, ["db2", "web1", "web2"]);
    });

    // A server token where a client token belongs.
    let (key, token) = fleet.keys.issue("server", "not-a-client", &[]);
    runtime.block_on(async {
        let err = ClientBuilder::from_config(fleet.client_config())
            .unwrap()
            .key_file(key)
            .token_file(token)
            .connect()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ConnectErrorKind::Credentials, "{err}");
        assert!(
            err.to_string().contains("requests need a client token"),
            "{err}"
        );
    });
}

/// The example web application (`client/examples/web_status.rs`, which builds without the
/// crate's default features) runs against a signed fleet from the CLI's `client.toml`.
#[test]
fn the_example_web_application_runs_against_a_signed_fleet() {
    let fleet = five_nodes();
    let example = mco_testsupport::bin_path("examples/web_status");
    let out = std::process::Command::new(example)
        .arg(fleet.client_config())
        .args(["country=uk", "role::db", "country=/[/"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = |filter: &str| -> Vec<String> {
        let mut n: Vec<String> = answers[filter]["body"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(answers["country=uk"]["status"], 200, "{answers}");
    assert_eq!(nodes("country=uk"), ["db2", "web1", "web2"]);
    assert_eq!(nodes("role::db"), ["db1", "db2"]);
    assert!(!answers["country=uk"]["body"]["summaries"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(answers["country=/[/"]["status"], 400, "{answers}");
}

/// A batch of replies large enough to be checked on several cores is checked as one: every
/// reply keeps its place, and a forgery or a malformed message among a hundred genuine replies
/// is caught where it is.
#[test]
fn a_large_batch_of_replies_is_checked_on_several_cores_in_place() {
    use mco_spec::security::{Credentials, Token, TokenClaims, TokenRole};
    use mco_spec::{Reply, ReplyEnvelope};
    let fleet = five_nodes();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = crate::signed_client(&fleet, Client::builder()).await;
        let issuer = mco_keys::read_private_key(&fleet.keys.issuer_key()).unwrap();
        let now = mco_spec::message::now_millis();
        let server = |name: &str, seed: u8| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            let claims = TokenClaims {
                role: TokenRole::Server,
                name: name.to_string(),
                public_key: mco_spec::security::encode_public_key(&key.verifying_key()),
                issuer: String::new(),
                not_before: now / 1000 - 60,
                expires: now / 1000 + 3600,
                agents: Vec::new(),
                collectives: Vec::new(),
            };
            Credentials {
                token: Token::issue(&claims, &issuer),
                key,
            }
        };
        let reply = |sender: &str| Reply {
            request_id: "batch".into(),
            sender: sender.into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: now,
            statuscode: StatusCode::Ok,
            statusmsg: "OK".into(),
            data: serde_json::json!({"pong": now / 1000}),
        };
        const FORGED: usize = 37;
        const MALFORMED: usize = 81;
        let mut payloads = Vec::new();
        for i in 0..100 {
            let name = format!("node{i:03}");
            let payload = match i {
                // Signed by a genuine node, claiming to be another.
                FORGED => ReplyEnvelope::signed(&reply(&name), &server("node000", 1)),
                MALFORMED => Ok(ReplyEnvelope::unsigned(&reply(&name)).unwrap()),
                _ => ReplyEnvelope::signed(&reply(&name), &server(&name, i as u8 + 1)),
            };
            let mut bytes = payload.unwrap().to_bytes().unwrap();
            if i == MALFORMED {
                bytes.truncate(bytes.len() / 2);
            }
            payloads.push(bytes);
        }
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let accepted = client.accept_replies(&refs);
        assert_eq!(accepted.len(), 100);
        for (i, result) in accepted.iter().enumerate() {
            match (i, result) {
                (FORGED, Err(mco_client::ReplyRejected::Forged(_))) => {}
                (MALFORMED, Err(mco_client::ReplyRejected::Malformed(_))) => {}
                (FORGED | MALFORMED, other) => panic!("reply {i} was not refused: {other:?}"),
                (_, Ok(reply)) => assert_eq!(reply.sender, format!("node{i:03}")),
                (_, Err(e)) => panic!("reply {i} was refused: {e}"),
            }
        }
    });
}
