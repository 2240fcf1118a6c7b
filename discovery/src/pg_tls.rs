//! How the registry reaches PostgreSQL: libpq's `sslmode` and `sslrootcert` URL parameters,
//! the mode used when the URL names none, the rustls configuration for each mode, and one
//! clear sentence for a connection that TLS refused.
//!
//! | `sslmode` | encrypted | server certificate checked |
//! | --- | --- | --- |
//! | `disable` | no | no |
//! | `prefer` | when the server offers TLS | against `sslrootcert` when one is given |
//! | `require` | yes | against `sslrootcert` when one is given (its chain, as libpq does) |
//! | `verify-ca` | yes | its chain, to `sslrootcert` (required) |
//! | `verify-full` | yes | its chain, to `sslrootcert` (required), and the host name |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the CAs the machine trusts
//! (only with `verify-full`, as in libpq 16).
//!
//! Without `sslmode` the mode is chosen by where the server is ([`default_mode`]): `prefer`
//! when every host is this machine (a Unix socket, `localhost` or a loopback address: nothing
//! crosses a network, and PostgreSQL offers no TLS on sockets anyway); otherwise `verify-full`
//! when `sslrootcert` is given and `require` when not. libpq's own default is `prefer`
//! everywhere, which talks in clear to a server without TLS and lets anyone on the path make
//! it so; a registry holds every node's facts, so across a network it fails closed, and an
//! operator who really wants clear text writes `sslmode=disable`. The host *name* decides,
//! not `hostaddr`: the name is what the operator says they reach, and what the certificate is
//! checked against.
//!
//! A certificate that does not verify, or a server without TLS where TLS is required, fails
//! the connection; nothing falls back to plain text.
//!
//! Not for: running statements (the registry does), client certificates (`sslcert`,
//! `sslkey`: the driver refuses them as unknown options; PostgreSQL authenticates the
//! registry by user and password).

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::Host;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode` values that mean something here (`allow`, plain text first, is refused:
/// it is never what a registry wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not supported: use disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCert {
    /// A PEM file.
    File(PathBuf),
    /// The machine's trusted CAs (`sslrootcert=system`; `SSL_CERT_FILE` is honoured).
    System,
}

impl RootCert {
    fn describe(&self) -> String {
        match self {
            RootCert::File(path) => format!("the CA in {}", path.display()),
            RootCert::System => "any CA this system trusts".to_string(),
        }
    }
}

/// The URL split at its query: `(before, query)`. The query starts at the first `?` after
/// the credentials, as the driver reads it (a password may hold a `?`).
pub(crate) fn split_query(url: &str) -> (&str, Option<&str>) {
    let after_at = url.find('@').map_or(0, |i| i + 1);
    match url[after_at..].find('?') {
        Some(i) => (&url[..after_at + i], Some(&url[after_at + i + 1..])),
        None => (url, None),
    }
}

/// A PostgreSQL registry URL made ready to connect: the driver's configuration and how TLS
/// is used.
pub(crate) struct Target {
    config: postgres::Config,
    mode: SslMode,
    root: Option<RootCert>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the driver's configuration: it holds the password.
        f.debug_struct("Target")
            .field("mode", &self.mode)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Why a connection failed.
pub(crate) enum ConnectError {
    /// TLS refused it: a certificate that does not verify, a server without TLS where TLS is
    /// required, or CA certificates that cannot be loaded. One sentence.
    Tls(String),
    /// Anything else, from the driver.
    Driver(postgres::Error),
}

impl Target {
    /// Reads `url` (`postgres://...`): the driver parses everything but `sslmode` and
    /// `sslrootcert`, which are ours.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let (base, query) = split_query(url);
        let mut kept = Vec::new();
        let mut mode = None;
        let mut root = None;
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|e| format!("{key}: {e}"))
            };
            match key {
                "sslmode" => mode = Some(SslMode::parse(&decoded()?)?),
                "sslrootcert" => {
                    root = Some(match decoded()?.as_str() {
                        "system" => RootCert::System,
                        "" => return Err("sslrootcert is empty".to_string()),
                        path => RootCert::File(PathBuf::from(path)),
                    })
                }
                _ => kept.push(pair),
            }
        }
        let driver_url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: postgres::Config = driver_url
            .parse()
            .map_err(|e: postgres::Error| driver_reason(&e))?;
        let mode = mode.unwrap_or_else(|| default_mode(config.get_hosts(), root.as_ref()));
        check(mode, root.as_ref())?;
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        });
        Ok(Target { config, mode, root })
    }

    /// The driver's configuration (to set timeouts).
    pub(crate) fn config_mut(&mut self) -> &mut postgres::Config {
        &mut self.config
    }

    /// Connects, encrypting and verifying as the mode says.
    pub(crate) fn connect(&self) -> Result<postgres::Client, ConnectError> {
        if self.mode == SslMode::Disable {
            return self
                .config
                .connect(postgres::NoTls)
                .map_err(ConnectError::Driver);
        }
        let tls = client_config(self.mode, self.root.as_ref()).map_err(ConnectError::Tls)?;
        self.config
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .map_err(|e| match self.tls_failure(&e) {
                Some(reason) => ConnectError::Tls(reason),
                None => ConnectError::Driver(e),
            })
    }

    /// What TLS refused, in words, when it was TLS that failed `e`.
    fn tls_failure(&self, e: &postgres::Error) -> Option<String> {
        let mode = self.mode.name();
        let mut source = e.source();
        while let Some(err) = source {
            let rustls = err.downcast_ref::<rustls::Error>().or_else(|| {
                err.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if let Some(rustls) = rustls {
                return Some(self.certificate_failure(rustls));
            }
            // The driver reports a server that answered "no TLS" with this text only.
            if err.to_string() == "server does not support TLS" {
                return Some(format!(
                    "the server does not offer TLS and sslmode={mode} needs it: turn ssl on in PostgreSQL, or write sslmode=disable to send the registry in clear"
                ));
            }
            source = err.source();
        }
        None
    }

    fn certificate_failure(&self, e: &rustls::Error) -> String {
        let mode = self.mode.name();
        let trusted = self
            .root
            .as_ref()
            .map_or_else(|| "the CA".to_string(), RootCert::describe);
        match e {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => format!(
                "the server's certificate is not signed by {trusted} (sslmode={mode})"
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected,
                presented,
            }) => {
                // The names come as `DnsName("db.example.net")`; the name is what people read.
                let names: Vec<&str> = presented
                    .iter()
                    .map(|p| {
                        p.split_once('(')
                            .and_then(|(_, rest)| rest.strip_suffix(')'))
                            .map_or(p.as_str(), |inner| inner.trim_matches('"'))
                    })
                    .collect();
                format!(
                    "the server's certificate is not valid for the host name {} (it names {}; sslmode={mode})",
                    expected.to_str(),
                    names.join(", ")
                )
            }
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
                "the server's certificate is not valid for the host name {} (sslmode={mode})",
                self.host_names()
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => format!("the server's certificate has expired (sslmode={mode})"),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            ) => format!(
                "the server's certificate is not valid yet: check this machine's clock (sslmode={mode})"
            ),
            other => format!("the TLS handshake failed: {other} (sslmode={mode})"),
        }
    }

    fn host_names(&self) -> String {
        let names: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        names.join(", ")
    }
}

