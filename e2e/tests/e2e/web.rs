//! The web gateway (`mco-web`) against a real signed fleet, over real HTTP: calls collected
//! and streamed (SSE and NDJSON), each signed as the HTTP caller (the node's audit line
//! names the person), inputs refused before anything is sent, no token no call, cross-origin
//! pages refused, discovery options that would run a program refused, a client that goes
//! away ends its call, a hundred streaming clients at once, and the start-up refusal to
//! expose the fleet without TLS and callers.

use std::time::{Duration, Instant};

use futures::StreamExt;
use mco_testsupport::web::WebGateway;
use mco_testsupport::{bin_path, free_port, TestCa};
use serde_json::{json, Value};

use crate::five_nodes;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `POST path` with `body` as `caller`; the status and the JSON body.
async fn post(gateway: &WebGateway, caller: &str, path: &str, body: Value) -> (u16, Value) {
    let response = http()
        .post(format!("{}{path}", gateway.url()))
        .bearer_auth(gateway.token(caller))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(gateway: &WebGateway, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut request = http().get(format!("{}{path}", gateway.url()));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Reads an NDJSON call to its end: every event as `(name, data)`.
async fn ndjson(
    gateway: &WebGateway,
    caller: &str,
    path: &str,
    body: Value,
) -> Vec<(String, Value)> {
    let response = http()
        .post(format!("{}{path}", gateway.url()))
        .bearer_auth(gateway.token(caller))
        .header("accept", "application/x-ndjson")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["event"].as_str().unwrap().to_string(), v["data"].clone())
        })
        .filter(|(name, _)| name != "keepalive")
        .collect()
}

fn senders(replies: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = replies
        .iter()
        .map(|r| r["sender"].as_str().unwrap().to_string())
        .collect();
    s.sort();
    s
}

