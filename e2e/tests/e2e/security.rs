//! Security through real mcod and mco over a real broker: each forged, altered, replayed,
//! out-of-window, unauthorized or over-limit request is refused, counted and audited, and its
//! action never runs; forged replies are dropped by the client.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use mco_client::{Call, Client};
use mco_spec::message::now_millis;
use mco_spec::security::{encode_public_key, Credentials, Token, TokenClaims, TokenRole};
use mco_spec::{subjects, Filter, Reply, ReplyEnvelope, RequestEnvelope, StatusCode};
use mco_testsupport::{Fleet, NodeSpec};

use crate::raw::{credentials, request, signed};
use serde_json::{json, Map, Value};

/// Publishes raw bytes as a request to s1 and waits briefly for its reply.
async fn send(
    nats: &async_nats::Client,
    subject: &str,
    reply_to: &str,
    bytes: Vec<u8>,
) -> Option<Reply> {
    crate::raw::send(nats, subject, reply_to, bytes, Duration::from_millis(1500)).await
}

fn audit_reason(fleet: &Fleet, id: &str) -> String {
    let lines = fleet.nodes[0].audit();
    let line = lines
        .iter()
        .rev()
        .find(|l| l["request_id"] == id)
        .unwrap_or_else(|| panic!("no audit line for {id}: {lines:?}"));
    assert_eq!(line["decision"], "rejected", "{line}");
    line["reason"].as_str().unwrap_or_default().to_string()
}