/// The driver's error with its cause: its own message for a refused connection is only
/// "error connecting to server", for a bad URL only "invalid connection string"; the
/// server's message where there is one.
pub(crate) fn driver_reason(e: &postgres::Error) -> String {
    match (e.as_db_error(), e.source()) {
        (Some(db), _) => db.message().to_string(),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => e.to_string(),
    }
}

/// The mode when the URL names none; see the [module docs](self) for why.
pub(crate) fn default_mode(hosts: &[Host], root: Option<&RootCert>) -> SslMode {
    let local = |host: &Host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    if hosts.iter().all(local) {
        SslMode::Prefer
    } else if root.is_some() {
        SslMode::VerifyFull
    } else {
        SslMode::Require
    }
}

/// Refuses a mode and CA source that do not go together.
fn check(mode: SslMode, root: Option<&RootCert>) -> Result<(), String> {
    match (mode, root) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => Err(format!(
            "sslmode={} needs sslrootcert=FILE (the CA that signed the server's certificate) or sslrootcert=system",
            mode.name()
        )),
        (SslMode::Disable, Some(_)) => Err(
            "sslmode=disable with sslrootcert: nothing would be verified; drop one of them"
                .to_string(),
        ),
        (m, Some(RootCert::System)) if m != SslMode::VerifyFull => Err(format!(
            "sslrootcert=system goes with sslmode=verify-full only (not {}): any certificate from a public CA would do otherwise",
            m.name()
        )),
        _ => Ok(()),
    }
}

/// The CA certificates to trust.
fn load_roots(root: &RootCert) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let certs = read_pem_certificates(path)?;
            let (_, unusable) = store.add_parsable_certificates(certs);
            if store.is_empty() {
                return Err(format!(
                    "sslrootcert {}: no usable CA certificate in it ({unusable} unusable)",
                    path.display()
                ));
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "sslrootcert=system: this system trusts no CA certificates{}",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join("; "))
                    }
                ));
            }
        }
    }
    Ok(store)
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("sslrootcert {}: {e}", path.display());
    // Read first, so a missing file says so rather than "no certificates".
    let bytes = std::fs::read(path).map_err(|e| unreadable(&e))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))
}

