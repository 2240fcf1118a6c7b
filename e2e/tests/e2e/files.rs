//! Files that hold secrets or the fleet's facts, end to end with real `mcod`, `mcod registry`
//! and `mco`: the replay journal and the SQLite registry are not readable by other local
//! accounts, and a broker secret (nkey seed, creds file, TLS client key) that other accounts
//! can read is refused by both binaries in one clear line, as a private key is.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mco_testsupport::{mco, Fleet, NatsServer, NodeSpec, RegistryService, TestCa};
use serde_json::json;

use crate::registry::{registry_config, wait_for_registry, FAST_REGISTRATION};

/// `nobody`: a local account with no business reading mco's files.
const NOBODY: u32 = 65534;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Whether the account `uid`, in group `gid` only, can read `path` (with the real `cat`).
fn can_read(uid: u32, gid: u32, path: &Path) -> bool {
    Command::new("cat")
        .arg(path)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap_or_else(|e| panic!("cat: {e}"))
        .status
        .success()
}

/// The attack: another local account on a node or on the registry host reads what mcod
/// wrote. The directories are opened up (0755) so that only the files' own modes stand in
/// the way, as under a state_dir an operator made world-readable.
#[test]
fn other_local_users_cannot_read_the_replay_journal_or_the_registry_database() {
    let mut spec = NodeSpec::new("files1", json!({"location": "vault"}), &[]);
    spec.extra_config = FAST_REGISTRATION.to_string();
    let fleet = Fleet::start(vec![spec]);
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    let db = tmp.path().join("registry.sqlite");
    let config = registry_config(&fleet, tmp.path());
    let service = RegistryService::start(&config, &db.display().to_string(), 60);
    wait_for_registry(&fleet, &service, &["files1"]);
    let rpc = fleet.mco(&["rpc", "rpcutil", "ping", "-I", "files1"]);
    assert_eq!(rpc.code, Some(0), "{rpc:?}");

    let node = fleet.nodes[0].dir();
    chmod(node, 0o755);
    let journal = node.join("state/replay.journal");
    assert_eq!(
        mode(&node.join("state")) & 0o005,
        0o005,
        "state_dir is open"
    );
    assert!(
        std::fs::read_to_string(&journal).unwrap().lines().count() >= 1,
        "the journal holds the request"
    );
    assert_eq!(mode(&journal), 0o600);
    assert!(
        !can_read(NOBODY, NOBODY, &journal),
        "others read the journal"
    );
    assert!(can_read(0, 0, &journal), "the control: its owner reads it");

    // The registry service holds the database open: the -wal and -shm files exist.
    let registry: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .collect();
    for file in &registry {
        assert_eq!(mode(file), 0o640, "{}", file.display());
        assert!(
            !can_read(NOBODY, NOBODY, file),
            "others read {}",
            file.display()
        );
        // The group may read it (operators running mco --dm registry on this host).
        assert!(
            can_read(NOBODY, 0, file),
            "the group cannot read {}",
            file.display()
        );
    }
}

/// A broker with nkey authentication for the user whose seed is returned.
fn nkey_broker(dir: &Path) -> (NatsServer, String) {
    let user = nkeys::KeyPair::new_user();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: {:?} }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let seed = user.seed().unwrap();
    let args = vec!["-c".to_string(), conf.display().to_string()];
    (NatsServer::start_with_args(true, &args), seed)
}

/// A one-node fleet on `nats` whose node and client each read the secret `text` from a file
/// of their own (mode 0600), named by `key` in `[broker_auth]` with the `other` lines.
struct SecretFleet {
    fleet: Fleet,
    files: [PathBuf; 2],
    _dir: tempfile::TempDir,
}

