//! Checks that real encoded messages validate against `spec/schemas/*.json`, and that the
//! schemas reject what the types would reject, so the prose, the schemas and the code cannot
//! drift apart.

use mco_spec::message::{new_request_id, Reply, Request};
use mco_spec::{subjects, Filter, ReplyEnvelope, RequestEnvelope, StatusCode, TargetSet};
use serde_json::{json, Map, Value};

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::validator_for(&value).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{instance}\n{}", errors.join("\n"));
}

fn requests() -> Vec<Request<'static>> {
    let mut full = Filter::default();
    full.add_with("country=uk webserver").unwrap();
    full.add_fact("cpus>=4").unwrap();
    full.add_fact("os.family=/deb/i").unwrap();
    full.add_identity("/^web/").unwrap();
    full.add_identity("db1").unwrap();
    full.add_agent("rpcutil").unwrap();
    let mut data = Map::new();
    data.insert("fact".into(), json!("os.family"));
    data.insert("nested".into(), json!({"list": [1, 2.5, true, null]}));
    let targets = TargetSet::new(["web1", "web2", "db1"]).map(|set| set.targets());
    [
        (Filter::default(), None),
        (full, None),
        (Filter::default(), targets),
    ]
    .into_iter()
    .map(|(filter, targets)| {
        let id = new_request_id();
        Request {
            reply_to: subjects::reply("mco", "user=alice", &id).into(),
            id: id.into(),
            collective: "mco".into(),
            agent: "rpcutil".into(),
            action: "get_fact".into(),
            data: data.clone(),
            filter,
            caller: "user=alice".into(),
            sender: "admin1.example.net".into(),
            time: mco_spec::message::now_millis(),
            ttl: 60,
            targets,
        }
    })
    .collect()
}

#[test]
fn encoded_requests_match_the_schema() {
    let validator = schema("request.json");
    for request in requests() {
        let bytes = RequestEnvelope::unsigned(&request)
            .unwrap()
            .to_bytes()
            .unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_valid(&validator, &value);
        // The copy for one target carries its proof.
        if request.targets.is_some() {
            let set = TargetSet::new(["web1", "web2", "db1"]).unwrap();
            let copy = RequestEnvelope::unsigned(&request)
                .unwrap()
                .with_target(set.proof("web2"))
                .to_bytes()
                .unwrap();
            assert_valid(&validator, &serde_json::from_slice(&copy).unwrap());
        }
        // A signed envelope has the same shape.
        let mut signed = value.clone();
        signed["signature"] = json!("c2lnbmF0dXJl");
        signed["token"] = json!("token");
        assert_valid(&validator, &signed);
    }
}

#[test]
fn encoded_replies_match_the_schema() {
    let validator = schema("reply.json");
    for status in [
        StatusCode::Ok,
        StatusCode::UnknownAction,
        StatusCode::UnknownError,
    ] {
        let reply = Reply {
            request_id: new_request_id(),
            sender: "web1.example.net".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 1,
            statuscode: status,
            statusmsg: status.description().into(),
            data: json!({"pong": 1}),
        };
        let bytes = ReplyEnvelope::unsigned(&reply).unwrap().to_bytes().unwrap();
        assert_valid(&validator, &serde_json::from_slice(&bytes).unwrap());
    }
}

/// The schema must be as strict as the code: every mutation here is refused by both.
#[test]
fn schema_and_decoder_refuse_the_same_requests() {
    let validator = schema("request.json");
    let request = requests().remove(1);
    let good: Value = serde_json::from_slice(
        &RequestEnvelope::unsigned(&request)
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "missing ttl",
            Box::new(|v| {
                v["request"].as_object_mut().unwrap().remove("ttl");
            }),
        ),
        ("zero ttl", Box::new(|v| v["request"]["ttl"] = json!(0))),
        (
            "dotted agent",
            Box::new(|v| v["request"]["agent"] = json!("a.b")),
        ),
        (
            "wildcard reply",
            Box::new(|v| v["request"]["reply_to"] = json!("mco.>")),
        ),
        (
            "reply outside the reply prefix",
            Box::new(|v| v["request"]["reply_to"] = json!("$JS.API.STREAM.PURGE.MCO_DIRECT_mco")),
        ),
        (
            "targets without a root",
            Box::new(|v| v["request"]["targets"] = json!({"root": "ab", "count": 1})),
        ),
        (
            "bad operator",
            Box::new(|v| v["request"]["filter"]["fact"][0]["operator"] = json!("~~")),
        ),
        (
            "data not object",
            Box::new(|v| v["request"]["data"] = json!([1])),
        ),
        (
            "wrong protocol",
            Box::new(|v| v["protocol"] = json!("mco.request.v0")),
        ),
    ];
    for (name, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "schema accepted: {name}");
        let bytes = serde_json::to_vec(&bad).unwrap();
        let decoded = RequestEnvelope::decode(&bytes).and_then(|e| e.body().map(|_| ()));
        assert!(decoded.is_err(), "decoder accepted: {name}");
    }
}