/// The rustls configuration for `mode`; ring is the provider, as for the broker connection.
fn client_config(mode: SslMode, root: Option<&RootCert>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Verifier {
        roots: root.map(load_roots).transpose()?.map(Arc::new),
        check_name: mode == SslMode::VerifyFull,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Checks the server's certificate as the mode says: nothing (encryption only, `require` and
/// `prefer` without a CA), its chain (`verify-ca`, and `require`/`prefer` with a CA), or its
/// chain and the host name (`verify-full`). The handshake signatures are always verified, so
/// the server holds the key of the certificate it shows.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.check_name {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(name: &str) -> Host {
        Host::Tcp(name.to_string())
    }

    #[test]
    fn the_default_mode_never_sends_the_registry_in_clear_across_a_network() {
        let ca = RootCert::File("/etc/mco/pg-ca.pem".into());
        let socket = Host::Unix("/var/run/postgresql".into());
        let table: &[(&[Host], Option<&RootCert>, SslMode)] = &[
            (&[tcp("localhost")], None, SslMode::Prefer),
            (&[tcp("LocalHost")], None, SslMode::Prefer),
            (&[tcp("127.0.0.1")], None, SslMode::Prefer),
            (&[tcp("127.3.4.5")], Some(&ca), SslMode::Prefer),
            (&[tcp("::1")], None, SslMode::Prefer),
            (&[tcp("[::1]")], None, SslMode::Prefer),
            (std::slice::from_ref(&socket), None, SslMode::Prefer),
            (&[], None, SslMode::Prefer),
            (&[tcp("db.example.net")], None, SslMode::Require),
            (&[tcp("db.example.net")], Some(&ca), SslMode::VerifyFull),
            (&[tcp("10.0.0.5")], None, SslMode::Require),
            (&[tcp("localhost.example.net")], None, SslMode::Require),
            (
                &[tcp("localhost"), tcp("db2.example.net")],
                None,
                SslMode::Require,
            ),
            (
                &[tcp("db.example.net")],
                Some(&RootCert::System),
                SslMode::VerifyFull,
            ),
        ];
        for (hosts, root, want) in table {
            assert_eq!(default_mode(hosts, *root), *want, "{hosts:?} {root:?}");
        }
    }

    #[test]
    fn urls_keep_the_drivers_options_and_take_ours() {
        let target = Target::parse(
            "postgres://mco:pa%3Fss@db.example.net:5433/mco?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fmco%2Fpg%20ca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(target.mode, SslMode::VerifyFull);
        assert_eq!(
            target.root,
            Some(RootCert::File("/etc/mco/pg ca.pem".into()))
        );
        assert_eq!(target.config.get_hosts(), [tcp("db.example.net")]);
        assert_eq!(target.config.get_ports(), [5433]);
        assert_eq!(target.config.get_password(), Some(&b"pa?ss"[..]));
        assert_eq!(target.config.get_application_name(), Some("x"));
        assert_eq!(
            target.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(
            target.config.get_ssl_mode(),
            postgres::config::SslMode::Require
        );

        let local = Target::parse("postgres://mco@127.0.0.1/mco").unwrap();
        assert_eq!(local.mode, SslMode::Prefer);
        assert_eq!(
            local.config.get_ssl_mode(),
            postgres::config::SslMode::Prefer
        );
        let clear = Target::parse("postgresql://mco@db.example.net/mco?sslmode=disable").unwrap();
        assert_eq!(clear.mode, SslMode::Disable);
        assert_eq!(
            clear.config.get_ssl_mode(),
            postgres::config::SslMode::Disable
        );
        let remote = Target::parse("postgres://mco@db.example.net/mco").unwrap();
        assert_eq!(remote.mode, SslMode::Require);
        // The host name decides, not the address it is reached at.
        let named = Target::parse(
            "postgres://mco@db.example.net/mco?hostaddr=127.0.0.1&sslrootcert=ca.pem",
        )
        .unwrap();
        assert_eq!(named.mode, SslMode::VerifyFull);

        assert_eq!(
            split_query("postgres://u:p?w@h/d?a=1"),
            ("postgres://u:p?w@h/d", Some("a=1"))
        );
        assert_eq!(split_query("postgres://h/d"), ("postgres://h/d", None));
    }

    #[test]
    fn modes_and_cas_that_do_not_go_together_are_refused() {
        let table: &[(&str, &str)] = &[
            (
                "sslmode=verify-full",
                "sslmode=verify-full needs sslrootcert=FILE",
            ),
            (
                "sslmode=verify-ca",
                "sslmode=verify-ca needs sslrootcert=FILE",
            ),
            ("sslmode=allow", "sslmode=allow is not supported"),
            ("sslmode=bogus", "sslmode=bogus is not supported"),
            (
                "sslmode=disable&sslrootcert=ca.pem",
                "nothing would be verified",
            ),
            (
                "sslmode=require&sslrootcert=system",
                "goes with sslmode=verify-full only",
            ),
            ("sslrootcert=", "sslrootcert is empty"),
            ("sslcert=client.pem", "unknown option `sslcert`"),
        ];
        for (query, want) in table {
            let err =
                Target::parse(&format!("postgres://mco@db.example.net/mco?{query}")).unwrap_err();
            assert!(err.contains(want), "{query}: {err}");
        }
    }

    #[test]
    fn unusable_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_roots(&RootCert::File(missing.clone())).unwrap_err();
        assert!(
            err.starts_with(&format!("sslrootcert {}: ", missing.display())),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = load_roots(&RootCert::File(empty.clone())).unwrap_err();
        assert_eq!(
            err,
            format!(
                "sslrootcert {}: no usable CA certificate in it (0 unusable)",
                empty.display()
            )
        );
    }
}
