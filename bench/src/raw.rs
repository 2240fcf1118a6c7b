//! The raw-NATS floor: the same message patterns and sizes as an mco call, with nothing of
//! mco in between, measured with async-nats directly.
//!
//! A [`RawFleet`] has N subscribers spread over the same number of connections as the
//! simulator, each on a broadcast subject and its own direct subject, answering every
//! message with a reply of a given size on the message's reply subject. With
//! [`Work::Signatures`] each subscriber also does the signature work mco cannot avoid:
//! verify the request's ed25519 signature and sign its reply; and the caller verifies every
//! reply's signature (in batches, as replies arrive). Nothing else: no JSON, no filters, no
//! tokens, no replay memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;

/// The largest batch of replies verified at once.
pub const VERIFY_BATCH: usize = 256;

/// What each raw subscriber does besides replying.
#[derive(Clone)]
pub enum Work {
    /// Nothing: the broker floor.
    None,
    /// Verify the request (signed by the caller) and sign the reply.
    Signatures {
        /// The caller's public key.
        caller: VerifyingKey,
    },
}

/// Why a raw fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum RawFleetError {
    /// A subscription was refused.
    #[error(transparent)]
    Subscribe(#[from] async_nats::SubscribeError),
    /// The broker did not confirm the subscriptions.
    #[error(transparent)]
    RoundTrip(#[from] crate::broker::RoundTripError),
}

/// N raw subscribers.
pub struct RawFleet {
    tasks: Vec<JoinHandle<()>>,
    /// Each subscriber's public key (for [`Work::Signatures`]), by index.
    pub node_keys: Arc<Vec<VerifyingKey>>,
    /// The broadcast subject.
    pub broadcast: String,
    prefix: String,
}

impl RawFleet {
    /// Starts `n` subscribers on `connections` (shared, as the simulator does) under
    /// subjects `<prefix>.broadcast` and `<prefix>.node.<index>`, answering with
    /// `reply_size` bytes. Returns once the broker has every subscription.
    pub async fn start(
        connections: &[async_nats::Client],
        prefix: &str,
        n: usize,
        reply_size: usize,
        work: Work,
    ) -> Result<RawFleet, RawFleetError> {
        let broadcast = format!("{prefix}.broadcast");
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| {
                let mut seed = [7u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
                SigningKey::from_bytes(&seed)
            })
            .collect();
        let node_keys = Arc::new(keys.iter().map(SigningKey::verifying_key).collect());
        let mut tasks = Vec::with_capacity(n);
        for (index, key) in keys.into_iter().enumerate() {
            let client = connections[index % connections.len()].clone();
            let a = client.subscribe(broadcast.clone()).await?;
            let b = client.subscribe(format!("{prefix}.node.{index}")).await?;
            let work = work.clone();
            // The reply body: the index (so the caller knows whose key signed it) and filler.
            let mut body = vec![b'x'; reply_size.max(8)];
            body[..8].copy_from_slice(&(index as u64).to_le_bytes());
            let body = Bytes::from(body);
            tasks.push(tokio::spawn(async move {
                let mut messages = futures::stream::select(a, b);
                while let Some(message) = messages.next().await {
                    let Some(reply) = message.reply else { continue };
                    let payload = match &work {
                        Work::None => body.clone(),
                        Work::Signatures { caller } => {
                            if !verify_one(caller, &message.payload) {
                                continue;
                            }
                            sign_one(&key, &body)
                        }
                    };
                    let _ = client.publish(reply, payload).await;
                }
            }));
        }
        for c in connections {
            crate::broker::round_trip(c, Duration::from_secs(30)).await?;
        }
        Ok(RawFleet {
            tasks,
            node_keys,
            broadcast,
            prefix: prefix.to_string(),
        })
    }

    /// The direct subject of subscriber `index`.
    pub fn direct(&self, index: usize) -> String {
        format!("{}.node.{index}", self.prefix)
    }
}

impl Drop for RawFleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `signature (64 bytes) ‖ body`.
pub fn sign_one(key: &SigningKey, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + body.len());
    out.extend_from_slice(&key.sign(body).to_bytes());
    out.extend_from_slice(body);
    out.freeze()
}