/// Every field the types serialise is declared by the schema and the other way round.
#[test]
fn schema_properties_are_the_serialised_fields() {
    fn keys(value: &Value) -> Vec<String> {
        let mut k: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }
    let read = |name: &str| -> Value {
        let path = format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let request_schema = read("request.json");
    let request = serde_json::to_value(&requests()[2]).unwrap();
    assert_eq!(
        keys(&request_schema["$defs"]["request"]["properties"]),
        keys(&request)
    );
    assert_eq!(
        keys(&request_schema["$defs"]["filter"]["properties"]),
        keys(&request["filter"])
    );
    let proof = serde_json::to_value(
        TargetSet::new(["web1", "web2"])
            .unwrap()
            .proof("web1")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        keys(&request_schema["properties"]["target"]["properties"]),
        keys(&proof)
    );
    let reply_schema = read("reply.json");
    let reply = serde_json::to_value(Reply {
        request_id: "a".into(),
        sender: "b".into(),
        agent: "c".into(),
        action: "d".into(),
        time: 0,
        statuscode: StatusCode::Ok,
        statusmsg: String::new(),
        data: json!({}),
    })
    .unwrap();
    assert_eq!(
        keys(&reply_schema["$defs"]["reply"]["properties"]),
        keys(&reply)
    );
}

/// Registrations: real ones validate, the schema refuses what the decoder refuses, and the
/// schema declares exactly the serialised fields.
#[test]
fn registrations_match_the_schema() {
    use mco_spec::registration::{Registration, RegistrationEnvelope};
    let validator = schema("registration.json");
    let registration = Registration {
        identity: "web1.example.net".into(),
        collectives: vec!["mco".into(), "uk".into()],
        facts: json!({"country": "uk", "os": {"family": "debian"}, "cpus": 4}),
        classes: vec!["role::web".into()],
        agents: vec!["rpcutil".into()],
        time: mco_spec::message::now_millis(),
    };
    let good: Value = serde_json::from_slice(
        &RegistrationEnvelope::unsigned(&registration)
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    assert_valid(&validator, &good);
    let mut signed = good.clone();
    signed["signature"] = json!("c2lnbmF0dXJl");
    signed["token"] = json!("token");
    assert_valid(&validator, &signed);

    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "bad identity",
            Box::new(|v| v["registration"]["identity"] = json!("a b")),
        ),
        (
            "no collectives",
            Box::new(|v| v["registration"]["collectives"] = json!([])),
        ),
        (
            "dotted collective",
            Box::new(|v| v["registration"]["collectives"] = json!(["a.b"])),
        ),
        (
            "facts not object",
            Box::new(|v| v["registration"]["facts"] = json!([1])),
        ),
        (
            "missing time",
            Box::new(|v| {
                v["registration"].as_object_mut().unwrap().remove("time");
            }),
        ),
        (
            "wrong protocol",
            Box::new(|v| v["protocol"] = json!("mco.reply.v1")),
        ),
    ];
    refused_by_both(&validator, &good, mutations, |bytes| {
        RegistrationEnvelope::decode(bytes)
            .and_then(|e| e.body())
            .is_err()
    });
    declares_exactly(
        "registration.json",
        "registration",
        &serde_json::to_value(&registration).unwrap(),
    );
}

type Mutation = Box<dyn Fn(&mut Value)>;

/// Each mutation of `good` is refused by the schema and by the decoder (`refuses`).
fn refused_by_both(
    validator: &jsonschema::Validator,
    good: &Value,
    mutations: Vec<(&str, Mutation)>,
    refuses: impl Fn(&[u8]) -> bool,
) {
    for (name, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "schema accepted: {name}");
        assert!(
            refuses(&serde_json::to_vec(&bad).unwrap()),
            "decoder accepted: {name}"
        );
    }
}

