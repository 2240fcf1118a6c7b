//! The registry's PostgreSQL connections over TLS, end to end: a real PostgreSQL started with
//! `ssl = on` and a certificate from a CA the test makes, a real `mcod registry` and the real
//! `mco --dm registry`, with libpq's `sslmode`/`sslrootcert` in the URL. A verified
//! connection works; a certificate from another CA, or for another host name, is one clear
//! line; the bytes on the wire hold no fact or identity (and do with `sslmode=disable`, so
//! the check can fail); a server that accepts TLS only refuses plain text; and a remote
//! server without TLS is refused by default.
//!
//! The server's certificate names `db.example.net`; URLs reach it with
//! `hostaddr=127.0.0.1`, so the host name is checked as on a real network.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mco_testsupport::{
    finish, mco_command, Fleet, NodeSpec, Postgres, PostgresTls, RecordingProxy, RegistryService,
    Run, TestCa,
};
use serde_json::json;

use crate::registry::{find, lines, registry_config, wait_for_registry, FAST_REGISTRATION};

/// A registry URL for the server on `port`, named `host`, reached at 127.0.0.1.
fn url(host: &str, port: u16, options: &str) -> String {
    format!("postgres://postgres@{host}:{port}/postgres?hostaddr=127.0.0.1&{options}")
}

/// One node whose facts and identity are easy to look for on the wire.
const SECRET_FACT: &str = "vault-room-4711";
const IDENTITY: &str = "tls-node-1";

/// What every test here starts from: a CA, a PostgreSQL server with TLS whose certificate
/// for `db.example.net` that CA signed, the one node registering every second, and a
/// registry service configuration for its fleet.
struct Setup {
    ca: TestCa,
    postgres: Postgres,
    fleet: Fleet,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// With `hostssl_only`, the server accepts TCP connections over TLS only.
    fn start(hostssl_only: bool) -> Setup {
        let ca = TestCa::new("mco-test-pg-ca");
        let (cert, key) = ca.issue("db.example.net", "DNS:db.example.net");
        let postgres = Postgres::start_with_tls(&PostgresTls {
            cert,
            key,
            hostssl_only,
        });
        let mut spec = NodeSpec::new(IDENTITY, json!({"location": SECRET_FACT}), &["role::db"]);
        spec.extra_config = FAST_REGISTRATION.to_string();
        let fleet = Fleet::start(vec![spec]);
        let dir = tempfile::tempdir().unwrap();
        let config = registry_config(&fleet, dir.path());
        Setup {
            ca,
            postgres,
            fleet,
            config,
            _dir: dir,
        }
    }

    /// A URL for the server named `host` at `port` (the server's, or a proxy's) with
    /// `sslmode=<mode>` and `ca`'s certificate as `sslrootcert`.
    fn url_with(&self, host: &str, port: u16, mode: &str, ca: &TestCa) -> String {
        url(
            host,
            port,
            &format!("sslmode={mode}&sslrootcert={}", ca.cert().display()),
        )
    }

    /// The URL a production registry would use: verify-full with the right CA.
    fn verified(&self) -> String {
        self.url_with(
            "db.example.net",
            self.postgres.port(),
            "verify-full",
            &self.ca,
        )
    }
}

/// `mco` failed with exactly one line on stderr that starts with `start` and contains
/// every one of `parts`.
fn assert_one_line(run: &Run, start: &str, parts: &[&str]) {
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with(start), "{}", run.stderr);
    for part in parts {
        assert!(run.stderr.contains(part), "{part:?} not in {}", run.stderr);
    }
}

/// `mcod registry` with `db` refused to start, its last line being one that starts with
/// `start` and contains every one of `parts`.
fn assert_registry_refuses(config: &Path, db: &str, start: &str, parts: &[&str]) {
    let run = mco_testsupport::mcod(
        &[
            "--config",
            &config.display().to_string(),
            "registry",
            "--db",
            db,
        ],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with(start), "{}", run.stderr);
    for part in parts {
        assert!(last.contains(part), "{part:?} not in {}", run.stderr);
    }
    // The one line is the only error: nothing else went wrong first.
    assert_eq!(run.stderr.matches("mcod:").count(), 1, "{}", run.stderr);
}

#[test]
fn mcod_registry_and_mco_use_a_verified_tls_connection_to_postgres() {
    let setup = Setup::start(false);
    let fleet = &setup.fleet;
    let service = RegistryService::start(&setup.config, &setup.verified(), 60);
    wait_for_registry(fleet, &service, &[IDENTITY]);
    let run = find(
        fleet,
        &setup.verified(),
        &["-F", &format!("location={SECRET_FACT}")],
    );
    assert_eq!(lines(&run), [IDENTITY], "{run:?}");

    // A CA file and no sslmode: verify-full is the default for a server across a network.
    let port = setup.postgres.port();
    let default = url(
        "db.example.net",
        port,
        &format!("sslrootcert={}", setup.ca.cert().display()),
    );
    assert_eq!(lines(&find(fleet, &default, &[])), [IDENTITY]);

    // The machine's CAs (here the test CA, through SSL_CERT_FILE, as on a host whose CA
    // bundle holds it).
    let system = url(
        "db.example.net",
        port,
        "sslmode=verify-full&sslrootcert=system",
    );
    let do_url = format!("url={system}");
    let mut command = mco_command(
        &fleet.client_config(),
        &["find", "--dm", "registry", "--do", &do_url],
    );
    command.env("SSL_CERT_FILE", setup.ca.cert());
    let child = command.spawn().unwrap();
    let run = finish(child, std::time::Instant::now(), Duration::from_secs(30));
    assert_eq!(lines(&run), [IDENTITY], "{run:?}");
}

