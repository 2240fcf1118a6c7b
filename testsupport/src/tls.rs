//! [`TestCa`]: a certificate authority made with the real `openssl`, for TLS tests.
//!
//! Not for: anything outside tests.

use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use crate::process::write;
use crate::require_program;

/// A certificate authority for one test, made with the real `openssl`: its certificate, and
/// server certificates it signs for the names a test asks for. Deleted when dropped.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// A new CA whose certificate says `CN=<name>`.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let ca = TestCa { dir };
        ca.openssl(
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                "ca.pem", "-days", "2", "-subj",
            ],
            &format!("/CN={name}"),
        );
        ca
    }

    /// The CA's certificate (PEM): what a client trusts.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `common_name` with the subject alternative names `sans`
    /// (`"DNS:db.example.net,IP:127.0.0.1"`), signed by this CA; returns its certificate and
    /// private key files (the key mode 0600).
    pub fn issue(&self, common_name: &str, sans: &str) -> (PathBuf, PathBuf) {
        let cert = format!("{common_name}.pem");
        let key = format!("{common_name}.key");
        let csr = format!("{common_name}.csr");
        let ext = format!("{common_name}.ext");
        write(
            &self.dir.path().join(&ext),
            &format!("subjectAltName={sans}\n"),
        );
        self.openssl(
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
            ],
            &format!("/CN={common_name}"),
        );
        self.openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
            ],
            &cert,
        );
        let key = self.dir.path().join(key);
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", key.display()));
        }
        (self.dir.path().join(cert), key)
    }

    fn openssl(&self, args: &[&str], last: &str) {
        let openssl = require_program("openssl", "apt-get install openssl");
        let out = Command::new(openssl)
            .args(args)
            .arg(last)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?} {last}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