impl SecretFleet {
    fn start(nats: NatsServer, key: &str, text: &str, other: &str) -> SecretFleet {
        let dir = tempfile::tempdir().unwrap();
        let files = ["node.secret", "client.secret"].map(|name| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            chmod(&path, 0o600);
            path
        });
        let auth = |file: &Path| {
            format!(
                "[broker_auth]\n{other}{key} = {:?}\n",
                file.display().to_string()
            )
        };
        let mut spec = NodeSpec::new("secret1", json!({}), &[]);
        spec.extra_config = auth(&files[0]);
        let fleet = Fleet::start_on(nats, vec![spec], &auth(&files[1]));
        assert_eq!(fleet.ping(), ["secret1"], "{key} works while it is private");
        SecretFleet {
            fleet,
            files,
            _dir: dir,
        }
    }

    /// Both binaries refuse their file, holding `what`, once group or others can read it,
    /// each in one line that names the file, what it holds and the fix; both work again
    /// once it is private again.
    fn assert_refused_when_readable(mut self, what: &str) {
        let [node_file, client_file] = &self.files;
        for wide in [0o644, 0o640] {
            chmod(node_file, wide);
            chmod(client_file, wide);
            let line = |path: &Path, binary: &str| {
                format!(
                    "{binary}: broker_auth: {p}: {what} is accessible by other users (mode {wide:04o}); run chmod 600 {p}",
                    p = path.display()
                )
            };
            let run = mco(
                &self.fleet.client_config(),
                &["ping"],
                Duration::from_secs(30),
            );
            assert_eq!(run.code, Some(1), "{run:?}");
            assert_eq!(run.stderr, format!("{}\n", line(client_file, "mco")));

            let node = &mut self.fleet.nodes[0];
            node.terminate(Duration::from_secs(10));
            node.start_again();
            let status = node.wait_for_exit(Duration::from_secs(20));
            assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", node.log());
            let log = node.log();
            assert_eq!(
                log.lines().last(),
                Some(line(node_file, "mcod").as_str()),
                "{log}"
            );
        }
        chmod(node_file, 0o600);
        chmod(client_file, 0o600);
        self.fleet.nodes[0].start_again();
        self.fleet.wait_for_all(Duration::from_secs(15));
    }
}

#[test]
fn a_readable_nkey_seed_is_refused_by_mcod_and_mco() {
    let tmp = tempfile::tempdir().unwrap();
    let (nats, seed) = nkey_broker(tmp.path());
    SecretFleet::start(nats, "nkey_seed_file", &seed, "").assert_refused_when_readable("nkey seed");
}

#[test]
fn a_readable_tls_client_key_is_refused_by_mcod_and_mco() {
    let ca = TestCa::new("mco-test-nats-ca");
    let (server_cert, server_key) = ca.issue("broker", "IP:127.0.0.1,DNS:localhost");
    let (client_cert, client_key) = ca.issue("client", "DNS:client");
    // The broker requires a client certificate, so the key really is used.
    let args: Vec<String> = [
        "--tlsverify",
        "--tlscert",
        &server_cert.display().to_string(),
        "--tlskey",
        &server_key.display().to_string(),
        "--tlscacert",
        &ca.cert().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let other = format!(
        "tls_ca_file = {:?}\ntls_cert_file = {:?}\n",
        ca.cert().display().to_string(),
        client_cert.display().to_string()
    );
    SecretFleet::start(
        NatsServer::start_with_args(true, &args),
        "tls_key_file",
        &std::fs::read_to_string(client_key).unwrap(),
        &other,
    )
    .assert_refused_when_readable("TLS private key");
}

/// A `.creds` file as `nsc` writes it: a user JWT and the user's nkey seed.
fn creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[test]
fn a_readable_creds_file_is_refused_by_mcod_and_mco() {
    let user = nkeys::KeyPair::new_user();
    // The broker runs without accounts and does not look at the JWT: what matters here is
    // that the file is used while private and refused when not.
    let text = creds(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln",
        &user.seed().unwrap(),
    );
    SecretFleet::start(NatsServer::start(), "creds_file", &text, "")
        .assert_refused_when_readable("NATS credentials file");
}