/// The schema `file` declares for `$defs.<def>` exactly the fields `serialised` has.
fn declares_exactly(file: &str, def: &str, serialised: &Value) {
    let text =
        std::fs::read_to_string(format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let schema_value: Value = serde_json::from_str(&text).unwrap();
    let mut declared: Vec<&String> = schema_value["$defs"][def]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    declared.sort();
    let mut fields: Vec<&String> = serialised.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(declared, fields);
}

/// The worked example in `spec/PROTOCOL.md` ("Test vectors"): fixed keys, a token, a signed
/// request and a target proof, computed here and required to appear in the document
/// verbatim, so an independent implementation can check itself against text that cannot
/// drift from the code.
#[test]
fn protocol_md_test_vectors_hold() {
    use mco_spec::security::{encode_public_key, Credentials, Token, TokenClaims, TokenRole};
    use mco_spec::security::{TokenCache, Trust};
    let issuer = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let alice = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let claims = TokenClaims {
        role: TokenRole::Client,
        name: "alice".into(),
        public_key: encode_public_key(&alice.verifying_key()),
        issuer: String::new(),
        not_before: 1_763_856_000,
        expires: 1_795_392_000,
        agents: vec!["rpcutil".into()],
        collectives: vec![],
    };
    let token = Token::issue(&claims, &issuer);
    let targets = TargetSet::new(["web1", "web2", "db1"]).unwrap();
    let id = "5d3c8f0a9b2e4c1d8e7f6a5b4c3d2e1f";
    let request = Request {
        reply_to: subjects::reply("mco", "alice", id).into(),
        id: id.into(),
        collective: "mco".into(),
        agent: "rpcutil".into(),
        action: "ping".into(),
        data: Map::new(),
        filter: Filter {
            agent: vec!["rpcutil".into()],
            ..Filter::default()
        },
        caller: "alice".into(),
        sender: "admin1.example.net".into(),
        time: 1_763_856_000_123,
        ttl: 60,
        targets: Some(targets.targets()),
    };
    let credentials = Credentials {
        key: alice.clone(),
        token: token.clone(),
    };
    let envelope = RequestEnvelope::signed(&request, &credentials).unwrap();
    let copy = RequestEnvelope::append_target(
        &envelope.to_bytes().unwrap(),
        &targets.proof("web2").unwrap(),
    )
    .unwrap();
    let copy = String::from_utf8(copy).unwrap();
    // The vector verifies as a node would verify it.
    let trust = Trust {
        issuers: vec![issuer.verifying_key()],
        clock_skew_secs: 0,
    };
    let decoded = RequestEnvelope::decode(copy.as_bytes()).unwrap();
    TokenCache::default()
        .verify(&decoded, &trust, 1_763_856_001)
        .unwrap();
    let body = decoded.body().unwrap();
    assert!(body
        .targets
        .unwrap()
        .contains("web2", decoded.target.as_ref().unwrap()));

    let vectors = [
        (
            "issuer public key",
            encode_public_key(&issuer.verifying_key()),
        ),
        (
            "alice public key",
            encode_public_key(&alice.verifying_key()),
        ),
        ("alice token", token),
        ("request envelope for web2", copy),
    ];
    let doc =
        std::fs::read_to_string(format!("{}/PROTOCOL.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let missing: Vec<String> = vectors
        .iter()
        .filter(|(_, value)| !doc.contains(value.as_str()))
        .map(|(name, value)| format!("{name}:\n{value}"))
        .collect();
    assert!(
        missing.is_empty(),
        "PROTOCOL.md lacks these test vectors:\n{}",
        missing.join("\n")
    );
}

/// An encoded event validates; what the decoder refuses, the schema refuses too; the schema
/// declares exactly the serialised fields.
#[test]
fn events_match_the_schema() {
    use mco_spec::event::{Event, EventEnvelope, Severity};
    let validator = schema("event.json");
    let event = Event {
        id: new_request_id(),
        kind: "service.state_changed".into(),
        identity: "web1.example.net".into(),
        collective: "mco".into(),
        time: mco_spec::message::now_millis(),
        severity: Severity::Warning,
        data: json!({"service": "httpd", "state": "stopped"}),
    };
    let good: Value =
        serde_json::from_slice(&EventEnvelope::unsigned(&event).unwrap().to_bytes().unwrap())
            .unwrap();
    assert_valid(&validator, &good);
    let mut signed = good.clone();
    signed["signature"] = json!("c2lnbmF0dXJl");
    signed["token"] = json!("token");
    assert_valid(&validator, &signed);

    let mutations: Vec<(&str, Mutation)> = vec![
        ("short id", Box::new(|v| v["event"]["id"] = json!("abc"))),
        (
            "one-part type",
            Box::new(|v| v["event"]["type"] = json!("service")),
        ),
        (
            "three-part type",
            Box::new(|v| v["event"]["type"] = json!("a.b.c")),
        ),
        (
            "upper-case type",
            Box::new(|v| v["event"]["type"] = json!("Node.started")),
        ),
        (
            "bad identity",
            Box::new(|v| v["event"]["identity"] = json!("a b")),
        ),
        (
            "dotted collective",
            Box::new(|v| v["event"]["collective"] = json!("a.b")),
        ),
        (
            "unknown severity",
            Box::new(|v| v["event"]["severity"] = json!("fatal")),
        ),
        (
            "data not object",
            Box::new(|v| v["event"]["data"] = json!([1])),
        ),
        (
            "missing time",
            Box::new(|v| {
                v["event"].as_object_mut().unwrap().remove("time");
            }),
        ),
        (
            "wrong protocol",
            Box::new(|v| v["protocol"] = json!("mco.reply.v1")),
        ),
    ];
    refused_by_both(&validator, &good, mutations, |bytes| {
        EventEnvelope::decode(bytes).and_then(|e| e.body()).is_err()
    });
    declares_exactly("event.json", "event", &good["event"]);
}
