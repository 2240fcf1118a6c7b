//! The simulator end to end: `mco-sim` with a small signed fleet against a test-started
//! nats-server, and the real `mco` receiving exactly one signed reply per identity through
//! it. No timing assertions: figures come from `mco-bench`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mco_testsupport::{mco, Keys, NatsServer};

/// Kills the simulator when the test ends, however it ends.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_simulator_answers_signed_through_the_real_client() {
    const COUNT: usize = 20;
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(&dir.path().join("keys"));
    let mut sim = Sim(Command::new(env!("CARGO_BIN_EXE_mco-sim"))
        .args(["--broker", &nats.url(), "--count", &COUNT.to_string()])
        .args(["--connections", "2", "--prefix", "smoke", "--issuer-key"])
        .arg(keys.issuer_key())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start mco-sim"));
    let mut ready = String::new();
    BufReader::new(sim.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.contains("20 identities"), "mco-sim said: {ready:?}");

    let (key, token) = keys.issue("client", "smoke", &[]);
    let config = dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!(
            "brokers = [{:?}]\ncollectives = [\"mco\"]\nkey_file = {:?}\ntoken_file = {:?}\nissuer_keys = [{:?}]\n",
            nats.url(),
            key.display().to_string(),
            token.display().to_string(),
            keys.issuer_pub().display().to_string()
        ),
    )
    .unwrap();
    let want: Vec<String> = (0..COUNT).map(|i| format!("smoke-{i:05}")).collect();

    // A broadcast with a filter the generated facts decide, then every identity.
    let run = mco(
        &config,
        &[
            "rpc", "rpcutil", "ping", "-F", "role=web", "-j", "--dt", "2",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let web: Vec<String> = want.iter().step_by(2).cloned().collect();
    assert_eq!(run.senders(), web);

    let run = mco(
        &config,
        &["rpc", "rpcutil", "ping", "-j", "--dt", "2"],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.senders(), want, "exactly one reply per identity");
    assert!(!run.stderr.contains("forged"), "{}", run.stderr);
}
