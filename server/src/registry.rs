//! The registry service (`mcod registry`): listens to the registrations nodes publish
//! ([`crate::registration`]) in every configured collective, believes only those signed by
//! the node they describe with a token from a trusted issuer, stores them in the registry
//! database ([`mco_discovery::registry::Registry`]) and forgets nodes that stopped
//! registering. `mco --dm registry` reads the same database.
//!
//! A registration that is malformed, unsigned (on a secure fleet), forged, signed by another
//! node, too old, from the future or for a collective the node does not claim is counted and
//! logged, never stored, and never stops the service. A database that fails is logged per
//! message and retried with the next one.
//!
//! Not for: publishing registrations, or answering discovery (clients read the database).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SelectAll, StreamExt};
use mco_discovery::registry::{Registry, RegistryError};
use mco_spec::message::now_millis;
use mco_spec::registration::{Registration, RegistrationEnvelope};
use mco_spec::security::{TokenCache, Trust};

use crate::config::Settings;
use crate::daemon::DaemonError;

/// Why the registry service could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryServiceError {
    /// The database could not be opened or set up.
    #[error(transparent)]
    Store(#[from] RegistryError),
    /// The broker connection or a subscription failed.
    #[error(transparent)]
    Broker(#[from] DaemonError),
    /// An issuer key file is unusable.
    #[error(transparent)]
    Key(#[from] mco_keys::KeyFileError),
    /// A database call did not come back (its thread panicked).
    #[error("the registry database thread failed: {0}")]
    Thread(String),
}

/// How the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOptions {
    /// The database URL: an SQLite file, or `postgres://...`.
    pub db: String,
    /// Nodes not heard from for this long leave discovery and are deleted.
    pub expire_after: Duration,
}

impl RegistryOptions {
    /// The default database: `registry.sqlite` in mcod's state directory.
    pub fn default_db(settings: &Settings) -> String {
        settings
            .state_dir
            .join("registry.sqlite")
            .display()
            .to_string()
    }
}

/// The service's counters.
#[derive(Debug, Default)]
pub struct RegistryStats {
    /// Registrations received.
    pub received: AtomicU64,
    /// Registrations stored.
    pub stored: AtomicU64,
    /// Registrations refused (malformed, unverified, out of their time window).
    pub rejected: AtomicU64,
    /// Registrations that could not be written to the database.
    pub failed: AtomicU64,
    /// Nodes forgotten after they stopped registering.
    pub expired: AtomicU64,
}

/// Decides whether a registration that arrived in `collective` is believable; returns it,
/// or why not. `trust` is `None` on an insecure fleet (unsigned registrations accepted);
/// `tokens` remembers the node tokens already verified.
pub fn check(
    payload: &[u8],
    collective: &str,
    trust: Option<&Trust>,
    tokens: &TokenCache,
    expire_after: Duration,
    now_ms: u64,
) -> Result<Registration, String> {
    let envelope = RegistrationEnvelope::decode(payload).map_err(|e| e.to_string())?;
    let token = match trust {
        Some(trust) => Some(
            tokens
                .verify(&envelope, trust, now_ms / 1000)
                .map_err(|e| format!("not verified: {e}"))?,
        ),
        None => None,
    };
    let registration = envelope.body().map_err(|e| e.to_string())?;
    let who = &registration.identity;
    if let Some(token) = &token {
        let claims = token.claims();
        if claims.name != *who {
            return Err(format!(
                "{who:?} is signed by {:?}: a node may only register itself",
                claims.name
            ));
        }
        if let Some(bad) = registration
            .collectives
            .iter()
            .find(|c| !claims.collectives.is_empty() && !claims.collectives.contains(c))
        {
            return Err(format!(
                "{who}: its token does not allow collective {bad:?}"
            ));
        }
    }
    if !registration.collectives.iter().any(|c| c == collective) {
        return Err(format!(
            "{who}: arrived in collective {collective:?}, which it does not claim"
        ));
    }
    let skew_ms = trust.map_or(30, |t| t.clock_skew_secs).saturating_mul(1000);
    if registration.time > now_ms.saturating_add(skew_ms) {
        return Err(format!(
            "{who}: made {} s in the future (check the node's clock)",
            (registration.time - now_ms) / 1000
        ));
    }
    let age = now_ms.saturating_sub(registration.time);
    if age > u64::try_from(expire_after.as_millis()).unwrap_or(u64::MAX) {
        return Err(format!(
            "{who}: made {} s ago, longer than --expire-after (late, replayed, or the node's clock is behind)",
            age / 1000
        ));
    }
    Ok(registration)
}

/// Runs `f` on the database off the async workers (both drivers block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RegistryServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RegistryServiceError::Thread(e.to_string()))
}