/// Verifies `signature ‖ body` as mco's nodes do (strictly).
pub fn verify_one(key: &VerifyingKey, signed: &[u8]) -> bool {
    if signed.len() < 64 {
        return false;
    }
    let Ok(signature) = Signature::from_slice(&signed[..64]) else {
        return false;
    };
    key.verify_strict(&signed[64..], &signature).is_ok()
}

/// Verifies signed replies (`signature ‖ index ‖ filler`) in one batch.
pub fn verify_replies(keys: &[VerifyingKey], replies: &[Bytes]) -> bool {
    let mut messages = Vec::with_capacity(replies.len());
    let mut signatures = Vec::with_capacity(replies.len());
    let mut verifying = Vec::with_capacity(replies.len());
    for r in replies {
        if r.len() < 72 {
            return false;
        }
        let Ok(signature) = Signature::from_slice(&r[..64]) else {
            return false;
        };
        let index = u64::from_le_bytes(r[64..72].try_into().unwrap_or_default()) as usize;
        let Some(key) = keys.get(index) else {
            return false;
        };
        messages.push(&r[64..]);
        signatures.push(signature);
        verifying.push(*key);
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &verifying).is_ok()
}

/// One broadcast: publish `payload` to every subscriber and wait for `n` replies (verifying
/// them in batches when `verify` has the subscribers' keys). Returns the time to the last
/// reply, or `None` when they did not all come within `timeout`.
pub async fn broadcast_round(
    client: &async_nats::Client,
    subject: &str,
    payload: Bytes,
    n: usize,
    verify: Option<&[VerifyingKey]>,
    timeout: Duration,
) -> Result<Duration, String> {
    let (inbox, mut replies) = subscribe_inbox(client).await?;
    let started = Instant::now();
    client
        .publish_with_reply(subject.to_string(), inbox, payload)
        .await
        .map_err(|e| e.to_string())?;
    await_replies(&mut replies, n, verify, timeout).await?;
    Ok(started.elapsed())
}

/// One request per subscriber in `targets` (direct subjects), all replies awaited.
pub async fn fan_out_round(
    client: &async_nats::Client,
    targets: &[String],
    payload: Bytes,
    verify: Option<&[VerifyingKey]>,
    timeout: Duration,
) -> Result<Duration, String> {
    let (inbox, mut replies) = subscribe_inbox(client).await?;
    let started = Instant::now();
    for t in targets {
        client
            .publish_with_reply(t.clone(), inbox.clone(), payload.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    await_replies(&mut replies, targets.len(), verify, timeout).await?;
    Ok(started.elapsed())
}

/// A fresh inbox and the subscription to it, for one round's replies.
pub async fn subscribe_inbox(
    client: &async_nats::Client,
) -> Result<(String, async_nats::Subscriber), String> {
    let inbox = client.new_inbox();
    let replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok((inbox, replies))
}

/// Waits for `n` replies on `replies`, verifying what has already arrived in batches (as the
/// client does) when `verify` is set.
pub async fn await_replies(
    replies: &mut async_nats::Subscriber,
    n: usize,
    verify: Option<&[VerifyingKey]>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = 0;
    while got < n {
        let first = match tokio::time::timeout_at(deadline, replies.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(format!("the reply subscription ended after {got} of {n}")),
            Err(_) => return Err(format!("{got} of {n} replies within {timeout:?}")),
        };
        let mut batch = vec![first.payload];
        // Whatever else has arrived already goes into the same batch.
        while batch.len() < VERIFY_BATCH {
            match replies.next().now_or_never() {
                Some(Some(m)) => batch.push(m.payload),
                _ => break,
            }
        }
        if let Some(keys) = verify {
            if !verify_replies(keys, &batch) {
                return Err(format!("a batch of {} replies did not verify", batch.len()));
            }
        }
        got += batch.len();
    }
    Ok(())
}

/// One request/reply round trip to `subject`, verifying the reply when `verify` is set.
pub async fn request_once(
    client: &async_nats::Client,
    subject: &str,
    payload: Bytes,
    verify: Option<&VerifyingKey>,
) -> Option<Duration> {
    let started = Instant::now();
    let reply = client.request(subject.to_string(), payload).await.ok()?;
    if let Some(key) = verify {
        if !verify_one(key, &reply.payload) {
            return None;
        }
    }
    Some(started.elapsed())
}
