//! Broker authentication from configuration, for mcod and mco alike: NATS user/password, and
//! TLS with a CA the test makes with openssl.

use std::path::Path;
use std::process::Command;

use mco_testsupport::{mco, Fleet, NatsServer, NodeSpec};
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

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed for the TLS test (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_with_a_private_ca() {
    let dir = tempfile_dir();
    let d = dir.as_path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mco-test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let args: Vec<String> = vec![
        "--tls".into(),
        "--tlscert".into(),
        d.join("server.pem").display().to_string(),
        "--tlskey".into(),
        d.join("server.key").display().to_string(),
    ];
    let auth = format!("tls_ca_file = {:?}", d.join("ca.pem").display().to_string());
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
    std::fs::remove_dir_all(d).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mco-e2e-tls-{}-{}",
        std::process::id(),
        mco_testsupport::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