/// Runs the registry service until `shutdown` completes.
pub async fn serve(
    settings: &Settings,
    options: RegistryOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RegistryServiceError> {
    let trust = if settings.insecure {
        tracing::warn!(
            "INSECURE: insecure = true, so registrations are NOT verified: anyone who can publish to the broker can add nodes to the registry"
        );
        None
    } else {
        Some(crate::security::trust_from(settings)?)
    };
    let db = options.db.clone();
    let expire_after = options.expire_after;
    let registry = blocking(move || -> Result<Registry, RegistryError> {
        let registry = Registry::open(&db)?;
        registry.set_expire_after(expire_after)?;
        Ok(registry)
    })
    .await??;
    let registry = Arc::new(registry);
    let result = listen(settings, &registry, trust, expire_after, shutdown).await;
    // The PostgreSQL driver owns a runtime of its own, which must not be dropped on an async
    // worker.
    let _ = blocking(move || drop(registry)).await;
    result
}

async fn listen(
    settings: &Settings,
    registry: &Arc<Registry>,
    trust: Option<Trust>,
    expire_after: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RegistryServiceError> {
    let client = crate::daemon::connect(
        settings,
        mco_transport::BrokerRole::Registry,
        format!("mcod registry {}", settings.identity),
    )
    .await?;
    let mut subscriptions = SelectAll::new();
    for collective in &settings.collectives {
        let subject = mco_spec::subjects::registration(collective);
        let subscriber = crate::daemon::subscribe(&client, &subject).await?;
        let collective = collective.clone();
        subscriptions.push(subscriber.map(move |m| (collective.clone(), m)).boxed());
    }
    tracing::info!(
        database = registry.location(),
        collectives = ?settings.collectives,
        expire_after_seconds = expire_after.as_secs(),
        "mcod registry ready"
    );

    let stats = RegistryStats::default();
    // Deleting is housekeeping: discovery already leaves out expired nodes.
    let mut purge = tokio::time::interval(
        (expire_after / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)),
    );
    let tokens = TokenCache::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = purge.tick() => {
                let registry = registry.clone();
                match blocking(move || registry.forget_older_than(expire_after)).await? {
                    Ok(0) => {}
                    Ok(n) => {
                        stats.expired.fetch_add(n as u64, Ordering::Relaxed);
                        tracing::info!("forgot {n} node(s) not heard from for {} s", expire_after.as_secs());
                    }
                    Err(e) => tracing::warn!("cannot expire old nodes: {e}"),
                }
            }
            message = subscriptions.next() => {
                let Some((collective, message)) = message else { break };
                stats.received.fetch_add(1, Ordering::Relaxed);
                let registration = match check(&message.payload, &collective, trust.as_ref(), &tokens, expire_after, now_millis()) {
                    Ok(r) => r,
                    Err(why) => {
                        let n = stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::warn!("registration rejected ({n} so far): {why}");
                        continue;
                    }
                };
                let registry = registry.clone();
                let identity = registration.identity.clone();
                match blocking(move || registry.record(&registration)).await? {
                    Ok(stored) => {
                        if stored {
                            stats.stored.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!("registration of {identity} in {collective} (stored: {stored})");
                    }
                    Err(e) => {
                        let n = stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::warn!("cannot store the registration of {identity} ({n} failed so far): {e}");
                    }
                }
            }
        }
    }
    let snapshot = |c: &AtomicU64| c.load(Ordering::Relaxed);
    tracing::info!(
        received = snapshot(&stats.received),
        stored = snapshot(&stats.stored),
        rejected = snapshot(&stats.rejected),
        failed = snapshot(&stats.failed),
        expired = snapshot(&stats.expired),
        "mcod registry stopped"
    );
    drop(subscriptions);
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use mco_spec::security::{encode_public_key, Credentials, Token, TokenClaims, TokenRole};
    use serde_json::json;

    const NOW: u64 = 1_763_856_000_000;

    fn registration(identity: &str, time: u64) -> Registration {
        Registration {
            identity: identity.into(),
            collectives: vec!["mco".into(), "uk".into()],
            facts: json!({"country": "uk"}),
            classes: vec![],
            agents: vec!["rpcutil".into()],
            time,
        }
    }

    fn credentials(issuer: &SigningKey, name: &str, collectives: &[&str]) -> Credentials {
        let key = SigningKey::from_bytes(&[9; 32]);
        let claims = TokenClaims {
            role: TokenRole::Server,
            name: name.into(),
            public_key: encode_public_key(&key.verifying_key()),
            issuer: encode_public_key(&issuer.verifying_key()),
            not_before: 0,
            expires: u64::MAX / 2,
            agents: vec![],
            collectives: collectives.iter().map(|c| c.to_string()).collect(),
        };
        Credentials {
            key,
            token: Token::issue(&claims, issuer),
        }
    }

    fn signed(r: &Registration, c: &Credentials) -> Vec<u8> {
        RegistrationEnvelope::signed(r, c)
            .unwrap()
            .to_bytes()
            .unwrap()
    }

    #[test]
    fn only_believable_registrations_pass() {
        let issuer = SigningKey::from_bytes(&[1; 32]);
        let trust = Trust {
            issuers: vec![issuer.verifying_key()],
            clock_skew_secs: 30,
        };
        let web1 = credentials(&issuer, "web1", &[]);
        let minute = Duration::from_secs(60);
        let good = signed(&registration("web1", NOW - 1000), &web1);
        assert!(check(
            &good,
            "uk",
            Some(&trust),
            &TokenCache::default(),
            minute,
            NOW
        )
        .is_ok());

        let stranger = credentials(&SigningKey::from_bytes(&[2; 32]), "web1", &[]);
        let unsigned = RegistrationEnvelope::unsigned(&registration("web1", NOW))
            .unwrap()
            .to_bytes()
            .unwrap();
        let table: Vec<(Vec<u8>, &str, &str)> = vec![
            (b"{not json".to_vec(), "mco", "malformed"),
            (unsigned.clone(), "mco", "not verified"),
            (
                signed(&registration("web1", NOW), &stranger),
                "mco",
                "not verified",
            ),
            (
                signed(&registration("db1", NOW), &web1),
                "mco",
                "a node may only register itself",
            ),
            (good.clone(), "eu", "which it does not claim"),
            (
                signed(&registration("web1", NOW - 120_000), &web1),
                "mco",
                "made 120 s ago",
            ),
            (
                signed(&registration("web1", NOW + 120_000), &web1),
                "mco",
                "in the future",
            ),
            (
                signed(
                    &registration("web1", NOW),
                    &credentials(&issuer, "web1", &["mco"]),
                ),
                "mco",
                "does not allow collective \"uk\"",
            ),
        ];
        for (payload, collective, want) in table {
            let why = check(
                &payload,
                collective,
                Some(&trust),
                &TokenCache::default(),
                minute,
                NOW,
            )
            .unwrap_err();
            assert!(why.contains(want), "{want:?} not in {why:?}");
        }
        // An insecure registry takes unsigned registrations, and still checks the rest.
        assert!(check(&unsigned, "mco", None, &TokenCache::default(), minute, NOW).is_ok());
        assert!(check(&unsigned, "eu", None, &TokenCache::default(), minute, NOW).is_err());
    }
}
