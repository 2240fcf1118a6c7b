//! Errors, one type per operation, each with a `kind()` a caller can branch on (as
//! async-nats does): [`ConnectError`] from building a client, [`CallError`] from calling,
//! sending and listening, [`DiscoveryError`] from discovering. The kinds keep apart what a
//! caller handles differently — bad input (an HTTP 400), a broker that cannot be reached (a
//! 503), bad credentials — and the error keeps its source error where there is one.
//!
//! Expected outcomes are not errors: a node that did not answer is a row in
//! [`crate::Stats`], a failed action a reply with a status code.
//!
//! Not for: deciding anything (the operations do), or rendering (the error's `Display` is one
//! line; the command line prints it as it is).

use std::fmt;

/// An error of kind `K`: what it is for branching ([`Error::kind`]), one line for people
/// (`Display`), and the error it came from, if any (`source()`).
pub struct Error<K> {
    kind: K,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl<K: Copy> Error<K> {
    /// An error of `kind` saying `message`.
    pub fn new(kind: K, message: impl Into<String>) -> Error<K> {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`; its message is `source`'s.
    pub fn from_source(
        kind: K,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error<K> {
        Error {
            kind,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// An error of `kind` saying `message`, caused by `source` (which `message` already
    /// describes).
    pub fn with_source(
        kind: K,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error<K> {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// The same error as another kind (a discovery error inside a call).
    pub(crate) fn into_kind<L: Copy>(self, kind: L) -> Error<L> {
        Error {
            kind,
            message: self.message,
            source: self.source,
        }
    }
}

impl<K> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<K: fmt::Debug> fmt::Debug for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl<K: fmt::Debug> std::error::Error for Error<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why a client could not be built or connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// A setting is wrong: a broker URL, a collective name, the sender identity.
    InvalidOptions,
    /// The configuration file could not be read or is not valid.
    Config,
    /// Signing is not set up, or the key, token or issuer files are unusable, or the token
    /// is of the wrong role or for another key.
    Credentials,
    /// The broker authentication settings (TLS files, NATS credentials) are unusable.
    BrokerAuth,
    /// No broker answered within the connect timeout.
    Unavailable,
}

/// Why a call (or a send, or a listener) failed before or while it reached the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallErrorKind {
    /// The call is not acceptable: a bad filter, agent or action name, reply subject, node
    /// name or request id, inputs the agent's DDL refuses, a request too large to send.
    InvalidInput,
    /// The collective is not one the client knows.
    UnknownCollective,
    /// The agent's DDL on this client could not be read.
    Ddl,
    /// Discovery failed; the kind says how.
    Discovery(DiscoveryErrorKind),
    /// Publishing or subscribing failed (the connection broke).
    Broker,
    /// The broker queued none of the call's direct requests (a full queue, a node the broker
    /// permissions do not list).
    NotQueued,
    /// The broker keeps no event history for the collective (no `MCO_EVENTS_<collective>`).
    NoHistory,
}

/// Why discovery could not produce a node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryErrorKind {
    /// The filter is not valid, or its collective is unknown.
    InvalidFilter,
    /// The method cannot serve (part of) the filter, which is never widened.
    Unsupported,
    /// A node list (file, stdin) is not one, or a method's options are wrong.
    InvalidNodeList,
    /// The external discovery program failed.
    External,
    /// The registry database could not be read.
    Registry,
    /// This build of the library does not have the method (its cargo feature is off).
    NotBuilt,
    /// The broker failed during broadcast discovery.
    Broker,
}

impl Error<CallErrorKind> {
    /// The DDL's verdict on the input at fault, when inputs were refused: which input and
    /// why, for a form to show beside the field.
    pub fn input_error(&self) -> Option<&mco_ddl::InputError> {
        self.source
            .as_deref()?
            .downcast_ref::<mco_ddl::InputError>()
    }
}

/// Building or connecting a [`crate::Client`] failed.
pub type ConnectError = Error<ConnectErrorKind>;
/// A call, send or listen failed.
pub type CallError = Error<CallErrorKind>;
/// Discovery failed.
pub type DiscoveryError = Error<DiscoveryErrorKind>;

impl From<DiscoveryError> for CallError {
    fn from(e: DiscoveryError) -> CallError {
        let kind = CallErrorKind::Discovery(e.kind());
        e.into_kind(kind)
    }
}

impl From<mco_spec::FilterError> for CallError {
    fn from(e: mco_spec::FilterError) -> CallError {
        CallError::from_source(CallErrorKind::InvalidInput, e)
    }
}

impl From<mco_spec::FilterError> for DiscoveryError {
    fn from(e: mco_spec::FilterError) -> DiscoveryError {
        DiscoveryError::from_source(DiscoveryErrorKind::InvalidFilter, e)
    }
}

impl From<mco_discovery::DiscoveryError> for DiscoveryError {
    fn from(e: mco_discovery::DiscoveryError) -> DiscoveryError {
        let kind = match &e {
            mco_discovery::DiscoveryError::Unsupported { .. } => DiscoveryErrorKind::Unsupported,
            mco_discovery::DiscoveryError::External { .. } => DiscoveryErrorKind::External,
            _ => DiscoveryErrorKind::InvalidNodeList,
        };
        DiscoveryError::from_source(kind, e)
    }
}

#[cfg(feature = "registry")]
impl From<mco_discovery::registry::RegistryError> for DiscoveryError {
    fn from(e: mco_discovery::registry::RegistryError) -> DiscoveryError {
        let kind = match &e {
            mco_discovery::registry::RegistryError::Unsupported { .. } => {
                DiscoveryErrorKind::Unsupported
            }
            _ => DiscoveryErrorKind::Registry,
        };
        DiscoveryError::from_source(kind, e)
    }
}

/// A call error of kind [`CallErrorKind::InvalidInput`] saying `message`.
pub(crate) fn invalid(message: impl Into<String>) -> CallError {
    CallError::new(CallErrorKind::InvalidInput, message)
}

/// A call error of kind [`CallErrorKind::Broker`] from `source` (`broker error: ...`).
pub(crate) fn broker(source: impl std::error::Error + Send + Sync + 'static) -> CallError {
    CallError::with_source(
        CallErrorKind::Broker,
        format!("broker error: {source}"),
        source,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_messages_and_sources_survive_conversion() {
        let filter = mco_spec::FactFilter::parse("nope").unwrap_err();
        let call: CallError = filter.clone().into();
        assert_eq!(call.kind(), CallErrorKind::InvalidInput);
        assert_eq!(call.to_string(), filter.to_string());
        assert!(std::error::Error::source(&call).is_some());
        let discovery: DiscoveryError = mco_discovery::DiscoveryError::Unsupported {
            method: "flatfile".into(),
            what: "fact filters".into(),
        }
        .into();
        assert_eq!(discovery.kind(), DiscoveryErrorKind::Unsupported);
        let text = discovery.to_string();
        let call: CallError = discovery.into();
        assert_eq!(
            call.kind(),
            CallErrorKind::Discovery(DiscoveryErrorKind::Unsupported)
        );
        assert_eq!(call.to_string(), text);
    }
}
