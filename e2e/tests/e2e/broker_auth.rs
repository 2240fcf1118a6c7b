//! Broker authentication from configuration, for mcod and mco alike: NATS user/password, and
//! TLS with a CA the test makes with openssl ([`TestCa`]).

use mco_testsupport::{mco, Fleet, NatsServer, NodeSpec, TestCa};
use serde_json::json;

fn node_with(auth: &str) -> NodeSpec {
    let mut spec = NodeSpec::new("b1", json!({}), &[]);
    spec.extra_config = format!("[broker_auth]\n{auth}\n");
    spec
}

#[test]
fn user_and_password() {
    let args: Vec<String> = ["--user", "mco", "--pass", "s3cret"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let auth = "user = \"mco\"\npassword = \"s3cret\"";
    let fleet = Fleet::start_on(
        NatsServer::start_with_args(true, &args),
        vec![node_with(auth)],
        &format!("[broker_auth]\n{auth}"),
    );
    assert_eq!(fleet.ping(), ["b1"]);

    let wrong = fleet.client_config().with_file_name("wrong.toml");
    let text = std::fs::read_to_string(fleet.client_config())
        .unwrap()
        .replace("s3cret", "guess");
    std::fs::write(&wrong, text).unwrap();
    let run = mco(&wrong, &["ping"], std::time::Duration::from_secs(20));
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot connect to the broker"),
        "{}",
        run.stderr
    );
}

#[test]
fn tls_with_a_private_ca() {
    let ca = TestCa::new("mco-test-ca");
    let (cert, key) = ca.issue("localhost", "IP:127.0.0.1,DNS:localhost");
    let args: Vec<String> = vec![
        "--tls".into(),
        "--tlscert".into(),
        cert.display().to_string(),
        "--tlskey".into(),
        key.display().to_string(),
    ];
    let auth = format!("tls_ca_file = {:?}", ca.cert().display().to_string());
    let fleet = Fleet::start_on(
        NatsServer::start_with_args(true, &args),
        vec![node_with(&auth)],
        &format!("[broker_auth]\n{auth}"),
    );
    assert_eq!(fleet.ping(), ["b1"]);

    // Without the CA the client cannot trust the broker and says so in one line.
    let untrusting = fleet.client_config().with_file_name("no-ca.toml");
    let text = std::fs::read_to_string(fleet.client_config()).unwrap();
    let text =
        text.split("[broker_auth]").next().unwrap().to_string() + "[broker_auth]\ntls = true\n";
    std::fs::write(&untrusting, text).unwrap();
    let run = mco(&untrusting, &["ping"], std::time::Duration::from_secs(20));
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("cannot connect to the broker"),
        "{}",
        run.stderr
    );
}
