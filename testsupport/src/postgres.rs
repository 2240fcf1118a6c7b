//! [`Postgres`]: a real PostgreSQL server from the machine's binaries in a temporary
//! directory on a free loopback port, optionally with TLS ([`PostgresTls`]).
//!
//! Not for: the registry service that uses it (see [`crate::registry`]).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port;
use crate::process::{die_with_parent, wait_with_limit, write};

/// Where PostgreSQL's server programs are: `$MCO_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout). Panics with how to install them.
pub fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MCO_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server programs (initdb, postgres) were not found in /usr/lib/postgresql/*/bin: \
             install them with `apt-get install postgresql` (or run scripts/install-deps.sh), or set MCO_PG_BIN"
        )
    })
}

/// A real PostgreSQL server for one test: its own cluster in a temporary directory, on a free
/// loopback port, trusting local connections, stopped (and deleted) when dropped.
///
/// PostgreSQL refuses to run as root; when the tests run as root, the server runs as the
/// `postgres` user that Debian's package creates.
pub struct Postgres {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

/// TLS for a test's PostgreSQL server: `ssl = on` with this certificate and key (copied into
/// the cluster, where the server's user owns them with the modes PostgreSQL insists on).
#[derive(Debug, Clone)]
pub struct PostgresTls {
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Accept TCP connections over TLS only (`hostssl` lines in `pg_hba.conf`, no `host`).
    pub hostssl_only: bool,
}

impl Postgres {
    /// Creates a cluster and starts the server without TLS; panics with the server's log if
    /// it does not come up.
    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// Like [`Postgres::start`], with `ssl = on` as `tls` says.
    pub fn start_with_tls(tls: &PostgresTls) -> Postgres {
        Postgres::start_with(Some(tls))
    }

    fn start_with(tls: Option<&PostgresTls>) -> Postgres {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // SAFETY: geteuid has no preconditions.
        let owner = if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = user_ids("postgres").unwrap_or_else(|| {
                panic!("running as root, and there is no postgres user to run PostgreSQL as: install Debian's postgresql package")
            });
            chown(dir.path(), uid, gid);
            Some((uid, gid))
        } else {
            None
        };
        let as_owner = |program: &str| {
            let mut command = Command::new(bin.join(program));
            if let Some((uid, gid)) = owner {
                command.uid(uid).gid(gid);
            }
            command
                .env("LC_ALL", "C")
                .env_remove("PGDATA")
                .current_dir(dir.path());
            command
        };
        let data = dir.path().join("data");
        let init = as_owner("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            init.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&init.stdout),
            String::from_utf8_lossy(&init.stderr)
        );
        let mut ssl_args: Vec<String> = Vec::new();
        if let Some(tls) = tls {
            // PostgreSQL refuses a key that its user does not own or that others can read.
            let copy = |from: &Path, name: &str, mode: u32| {
                use std::os::unix::fs::PermissionsExt;
                let to = dir.path().join(name);
                std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
                if let Some((uid, gid)) = owner {
                    chown(&to, uid, gid);
                }
                to
            };
            let cert = copy(&tls.cert, "server.crt", 0o644);
            let key = copy(&tls.key, "server.key", 0o600);
            ssl_args = vec![
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", cert.display()),
                "-c".into(),
                format!("ssl_key_file={}", key.display()),
            ];
            if tls.hostssl_only {
                write(
                    &data.join("pg_hba.conf"),
                    "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
                );
            }
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).ok();
        let mut command = as_owner("postgres");
        command
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
            ])
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            // A test's data need not survive a crash: skip the disk flushes.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(&ssl_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        let mut server = Postgres {
            child: Some(child),
            port,
            dir,
        };
        let ready = bin.join("pg_isready");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = Command::new(&ready)
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if up {
                break;
            }
            let exited = server
                .child
                .as_mut()
                .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            assert!(
                !exited && Instant::now() < deadline,
                "postgres did not come up on port {port}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Stops the server (fast shutdown: sessions are cut, nothing is waited for).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child by pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            if wait_with_limit(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// chown(2), panicking with the reason when it fails.
fn chown(path: &Path, uid: u32, gid: u32) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: chown(2) with a NUL-terminated string we own.
    let changed = unsafe { libc::chown(c_path.as_ptr(), uid, gid) };
    assert_eq!(
        changed,
        0,
        "chown {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// The uid and gid of the user called `name`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy two integers out
    // before any other call could overwrite it.
    unsafe {
        let entry = libc::getpwnam(name.as_ptr());
        if entry.is_null() {
            return None;
        }
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}