#[test]
fn a_certificate_from_another_ca_is_refused_in_one_line() {
    let setup = Setup::start(false);
    let other = TestCa::new("someone-else");
    for mode in ["verify-full", "verify-ca", "require"] {
        let wrong = setup.url_with("db.example.net", setup.postgres.port(), mode, &other);
        let why = format!(
            "cannot connect securely: the server's certificate is not signed by the CA in {} (sslmode={mode})",
            other.cert().display()
        );
        assert_one_line(
            &find(&setup.fleet, &wrong, &[]),
            &format!("mco: registry {wrong}: "),
            &[&why],
        );
        assert_registry_refuses(&setup.config, &wrong, "mcod: ", &[&why]);
    }
}

#[test]
fn verify_full_refuses_a_certificate_for_another_host_name() {
    let setup = Setup::start(false);
    let port = setup.postgres.port();
    let elsewhere = setup.url_with("other.example.net", port, "verify-full", &setup.ca);
    let why = "cannot connect securely: the server's certificate is not valid for the host name other.example.net";
    assert_one_line(
        &find(&setup.fleet, &elsewhere, &[]),
        &format!("mco: registry {elsewhere}: "),
        &[why, "(it names db.example.net; sslmode=verify-full)"],
    );
    assert_registry_refuses(&setup.config, &elsewhere, "mcod: ", &[why]);

    // verify-ca checks the chain only: the same server is accepted, so it was the name.
    let chain_only = setup.url_with("other.example.net", port, "verify-ca", &setup.ca);
    let service = RegistryService::start(&setup.config, &chain_only, 60);
    wait_for_registry(&setup.fleet, &service, &[IDENTITY]);
}

/// The attack: someone on the network between the registry's clients and PostgreSQL reads
/// the traffic. With TLS they see neither a node's identity nor its facts; with
/// `sslmode=disable` (the control) they see both.
#[test]
fn registry_traffic_to_postgres_is_encrypted_on_the_wire() {
    let setup = Setup::start(false);
    let fleet = &setup.fleet;
    let proxy = RecordingProxy::start(setup.postgres.port());
    let encrypted = setup.url_with("db.example.net", proxy.port(), "verify-full", &setup.ca);
    let mut service = RegistryService::start(&setup.config, &encrypted, 60);
    // The service stored the node, and mco read it back, both through the proxy.
    wait_for_registry(fleet, &service, &[IDENTITY]);
    let run = find(
        fleet,
        &encrypted,
        &["-F", &format!("location={SECRET_FACT}")],
    );
    assert_eq!(lines(&run), [IDENTITY], "{run:?}");
    assert!(
        proxy.recorded().len() > 1000,
        "nothing went through the proxy"
    );
    for secret in [SECRET_FACT, IDENTITY, "mco_registry_nodes"] {
        assert!(
            !proxy.saw(secret),
            "{secret:?} crossed the network in clear"
        );
    }

    // The control: the same traffic without TLS shows them, so the check above can fail.
    service.stop(Duration::from_secs(10));
    proxy.clear();
    let clear = url("db.example.net", proxy.port(), "sslmode=disable");
    let service = RegistryService::start(&setup.config, &clear, 60);
    wait_for_registry(fleet, &service, &[IDENTITY]);
    for secret in [SECRET_FACT, IDENTITY, "mco_registry_nodes"] {
        assert!(proxy.saw(secret), "{secret:?} not seen even in clear");
    }
}

#[test]
fn a_hostssl_only_server_refuses_plain_text_and_a_remote_server_without_tls_is_refused() {
    let setup = Setup::start(true);
    let fleet = &setup.fleet;
    let service = RegistryService::start(&setup.config, &setup.verified(), 60);
    wait_for_registry(fleet, &service, &[IDENTITY]);

    // The server accepts no plain text, and says so.
    let plain = url("db.example.net", setup.postgres.port(), "sslmode=disable");
    assert_one_line(
        &find(fleet, &plain, &[]),
        &format!("mco: registry {plain}: cannot connect: "),
        &["no pg_hba.conf entry", "no encryption"],
    );
    // A loopback address and no sslmode: prefer, which takes the TLS the server offers.
    let local = format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        setup.postgres.port()
    );
    assert_eq!(lines(&find(fleet, &local, &[])), [IDENTITY]);

    // A server across a network without TLS: refused by default, never used in clear ...
    let no_tls = Postgres::start();
    let remote = url("db.example.net", no_tls.port(), "connect_timeout=5");
    let why = "cannot connect securely: the server does not offer TLS and sslmode=require needs it";
    assert_one_line(
        &find(fleet, &remote, &[]),
        &format!("mco: registry {remote}: "),
        &[why],
    );
    assert_registry_refuses(&setup.config, &remote, "mcod: ", &[why]);
    // ... unless the URL says so: then the connection is made (to a database without the
    // registry's tables here).
    let opted_out = url("db.example.net", no_tls.port(), "sslmode=disable");
    assert_one_line(
        &find(fleet, &opted_out, &[]),
        &format!("mco: registry {opted_out} has no registry tables"),
        &[],
    );
}
