//! The Debian packages, for real on this machine: `scripts/package.sh` builds `mco` and `mcod`
//! (from the test build's binaries), `dpkg -i` installs them with their files in place,
//! `mcod --check` passes on the installed configuration once the node's keys are filled in,
//! the installed `mcod` started from its unit's command line answers `mco ping`, and a purge
//! leaves no process, no configuration and no state behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mco_testsupport::{require_program, Fleet, MachineLock};

use crate::wait_until;

const PACKAGES: [&str; 2] = ["mco", "mcod"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Whether any process runs the program at `path`.
fn running(path: &Path) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path().join("exe")).ok())
        .any(|exe| exe == path)
}

/// Purges the packages and the key files the test put in /etc/mco, however the test ends.
struct Uninstall(Vec<PathBuf>);

impl Drop for Uninstall {
    fn drop(&mut self) {
        for file in &self.0 {
            let _ = std::fs::remove_file(file);
        }
        let _ = Command::new("dpkg")
            .args(["--purge", "mco", "mcod"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn the_packages_install_run_and_purge_cleanly() {
    require_program("dpkg", "this test needs a Debian system");
    let _machine = MachineLock::acquire("dpkg");
    assert!(
        PACKAGES.iter().all(|p| !installed(p)) && !Path::new("/etc/mco").exists(),
        "this test installs the mco and mcod packages: it needs them not installed and /etc/mco absent"
    );
    run(
        "bash",
        &["scripts/package.sh", "--profile", "dev", "--no-build"],
    );
    let debs: Vec<String> = PACKAGES
        .iter()
        .map(|p| {
            workspace()
                .join(format!("target/debian/{p}_0.1.0-1_amd64.deb"))
                .display()
                .to_string()
        })
        .collect();
    let etc = Path::new("/etc/mco");
    let keys = [
        etc.join("issuer.pub"),
        etc.join("node.key"),
        etc.join("node.token"),
    ];
    let _uninstall = Uninstall(keys.to_vec());
    run("dpkg", &["-i", &debs[0], &debs[1]]);

    for file in [
        "/usr/bin/mco",
        "/usr/bin/mcod",
        "/lib/systemd/system/mcod.service",
        "/lib/systemd/system/mcod-registry.service",
        "/etc/mco/mcod.toml",
        "/etc/mco/client.toml",
        "/usr/share/mco/ddl/rpcutil.json",
        "/usr/share/man/man1/mco-rpc.1.gz",
        "/usr/share/bash-completion/completions/mco",
        "/usr/share/zsh/vendor-completions/_mco",
        "/usr/share/fish/vendor_completions.d/mco.fish",
    ] {
        assert!(Path::new(file).is_file(), "{file} is not installed");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/etc/mco/mcod.toml")
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the daemon's config is private");
    let user = run("getent", &["passwd", "mco"]);
    assert!(!user.stdout.is_empty(), "the mco system user exists");
    let version = run("/usr/bin/mco", &["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("mco "));

    // The node's keys, as an operator fills them in, and this test's broker.
    let fleet = Fleet::start(vec![]);
    let identity = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let (key, token) = fleet.keys.issue("server", &identity, &[]);
    std::fs::copy(fleet.keys.issuer_pub(), &keys[0]).unwrap();
    std::fs::copy(&key, &keys[1]).unwrap();
    std::fs::copy(&token, &keys[2]).unwrap();
    std::fs::set_permissions(&keys[1], std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = std::fs::read_to_string("/etc/mco/mcod.toml").unwrap();
    std::fs::write(
        "/etc/mco/mcod.toml",
        format!("brokers = [{:?}]\n{config}", fleet.nats.url()),
    )
    .unwrap();
    let check = run(
        "/usr/bin/mcod",
        &["--config", "/etc/mco/mcod.toml", "--check"],
    );
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains(": OK (identity "), "{said}");

    // The installed unit's command line, as systemd would run it.
    let unit = std::fs::read_to_string("/lib/systemd/system/mcod.service").unwrap();
    let exec_start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words = shlex::split(exec_start).unwrap();
    let mut daemon = Command::new(&words[0])
        .args(&words[1..])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the installed mcod to answer",
            Duration::from_secs(30),
            || fleet.ping() == [identity.clone()],
        )
    }));
    // SAFETY: kill(2) on the pid of a child this test started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let stopped = daemon.wait().unwrap();
    if let Err(panic) = answered {
        std::panic::resume_unwind(panic);
    }
    assert!(stopped.success(), "{stopped:?}");
    assert!(Path::new("/var/lib/mco/replay.journal").is_file());

    // Purge: the package's files, its configuration and its state go; nothing runs.
    for file in &keys {
        std::fs::remove_file(file).unwrap();
    }
    run("dpkg", &["--purge", "mco", "mcod"]);
    assert!(PACKAGES.iter().all(|p| !installed(p)));
    for gone in ["/usr/bin/mcod", "/usr/bin/mco", "/etc/mco", "/var/lib/mco"] {
        assert!(!Path::new(gone).exists(), "{gone} is left after the purge");
    }
    assert!(!running(Path::new("/usr/bin/mcod")), "an mcod still runs");
}