#[test]
fn forged_altered_replayed_and_unauthorized_requests_are_refused() {
    let policies = std::env::temp_dir().join(format!("mco-e2e-policies-{}", std::process::id()));
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("rpcutil.policy"), "policy default deny\nallow\te2e alice\tping get_fact daemon_stats\t*\t*\nallow\tlimited\t*\t*\t*\n").unwrap();
    let mut spec = NodeSpec::new("s1", json!({"country": "uk"}), &[]);
    spec.extra_config = format!("policy_dir = {:?}\n", policies.display().to_string());
    let fleet = Fleet::start(vec![spec]);
    let alice = credentials(&fleet, "client", "alice", &[]);
    let direct = subjects::direct("mco", "s1");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();

        // Control: a correctly signed request is answered.
        let good = request("alice", "rpcutil", "ping", Filter::default());
        let bytes = signed(&good, &alice);
        let reply = send(&nats, &direct, &good.reply_to, bytes.clone())
            .await
            .expect("a valid request is answered");
        assert_eq!(reply.statuscode, StatusCode::Ok);

        // Replayed: the same bytes again.
        assert!(send(&nats, &direct, &good.reply_to, bytes).await.is_none());
        assert!(audit_reason(&fleet, &good.id).contains("replayed"));

        // Tampered payload: the signed bytes changed after signing.
        let r = request("alice", "rpcutil", "ping", Filter::default());
        let text = String::from_utf8(signed(&r, &alice))
            .unwrap()
            .replace("\"ping\"", "\"inventory\"");
        assert!(send(&nats, &direct, &r.reply_to, text.into_bytes())
            .await
            .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("signature does not verify"));

        // Tampered filter on a broadcast: widening country=de to uk.
        let mut filter = Filter::default();
        filter.add_fact("country=de").unwrap();
        let r = request("alice", "rpcutil", "ping", filter);
        let text = String::from_utf8(signed(&r, &alice))
            .unwrap()
            .replace("\"de\"", "\"uk\"");
        assert!(send(
            &nats,
            &subjects::broadcast("mco", "rpcutil"),
            &r.reply_to,
            text.into_bytes()
        )
        .await
        .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("signature does not verify"));

        // Signed by another key than the token's.
        let mallory = Credentials {
            key: SigningKey::from_bytes(&[7; 32]),
            token: alice.token.clone(),
        };
        let r = request("alice", "rpcutil", "ping", Filter::default());
        assert!(send(&nats, &direct, &r.reply_to, signed(&r, &mallory))
            .await
            .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("signature does not verify"));

        // A token from another issuer.
        let rogue_issuer = SigningKey::from_bytes(&[9; 32]);
        let rogue_key = SigningKey::from_bytes(&[10; 32]);
        let claims = TokenClaims {
            role: TokenRole::Client,
            name: "alice".into(),
            public_key: encode_public_key(&rogue_key.verifying_key()),
            issuer: String::new(),
            not_before: 0,
            expires: u64::MAX,
            agents: vec![],
            collectives: vec![],
        };
        let rogue = Credentials {
            key: rogue_key,
            token: Token::issue(&claims, &rogue_issuer),
        };
        let r = request("alice", "rpcutil", "ping", Filter::default());
        assert!(send(&nats, &direct, &r.reply_to, signed(&r, &rogue))
            .await
            .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("not signed by a trusted issuer"));

        // Expired and not-yet-valid tokens.
        let expired = credentials(
            &fleet,
            "client",
            "old",
            &["--starts-in", "-7200", "--valid-for", "3600"],
        );
        let r = request("old", "rpcutil", "ping", Filter::default());
        assert!(send(&nats, &direct, &r.reply_to, signed(&r, &expired))
            .await
            .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("expired at"));
        let early = credentials(&fleet, "client", "early", &["--starts-in", "7200"]);
        let r = request("early", "rpcutil", "ping", Filter::default());
        assert!(send(&nats, &direct, &r.reply_to, signed(&r, &early))
            .await
            .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("not valid before"));

        // Outside the request's own time window: too old, and from the future.
        let mut old = request("alice", "rpcutil", "ping", Filter::default());
        old.time = now_millis() - 120_000;
        assert!(send(&nats, &direct, &old.reply_to, signed(&old, &alice))
            .await
            .is_none());
        assert!(audit_reason(&fleet, &old.id).contains("TTL"));
        // From the future: clock trouble, which a verified caller is told about.
        let mut future = request("alice", "rpcutil", "ping", Filter::default());
        future.time = now_millis() + 600_000;
        let reply = send(&nats, &direct, &future.reply_to, signed(&future, &alice))
            .await
            .expect("clock trouble is answered");
        assert_eq!(reply.statuscode, StatusCode::Aborted);
        assert!(reply.statusmsg.contains("clock"), "{}", reply.statusmsg);
        assert!(audit_reason(&fleet, &future.id).contains("clock_skew_seconds"));

        // A caller name other than the token's.
        let r = request("root", "rpcutil", "ping", Filter::default());
        assert!(send(&nats, &direct, &r.reply_to, signed(&r, &alice))
            .await
            .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("calling as \"root\""));

        // A token limited to another agent.
        let limited = credentials(&fleet, "client", "limited", &["--agents", "service"]);
        let r = request("limited", "rpcutil", "ping", Filter::default());
        assert!(send(&nats, &direct, &r.reply_to, signed(&r, &limited))
            .await
            .is_none());
        assert!(audit_reason(&fleet, &r.id).contains("does not allow agent rpcutil"));

        // Unsigned.
        let r = request("alice", "rpcutil", "ping", Filter::default());
        let unsigned = RequestEnvelope::unsigned(&r).unwrap().to_bytes().unwrap();
        assert!(send(&nats, &direct, &r.reply_to, unsigned).await.is_none());
        assert!(audit_reason(&fleet, &r.id).contains("not signed"));

        // A policy denies: status 1, not authorized, and the action does not run.
        let r = request("alice", "rpcutil", "inventory", Filter::default());
        let reply = send(&nats, &direct, &r.reply_to, signed(&r, &alice))
            .await
            .expect("a denial is answered");
        assert_eq!(reply.statuscode, StatusCode::Aborted);
        assert_eq!(
            reply.statusmsg,
            "You are not authorized to call this agent or action."
        );
        assert_eq!(
            reply.data,
            json!({}),
            "no inventory data: the action did not run"
        );
        assert!(audit_reason(&fleet, &r.id).contains("denied by policy"));
    });

    // Through the real mco: the policy allows ping for e2e and denies inventory.
    assert_eq!(
        fleet.mco(&["rpc", "rpcutil", "ping", "-I", "s1"]).code,
        Some(0)
    );
    let denied = fleet.mco(&["rpc", "rpcutil", "inventory", "-I", "s1"]);
    assert_eq!(denied.code, Some(2));
    assert!(
        denied.stdout.contains("You are not authorized"),
        "{}",
        denied.stdout
    );

    // Counted: every refusal is in daemon_stats.
    let stats = fleet
        .mco(&["rpc", "rpcutil", "daemon_stats", "-I", "s1", "-j"])
        .json();
    let data = &stats[0]["data"];
    assert_eq!(data["replayed"], 1, "{data}");
    assert_eq!(data["denied"], 2, "{data}");
    assert!(data["unvalidated"].as_u64().unwrap() >= 8, "{data}");
    assert_eq!(data["ttlexpired"], 1, "{data}");
    assert_eq!(data["clockskew"], 1, "{data}");
    // Accepted: the control ping, mco's ping and this daemon_stats; the two inventories were denied.
    let accepted = fleet.nodes[0]
        .audit()
        .iter()
        .filter(|l| l["decision"] == "accepted" && l["agent"] == "rpcutil")
        .count();
    assert_eq!(accepted, 3);
    std::fs::remove_dir_all(&policies).unwrap();
}

