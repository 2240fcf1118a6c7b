//! The [`Client`] handle: a cheap `Clone` over one broker link, the client's settings, its
//! DDLs and the server tokens it has verified. A web application keeps one in its state and
//! shares it between requests.
//!
//! The operations are in their own modules: [`crate::call`] (calls and sends),
//! [`crate::discovery`], [`crate::listen`], reply acceptance in [`crate::accept`].

use std::sync::Arc;

use mco_spec::message::{new_request_id, now_millis};
use mco_spec::security::{TokenCache, Trust};
use mco_spec::{subjects, Filter, Request, RequestEnvelope};
use serde_json::{Map, Value};

use crate::builder::{ClientBuilder, ClientOptions};
use crate::ddl::Ddls;
use crate::error::{invalid, CallError, CallErrorKind};
use crate::link::{Link, QueueUse};

struct Inner {
    link: Link,
    options: ClientOptions,
    ddls: Arc<Ddls>,
    /// Server tokens already verified: a reply from a node seen before costs one signature
    /// check, not two.
    tokens: TokenCache,
}

/// A connection to the fleet; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Client {
    pub(crate) fn new(link: Link, options: ClientOptions, ddls: Arc<Ddls>) -> Client {
        Client {
            inner: Arc::new(Inner {
                link,
                options,
                ddls,
                tokens: TokenCache::default(),
            }),
        }
    }

    /// A builder with default settings.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The client's settings.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The underlying NATS connection (for replies read elsewhere and tests).
    pub fn nats(&self) -> &async_nats::Client {
        self.inner.link.nats()
    }

    /// The agents' DDLs this client checks calls with.
    pub fn ddls(&self) -> &Ddls {
        &self.inner.ddls
    }

    /// How direct requests travel in `collective` (found out on first use).
    pub async fn direct_queue_use(&self, collective: &str) -> QueueUse {
        self.inner.link.queue_use(collective).await
    }

    pub(crate) fn link(&self) -> &Link {
        &self.inner.link
    }

    pub(crate) fn trust(&self) -> Option<&Trust> {
        self.inner.options.trust.as_ref()
    }

    pub(crate) fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// `collective`, checked against the known ones, or the main collective.
    pub fn collective(&self, collective: Option<&str>) -> Result<String, CallError> {
        let o = &self.inner.options;
        match collective {
            None => Ok(o.main_collective.clone()),
            Some(c) if o.collectives.iter().any(|k| k == c) => Ok(c.to_string()),
            Some(c) => Err(CallError::new(
                CallErrorKind::UnknownCollective,
                format!(
                    "unknown collective {c:?} (known: {})",
                    o.collectives.join(", ")
                ),
            )),
        }
    }

    /// The reply subject `name` stands for in `collective` (the main one if `None`): a full
    /// subject under this caller's reply prefix as it is, anything else as a name under that
    /// prefix (`--reply-to web-42` is `<collective>.reply.<caller-hash>.web-42`). Nodes send
    /// replies only under the caller's own prefix, so that is the only place a caller can ask
    /// for them.
    pub fn reply_subject(&self, collective: Option<&str>, name: &str) -> Result<String, CallError> {
        let collective = self.collective(collective)?;
        let caller = &self.inner.options.caller;
        let subject = if name.starts_with(&format!("{collective}.reply.")) {
            name.to_string()
        } else {
            format!("{}.{name}", subjects::reply_prefix(&collective, caller))
        };
        subjects::check_reply_to(&collective, caller, &subject)
            .map_err(|e| CallError::from_source(CallErrorKind::InvalidInput, e))?;
        Ok(subject)
    }

    /// A new request from this client; the caller publishes it.
    pub(crate) fn request(
        &self,
        collective: &str,
        agent: &str,
        action: &str,
        data: Map<String, Value>,
        filter: Filter,
        ttl: u64,
    ) -> Request<'static> {
        let o = &self.inner.options;
        let id = new_request_id();
        Request {
            reply_to: subjects::reply(collective, &o.caller, &id).into(),
            id: id.into(),
            collective: collective.to_string().into(),
            agent: agent.to_string().into(),
            action: action.to_string().into(),
            data,
            filter,
            caller: o.caller.clone().into(),
            sender: o.sender.clone().into(),
            time: now_millis(),
            ttl,
            targets: None,
        }
    }

    /// Signs (unless insecure) and encodes a request, checking its size.
    pub(crate) fn encode(&self, request: &Request<'_>) -> Result<bytes::Bytes, CallError> {
        let envelope = match &self.inner.options.credentials {
            Some(credentials) => RequestEnvelope::signed(request, credentials),
            None => RequestEnvelope::unsigned(request),
        };
        let payload = envelope
            .and_then(|e| e.to_bytes())
            .map_err(|e| invalid(format!("cannot encode the request: {e}")))?;
        if payload.len() > mco_spec::MAX_MESSAGE_BYTES {
            return Err(invalid(format!(
                "the request is {} bytes, more than the {} allowed",
                payload.len(),
                mco_spec::MAX_MESSAGE_BYTES
            )));
        }
        Ok(payload.into())
    }
}
