//! What a node trusts and enforces: the issuers whose tokens it accepts, its own signing
//! credentials, replay memory, the longest TTL it honours, action policies, the audit log
//! and the rate limit on refusals. Loaded at start from [`Settings`]; the pipeline consults
//! it at each security stage. Only the action policies change afterwards (reloaded on
//! SIGHUP, [`crate::reload`]): keys, trust and the replay memory stay as they started.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use mco_spec::security::{Credentials, TokenCache, Trust};

use crate::audit::{AuditLog, Redaction, RefusalGate};
use crate::config::Settings;
use crate::policy::PolicySet;
use crate::replay::ReplayGuard;

/// Why the security settings could not be put in force. Each displays as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// A key or token file is unusable.
    #[error(transparent)]
    Key(#[from] mco_keys::KeyFileError),
    /// The node's token is for another identity, or not a server token.
    #[error("token_file: {0}")]
    Token(String),
    /// A policy file is unusable.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The state directory or the replay journal in it cannot be used.
    #[error("state_dir {path}: {reason}")]
    State {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// The audit log cannot be opened.
    #[error("audit_file {path}: {source}")]
    Audit {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The node's security state.
///
/// `repr(C)`: what every request reads (trust, the time limits, policies, the audit log,
/// the replay memory) comes first, in the order a request reads it.
#[derive(Debug)]
#[repr(C)]
pub struct Security {
    /// Trusted issuers; `None` when running insecure (unsigned requests accepted).
    pub trust: Option<Trust>,
    /// Tolerated clock difference, milliseconds.
    pub clock_skew_ms: u64,
    /// The longest TTL honoured, milliseconds: a request expires at most this long after
    /// it was made, whatever it asks for.
    pub max_ttl_ms: u64,
    /// Action policies, when a policy directory is configured ([`Security::policies`]).
    policies: ArcSwapOption<PolicySet>,
    /// The audit log, when configured.
    pub audit: Option<AuditLog>,
    /// Request ids of requests that ran, within their validity window.
    pub replay: Mutex<ReplayGuard>,
    /// The node's own key and token, for signing replies; `None` when insecure.
    pub credentials: Option<Credentials>,
    /// Which inputs the audit log never shows.
    pub redaction: Redaction,
    /// The rate limit on audited and logged refusals.
    pub refusals: Mutex<RefusalGate>,
    /// Caller tokens already verified, so each request costs one signature check.
    pub tokens: TokenCache,
}

impl Security {
    /// Unsigned operation with no policies or audit (tests, and `insecure = true`), with
    /// the replay memory, TTL cap and refusal limit `settings` give.
    pub fn insecure(settings: &Settings) -> Security {
        Security {
            trust: None,
            credentials: None,
            replay: Mutex::new(ReplayGuard::new(
                settings.replay_cache_size,
                settings.replay_caller_share,
            )),
            clock_skew_ms: settings.clock_skew_seconds.saturating_mul(1000),
            max_ttl_ms: settings.max_ttl_seconds.saturating_mul(1000),
            policies: ArcSwapOption::empty(),
            audit: None,
            redaction: Redaction::new(&settings.audit_redact),
            refusals: Mutex::new(RefusalGate::new(settings.audit_refusals_per_second)),
            tokens: TokenCache::default(),
        }
    }

    /// The action policies in force; a request keeps the set it was checked with even if a
    /// reload replaces it meanwhile.
    pub fn policies(&self) -> Option<Arc<PolicySet>> {
        // Read without a lock: every request reads it, most nodes have none.
        self.policies.load_full()
    }

    /// Puts `policies` in force for the requests that come next.
    pub fn set_policies(&self, policies: Option<PolicySet>) {
        self.policies.store(policies.map(Arc::new));
    }

    /// When `request` stops being acceptable here: its own expiry or the node's TTL cap,
    /// whichever comes first (Unix milliseconds).
    pub fn expires_at(&self, request: &mco_spec::Request) -> u64 {
        request
            .expires_at()
            .min(request.time.saturating_add(self.max_ttl_ms))
    }

    /// Loads keys, token, policies and the audit log as `settings` say.
    pub fn load(settings: &Settings) -> Result<Security, SecurityError> {
        let mut security = Security::insecure(settings);
        if settings.insecure {
            tracing::warn!(
                "INSECURE: insecure = true, so requests are NOT verified and replies are NOT signed; \
                 anyone who can publish to the broker can run any action on this node"
            );
        } else {
            let trust = trust_from(settings)?;
            let (Some(key), Some(token)) = (&settings.key_file, &settings.token_file) else {
                return Err(SecurityError::Token(
                    "key_file and token_file are required".into(),
                ));
            };
            let credentials = mco_keys::read_credentials(key, token)?;
            let parsed = mco_spec::security::Token::parse(&credentials.token)
                .map_err(|e| SecurityError::Token(e.to_string()))?;
            let claims = parsed.claims();
            if claims.role != mco_spec::security::TokenRole::Server
                || claims.name != settings.identity
            {
                return Err(SecurityError::Token(format!(
                    "the token is a {} token for {:?}, not a server token for {:?}",
                    claims.role, claims.name, settings.identity
                )));
            }
            if parsed.holder_key() != &credentials.key.verifying_key() {
                return Err(SecurityError::Token(
                    "the token is for another key than key_file".into(),
                ));
            }
            security.trust = Some(trust);
            security.credentials = Some(credentials);
        }
        if let Some(dir) = &settings.policy_dir {
            security.set_policies(Some(PolicySet::load_dir(dir, settings.allow_unconfigured)?));
        } else {
            tracing::info!(
                "no policy_dir: every verified caller may call every action its token allows"
            );
        }
        security.replay = Mutex::new(open_replay_journal(settings)?);
        if let Some(path) = &settings.audit_file {
            security.audit = Some(AuditLog::open(path).map_err(|source| SecurityError::Audit {
                path: path.display().to_string(),
                source,
            })?);
        }
        Ok(security)
    }
}

/// The issuers `settings` trust (their `issuer_keys` files) and the allowed clock skew:
/// what a node checks requests with and the registry service checks registrations with.
pub(crate) fn trust_from(settings: &Settings) -> Result<Trust, mco_keys::KeyFileError> {
    let issuers = settings
        .issuer_keys
        .iter()
        .map(|p| mco_keys::read_public_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Trust {
        issuers,
        clock_skew_secs: settings.clock_skew_seconds,
    })
}

/// The replay memory, kept in `<state_dir>/replay.journal` so it survives restarts.
fn open_replay_journal(settings: &Settings) -> Result<ReplayGuard, SecurityError> {
    let dir = &settings.state_dir;
    let state_error = |reason: String| SecurityError::State {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        state_error(format!(
            "cannot create it ({e}); set state_dir to a directory mcod may write"
        ))
    })?;
    let path = dir.join("replay.journal");
    ReplayGuard::with_journal(
        settings.replay_cache_size,
        settings.replay_caller_share,
        &path,
        mco_spec::message::now_millis(),
    )
    .map_err(|e| state_error(e.to_string()))
}