#[test]
fn forged_replies_are_rejected_by_the_client() {
    let fleet = Fleet::start(vec![NodeSpec::new("real1", json!({}), &[])]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // An impostor answers for "ghost" (a token from a rogue issuer) and for "real1" (with
        // ghost's valid server token, i.e. claiming another node's name).
        let (key, token) = fleet.keys.issue("server", "ghost", &[]);
        let ghost_creds = mco_keys::read_credentials(&key, &token).unwrap();
        let rogue = SigningKey::from_bytes(&[3; 32]);
        let claims = TokenClaims {
            role: TokenRole::Server,
            name: "ghost".into(),
            public_key: encode_public_key(&rogue.verifying_key()),
            issuer: String::new(),
            not_before: 0,
            expires: u64::MAX,
            agents: vec![],
            collectives: vec![],
        };
        let rogue_creds = Credentials {
            key: rogue.clone(),
            token: Token::issue(&claims, &SigningKey::from_bytes(&[4; 32])),
        };
        let nats = async_nats::connect(fleet.nats.url()).await.unwrap();
        // The impostor answers direct requests to ghost and discovery broadcasts alike.
        let direct = nats.subscribe("mco.node.ghost").await.unwrap();
        let discovery = nats
            .subscribe(subjects::broadcast("mco", subjects::DISCOVERY_AGENT))
            .await
            .unwrap();
        let mut requests = futures::stream::select(direct, discovery);
        let impostor = nats.clone();
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let Ok(request) = RequestEnvelope::decode(&message.payload)
                    .and_then(|e| e.body().map(|r| r.into_owned()))
                else {
                    continue;
                };
                for (sender, creds) in [("ghost", &rogue_creds), ("real1", &ghost_creds)] {
                    let reply = Reply {
                        request_id: request.id.to_string(),
                        sender: sender.into(),
                        agent: request.agent.to_string(),
                        action: request.action.to_string(),
                        time: now_millis(),
                        statuscode: StatusCode::Ok,
                        statusmsg: "OK".into(),
                        data: Value::Object(Map::new()),
                    };
                    let bytes = ReplyEnvelope::signed(&reply, creds)
                        .unwrap()
                        .to_bytes()
                        .unwrap();
                    impostor
                        .publish(request.reply_to.to_string(), bytes.into())
                        .await
                        .unwrap();
                }
            }
        });
        nats.flush().await.unwrap();

        let client = crate::signed_client(&fleet, Client::builder()).await;
        let found = client
            .discover(&Filter::default(), None, Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(found, ["real1"], "forged discovery replies add no node");
        let result = client
            .call(
                Call::new("rpcutil", "ping")
                    .nodes(["ghost", "real1"])
                    .timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap()
            .collect()
            .await;
        let senders: Vec<&str> = result.replies.iter().map(|r| r.sender.as_str()).collect();
        assert_eq!(senders, ["real1"], "only the real node's reply is accepted");
        assert_eq!(result.stats.forged, 2);
        assert_eq!(result.stats.no_response_from, ["ghost"]);
    });
    let run = fleet.mco(&[
        "rpc", "rpcutil", "ping", "-I", "ghost", "-I", "real1", "-t", "2",
    ]);
    assert!(
        run.stdout.contains("Ignored 2 forged replies"),
        "{}",
        run.stdout
    );
}