fn audit_callers(fleet: &mco_testsupport::Fleet, node: &str) -> Vec<String> {
    fleet
        .nodes
        .iter()
        .find(|n| n.identity() == node)
        .unwrap()
        .audit()
        .iter()
        .filter(|l| l["decision"] == "accepted")
        .filter_map(|l| l["caller"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_gateway_calls_as_its_callers_collected_and_streamed() {
    let fleet = five_nodes();
    let gateway = WebGateway::start(&fleet, &["alice", "bob"]);
    let uk = json!({"fact": ["country=uk"]});
    runtime().block_on(async {
        // Who is calling.
        assert_eq!(
            get(&gateway, Some(gateway.token("alice")), "/api/v1/whoami").await,
            (200, json!({"caller": "alice"}))
        );
        let (status, body) = get(&gateway, None, "/api/v1/whoami").await;
        assert_eq!(
            (status, body["error"]["kind"].clone()),
            (401, json!("unauthorized"))
        );
        let (status, _) = get(&gateway, Some("mcow_not-a-token"), "/api/v1/agents").await;
        assert_eq!(status, 401);

        // The DDLs, for forms.
        let (status, agents) = get(&gateway, Some(gateway.token("bob")), "/api/v1/agents").await;
        assert_eq!(status, 200);
        assert!(agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "rpcutil"));
        let (_, ddl) = get(
            &gateway,
            Some(gateway.token("bob")),
            "/api/v1/agents/rpcutil",
        )
        .await;
        let get_fact = ddl["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == "get_fact")
            .unwrap();
        assert_eq!(get_fact["input"]["fact"]["type"], "string");

        // Discovery.
        let (status, found) =
            post(&gateway, "alice", "/api/v1/discover", json!({"filter": uk})).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["nodes"], json!(["db2", "web1", "web2"]));

        // A collected call: the --json-full shape, aggregates as the CLI computes them.
        let path = "/api/v1/agents/rpcutil/actions/get_fact";
        let (status, result) = post(
            &gateway,
            "alice",
            path,
            json!({"inputs": {"fact": "country"}, "filter": uk}),
        )
        .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(
            senders(result["replies"].as_array().unwrap()),
            ["db2", "web1", "web2"]
        );
        assert_eq!(result["stats"]["responded"], 3);
        let cli = fleet.mco(&[
            "rpc",
            "rpcutil",
            "get_fact",
            "fact=country",
            "-F",
            "country=uk",
            "--json-full",
        ]);
        let cli: Value = serde_json::from_str(&cli.stdout).unwrap();
        assert_eq!(result["aggregates"], cli["aggregates"]);
        // Signed as alice, not as the gateway or the fleet's own client.
        assert!(audit_callers(&fleet, "web1").contains(&"alice".to_string()));

        // Streamed as NDJSON: started, a reply per node, stats last.
        let events = ndjson(
            &gateway,
            "bob",
            path,
            json!({"inputs": {"fact": "country"}, "filter": uk}),
        )
        .await;
        assert_eq!(events.first().unwrap().0, "started", "{events:?}");
        assert_eq!(events.first().unwrap().1["discovered"], 3);
        let replies: Vec<Value> = events
            .iter()
            .filter(|(n, _)| n == "reply")
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(senders(&replies), ["db2", "web1", "web2"]);
        let (last, stats) = events.last().unwrap();
        assert_eq!(last, "stats");
        assert_eq!(stats["stats"]["responded"], 3);
        assert_eq!(stats["aggregates"], cli["aggregates"]);
        assert!(audit_callers(&fleet, "web2").contains(&"bob".to_string()));

        // Streamed as Server-Sent Events.
        let text = http()
            .post(format!("{}{path}", gateway.url()))
            .bearer_auth(gateway.token("alice"))
            .header("accept", "text/event-stream")
            .json(&json!({"inputs": {"fact": "country"}, "filter": {"fact": ["country!=uk"]}}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(names, ["started", "reply", "reply", "stats"], "{text}");

        // Nothing matched: a 200 with no replies and a reason.
        let (status, none) = post(
            &gateway,
            "alice",
            path,
            json!({"inputs": {"fact": "country"}, "filter": {"fact": ["country=atlantis"]}}),
        )
        .await;
        assert_eq!(status, 200, "{none}");
        assert_eq!(none["replies"], json!([]));
        assert!(
            none["reason"]
                .as_str()
                .unwrap()
                .contains("nothing was sent"),
            "{none}"
        );
    });
}

#[test]
fn bad_requests_are_refused_before_anything_is_sent() {
    let fleet = five_nodes();
    let gateway = WebGateway::start(&fleet, &["alice"]);
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran");
    let total = |fleet: &mco_testsupport::Fleet| -> usize {
        fleet.nodes.iter().map(|n| n.audit().len()).sum()
    };
    let before = total(&fleet);
    runtime().block_on(async {
        let cases = [
            ("/api/v1/agents/rpcutil/actions/get_fact", json!({"inputs": {"fact": 5}}), "inputs.fact"),
            ("/api/v1/agents/service/actions/restart", json!({"inputs": {"service": "x;reboot"}}), "inputs.service"),
            ("/api/v1/agents/rpcutil/actions/ping", json!({"filter": {"fact": ["=uk"]}}), "filter.fact[0]"),
            ("/api/v1/agents/rpcutil/actions/ping", json!({"timeout": 100000}), "timeout"),
            ("/api/v1/agents/rpcutil/actions/ping", json!({"collective": "nowhere"}), "collective"),
            ("/api/v1/agents/rpcutil/actions/ping", json!({"bogus": 1}), "body"),
            // The gateway never runs a program, opens a database or reads a file a caller names.
            ("/api/v1/agents/rpcutil/actions/ping",
             json!({"discovery": {"method": "external", "options": {"command": format!("touch {}", marker.display())}}}),
             "discovery.options.command"),
            ("/api/v1/discover",
             json!({"discovery": {"method": "registry", "options": {"url": "/etc/shadow"}}}),
             "discovery.options.url"),
        ];
        for (path, body, field) in cases {
            let (status, answer) = post(&gateway, "alice", path, body.clone()).await;
            assert_eq!(status, 400, "{body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        }
        let (status, answer) = post(&gateway, "alice", "/api/v1/agents/rpcutil/actions/explode", json!({})).await;
        assert_eq!(status, 400, "{answer}");
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(total(&fleet), before, "a node heard of a refused request");
    assert!(!marker.exists(), "the gateway ran a caller's program");

    // A page elsewhere cannot call, even with a token; a configured origin can.
    runtime().block_on(async {
        let evil = http()
            .get(format!("{}/api/v1/whoami", gateway.url()))
            .bearer_auth(gateway.token("alice"))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(evil.status(), 403);
        let own = http()
            .get(format!("{}/api/v1/whoami", gateway.url()))
            .bearer_auth(gateway.token("alice"))
            .header("origin", gateway.url())
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), 200);
    });
}

#[test]
fn a_client_that_goes_away_ends_its_call_and_a_hundred_stream_at_once() {
    let fleet = five_nodes();
    let gateway = WebGateway::start_with(&fleet, &["alice"], "max_calls_per_caller = 200\n");
    let token = gateway.token("alice").to_string();
    runtime().block_on(async {
        let calls_in_flight = || async {
            get(&gateway, Some(&token), "/api/v1/status").await.1["calls_in_flight"]
                .as_u64()
                .unwrap()
        };
        // A call that would wait a minute for a node that does not exist.
        let response = http()
            .post(format!(
                "{}/api/v1/agents/rpcutil/actions/ping",
                gateway.url()
            ))
            .bearer_auth(&token)
            .header("accept", "application/x-ndjson")
            .json(&json!({"nodes": ["ghost"], "timeout": 60}))
            .send()
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("\"started\""));
        assert_eq!(calls_in_flight().await, 1);
        drop(body);
        let deadline = Instant::now() + Duration::from_secs(15);
        while calls_in_flight().await != 0 {
            assert!(Instant::now() < deadline, "the call outlived its client");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A hundred streaming clients at once, each with every reply and the stats.
        let mut clients = Vec::new();
        for i in 0..100 {
            let url = format!("{}/api/v1/agents/rpcutil/actions/ping", gateway.url());
            let token = token.clone();
            clients.push(tokio::spawn(async move {
                let text = http()
                    .post(url)
                    .bearer_auth(token)
                    .header(
                        "accept",
                        if i % 2 == 0 {
                            "application/x-ndjson"
                        } else {
                            "text/event-stream"
                        },
                    )
                    .json(&json!({"timeout": 20}))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let replies =
                    text.matches("\"reply\"").count() + text.matches("event: reply").count();
                (replies, text.contains("stats"))
            }));
        }
        for client in clients {
            assert_eq!(client.await.unwrap(), (5, true));
        }
    });
}

#[test]
fn the_gateway_will_not_expose_the_fleet_without_tls_and_callers() {
    let fleet = five_nodes();
    let gateway = WebGateway::start(&fleet, &["alice"]);
    let port = free_port();
    let run = |args: &[&str]| {
        std::process::Command::new(bin_path("mco-web"))
            .arg("--config")
            .arg(gateway.config())
            .args(args)
            .output()
            .unwrap()
    };
    let open = run(&["--listen", &format!("0.0.0.0:{port}"), "check"]);
    assert!(!open.status.success());
    let err = String::from_utf8_lossy(&open.stderr);
    assert!(
        err.starts_with("mco-web: refusing to listen on 0.0.0.0") && err.contains("without TLS"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // With TLS and a caller it serves HTTPS; curl checks the certificate against the CA.
    let ca = TestCa::new("web");
    let (cert, key) = ca.issue("localhost", "DNS:localhost,IP:127.0.0.1");
    let mut config = std::fs::read_to_string(gateway.config()).unwrap();
    config.push_str(&format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    ));
    let tls_config = gateway.config().with_file_name("tls.toml");
    std::fs::write(&tls_config, config).unwrap();
    let mut child = std::process::Command::new(bin_path("mco-web"))
        .arg("--config")
        .arg(&tls_config)
        .args(["--listen", &format!("0.0.0.0:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/api/v1/whoami");
    let mut answer = String::new();
    for _ in 0..100 {
        let out = std::process::Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(ca.cert())
            .args([
                "-H",
                &format!("Authorization: Bearer {}", gateway.token("alice")),
                &url,
            ])
            .output()
            .unwrap();
        answer = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        serde_json::from_str::<Value>(&answer).ok(),
        Some(json!({"caller": "alice"})),
        "{answer}"
    );
}

/// The served OpenAPI document, fuzzed by schemathesis (from PyPI) against the running
/// gateway: generated requests for every route, with a caller's token; any server error
/// (5xx other than the documented 503s of a fleet that cannot be reached) or a response that
/// does not match the document fails the test.
#[test]
fn the_openapi_document_holds_under_property_based_requests() {
    // `pip install --user` puts it in ~/.local/bin, which need not be on PATH.
    let user_st = std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/bin/st"));
    let st = match user_st.filter(|p| p.is_file()) {
        Some(p) => p,
        None => mco_testsupport::require_program("st", "pip install schemathesis"),
    };
    let fleet = five_nodes();
    // Short waits, so generated calls to made-up nodes end quickly.
    let gateway = WebGateway::start_with(
        &fleet,
        &["alice"],
        "max_timeout_seconds = 2\nmax_calls_per_caller = 64\n",
    );
    // schemathesis keeps a cache in its working directory: not in the checkout.
    let scratch = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(st)
        .current_dir(scratch.path())
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", gateway.url()))
        .args(["--header", &format!("Authorization: Bearer {}", gateway.token("alice"))])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "40", "--seed", "1", "--no-color", "--workers", "2"])
        .args(["--request-timeout", "10"])
        // The event stream lasts as long as its reader: it has a test of its own below.
        .args(["--exclude-path", "/api/v1/events"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        gateway.log()
    );
}

/// A broker that cannot be reached is a 503 with its kind, not a hang or a 500; the API
/// that needs no broker (the DDLs) keeps answering.
#[test]
fn a_dead_broker_is_a_503() {
    let mut fleet = five_nodes();
    let gateway = WebGateway::start_with(&fleet, &["alice"], "");
    fleet.nats.stop();
    runtime().block_on(async {
        let (status, body) = post(
            &gateway,
            "alice",
            "/api/v1/agents/rpcutil/actions/ping",
            json!({}),
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["kind"], "broker_unavailable", "{body}");
        let (status, _) = get(
            &gateway,
            Some(gateway.token("alice")),
            "/api/v1/agents/rpcutil",
        )
        .await;
        assert_eq!(status, 200);
    });
}

/// The fleet's events over SSE, verified by the caller's own client: the five nodes'
/// `node.started` from the history; a bad type pattern is a 400 naming its field.
#[test]
fn the_gateway_streams_the_fleets_events() {
    let fleet = five_nodes();
    let gateway = WebGateway::start_with(&fleet, &["alice"], "");
    runtime().block_on(async {
        let (status, body) = get(
            &gateway,
            Some(gateway.token("alice")),
            "/api/v1/events?types=Bad",
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["field"], "types", "{body}");

        let response = http()
            .get(format!(
                "{}/api/v1/events?types=node.started&since_ms=0",
                gateway.url()
            ))
            .bearer_auth(gateway.token("alice"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        let mut text = String::new();
        let mut nodes = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while nodes.len() < 5 {
            assert!(Instant::now() < deadline, "{text}");
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("events keep coming")
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
            for block in text.split("\n\n") {
                if block.contains("event: event") {
                    if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                        let event: Value = serde_json::from_str(data).unwrap();
                        assert_eq!(event["type"], "node.started", "{event}");
                        assert!(event["sequence"].as_u64().is_some(), "{event}");
                        nodes.insert(event["identity"].as_str().unwrap().to_string());
                    }
                }
            }
        }
        assert_eq!(nodes.len(), 5, "{text}");
    });
}
