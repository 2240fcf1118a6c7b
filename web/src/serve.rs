//! Listening: the start-up rule (anything but loopback needs TLS and callers, or the gateway
//! refuses to start), plain HTTP with axum, HTTPS with rustls on ring, and a graceful stop.
//! Not for: what is served (`api`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

use crate::config::WebSettings;

/// Why the gateway will not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Listening beyond this machine without TLS or without callers.
    #[error("{0}")]
    Unsafe(String),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Refuses settings that would expose the fleet: a non-loopback address needs TLS (tokens
/// and results would cross the network in clear) and at least one caller (or nothing could
/// ever be called, which is a mistake worth stopping on).
pub fn check_exposure(settings: &WebSettings, callers: usize) -> Result<(), ServeError> {
    if settings.listen.ip().is_loopback() {
        return Ok(());
    }
    if settings.tls.is_none() {
        return Err(ServeError::Unsafe(format!(
            "refusing to listen on {} without TLS: bearer tokens and results would cross the network in clear; set tls_cert and tls_key in [web], or listen on 127.0.0.1 behind a TLS proxy",
            settings.listen
        )));
    }
    if callers == 0 {
        return Err(ServeError::Unsafe(format!(
            "refusing to listen on {} with no callers: add one with `mco-web token add NAME` (callers_file in [web])",
            settings.listen
        )));
    }
    Ok(())
}

/// The rustls server configuration from a PEM certificate chain and private key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ServeError> {
    let tls = |m: String| ServeError::Tls(m);
    mco_keys::check_secret_file(key, "TLS private key").map_err(|e| tls(e.to_string()))?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| tls(format!("{}: {e}", p.display())));
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(tls(format!("{}: no certificate in it", cert.display())));
    }
    let private = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| tls(format!("{}: no private key in it", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds the settings' address.
pub async fn bind(settings: &WebSettings) -> Result<TcpListener, ServeError> {
    TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen,
            source,
        })
}

/// Serves `app` on `listener` until `shutdown` completes; over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: keep serving those already connected.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            // A client that never finishes its handshake must not hold a task forever.
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let stream = match handshake.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake: {e}");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_go_without_tls_and_callers() {
        let mut s = WebSettings::default();
        assert!(check_exposure(&s, 0).is_ok());
        s.listen = "0.0.0.0:8080".parse().unwrap();
        let e = check_exposure(&s, 3).unwrap_err().to_string();
        assert!(e.contains("without TLS"), "{e}");
        s.tls = Some(("c".into(), "k".into()));
        let e = check_exposure(&s, 0).unwrap_err().to_string();
        assert!(e.contains("no callers"), "{e}");
        assert!(check_exposure(&s, 1).is_ok());
    }
}
