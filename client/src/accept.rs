//! Accepting replies: the one gate every reply passes, whether it answers a call, a
//! discovery ping or a request read by a [`crate::Listener`].
//!
//! Two steps. [`Client::accept_replies`] decodes what arrived on a reply subject and, unless
//! the client is insecure, verifies each reply's signature and that it is signed by the
//! sender's own server token, all signatures of a batch at once. Then a `ReplyGate` keeps
//! only the replies to its request id, once per sender, and counts what it drops: forgeries
//! apart from the rest (malformed messages, strays of other requests, duplicates).
//!
//! Not for: deciding which nodes were expected (the call's replies do) or what a reply
//! means.

use std::collections::HashSet;

use mco_spec::envelope::{Envelope, Kind};
use mco_spec::message::now_millis;
use mco_spec::security::Token;
use mco_spec::{Reply, ReplyEnvelope};

use crate::client::Client;

/// Why a message on a reply subject was not accepted as a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyRejected {
    /// Not a well-formed reply.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The signature or token does not verify, or does not belong to the sender.
    #[error("forged reply: {0}")]
    Forged(String),
}

/// The replies to one request, once per sender, with counts of what was dropped.
#[derive(Debug, Clone)]
pub(crate) struct ReplyGate {
    request_id: String,
    seen: HashSet<String>,
    /// Replies whose signature or token did not verify.
    pub(crate) forged: usize,
    /// Messages that were malformed, for another request, or a sender's second reply.
    pub(crate) dropped: usize,
}

impl ReplyGate {
    /// A gate for the replies to `request_id`.
    pub(crate) fn new(request_id: impl Into<String>) -> ReplyGate {
        ReplyGate::expecting(request_id, 0)
    }

    /// A gate for the replies to `request_id` from about `nodes` senders, with room for them
    /// from the start: growing the set of senders as a large fleet's replies come in would
    /// rehash it a dozen times while they are being timed.
    pub(crate) fn expecting(request_id: impl Into<String>, nodes: usize) -> ReplyGate {
        ReplyGate {
            request_id: request_id.into(),
            seen: HashSet::with_capacity(nodes),
            forged: 0,
            dropped: 0,
        }
    }

    /// The reply, if it is the first one of its sender to this request; counts it otherwise.
    pub(crate) fn admit(&mut self, accepted: Result<Reply, ReplyRejected>) -> Option<Reply> {
        match accepted {
            // A stray (another request's reply) and a duplicate both fall through to `dropped`.
            Ok(reply)
                if reply.request_id == self.request_id
                    && self.seen.insert(reply.sender.clone()) =>
            {
                Some(reply)
            }
            Err(ReplyRejected::Forged(_)) => {
                self.forged += 1;
                None
            }
            _ => {
                self.dropped += 1;
                None
            }
        }
    }

    /// The senders admitted so far.
    pub(crate) fn seen(&self) -> &HashSet<String> {
        &self.seen
    }
}

impl Client {
    /// Decodes a reply and, unless insecure, verifies its signature and that the signing
    /// token is the sender's own server token.
    pub fn accept_reply(&self, payload: &[u8]) -> Result<Reply, ReplyRejected> {
        let Some(trust) = self.trust() else {
            return open_unverified(payload);
        };
        let envelope =
            ReplyEnvelope::decode(payload).map_err(|e| ReplyRejected::Malformed(e.to_string()))?;
        let token = self
            .tokens()
            .verify(&envelope, trust, now_millis() / 1000)
            .map_err(|e| ReplyRejected::Forged(e.to_string()))?;
        check_sender(&envelope, Some(&token))
    }

    /// [`Self::accept_reply`] for many replies at once: their signatures are verified in one
    /// batch, which is what lets a client take in tens of thousands of signed replies a
    /// second; and a large batch is cut into parts checked side by side, one per core (a
    /// large fleet's replies arrive faster than one core decodes and verifies them). One
    /// result per payload, in order. It returns once the whole batch is checked, so a
    /// caller's timers never run out while some of its replies are being checked.
    pub fn accept_replies(&self, payloads: &[&[u8]]) -> Vec<Result<Reply, ReplyRejected>> {
        let parts = parallel_parts(payloads.len(), self.trust().is_some());
        if parts <= 1 {
            return self.accept_in_turn(payloads);
        }
        use rayon::prelude::*;
        let checked: Vec<Vec<Result<Reply, ReplyRejected>>> = payloads
            .par_chunks(payloads.len().div_ceil(parts))
            .map(|part| self.accept_in_turn(part))
            .collect();
        checked.into_iter().flatten().collect()
    }

    /// [`Self::accept_replies`] on this thread, all signatures in one batch.
    fn accept_in_turn(&self, payloads: &[&[u8]]) -> Vec<Result<Reply, ReplyRejected>> {
        if self.trust().is_none() {
            return payloads.iter().map(|p| open_unverified(p)).collect();
        }
        let decoded: Vec<Result<ReplyEnvelope, ReplyRejected>> = payloads
            .iter()
            .map(|p| ReplyEnvelope::decode(p).map_err(|e| ReplyRejected::Malformed(e.to_string())))
            .collect();
        self.verified(
            &decoded,
            |_, why| ReplyRejected::Forged(why),
            |_, envelope, token| check_sender(envelope, token),
        )
    }

    /// Verifies decoded envelopes of any kind, all signatures in one batch (none on an
    /// insecure client), then `check`s each with the token that signed it; `forged` says why
    /// envelope `i` did not verify. One result per envelope, in order: what replies and events
    /// both go through.
    pub(crate) fn verified<K: Kind, T, E: Clone>(
        &self,
        decoded: &[Result<Envelope<K>, E>],
        forged: impl Fn(usize, String) -> E,
        check: impl Fn(usize, &Envelope<K>, Option<&Token>) -> Result<T, E>,
    ) -> Vec<Result<T, E>> {
        let Some(trust) = self.trust() else {
            return decoded
                .iter()
                .enumerate()
                .map(|(i, e)| check(i, e.as_ref().map_err(Clone::clone)?, None))
                .collect();
        };
        let envelopes: Vec<&Envelope<K>> = decoded.iter().filter_map(|e| e.as_ref().ok()).collect();
        let mut verified = self
            .tokens()
            .verify_many(&envelopes, trust, now_millis() / 1000)
            .into_iter();
        decoded
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let envelope = e.as_ref().map_err(Clone::clone)?;
                let token = verified
                    .next()
                    .unwrap_or(Err(mco_spec::security::SecurityError::Unsigned))
                    .map_err(|why| forged(i, why.to_string()))?;
                check(i, envelope, Some(&token))
            })
            .collect()
    }
}

/// Into how many parts a batch of `n` replies is cut to be checked side by side: at most one
/// per thread of the pool that checks them (one per core the process may use), each of at
/// least [`MIN_PART_SIGNED`] replies (or [`MIN_PART_UNSIGNED`] without signatures, which are
/// quicker to check than a thread is to wake).
///
/// The pool's size is read from the pool, which counted the cores once: asking the system
/// (`available_parallelism`) reads the process's cgroup files, system calls that cost more
/// than checking a small batch, and a call's replies arrive in many small batches.
fn parallel_parts(n: usize, signed: bool) -> usize {
    let min_part = if signed {
        MIN_PART_SIGNED
    } else {
        MIN_PART_UNSIGNED
    };
    let parts = n / min_part;
    if parts <= 1 {
        return 1;
    }
    parts.min(rayon::current_num_threads())
}

/// The fewest signed replies worth handing to another core (about 0.5 ms of verification).
const MIN_PART_SIGNED: usize = 32;
/// The fewest unsigned replies worth handing to another core.
const MIN_PART_UNSIGNED: usize = 128;

/// Reads a reply on an insecure client, which verifies nothing: the envelope and the reply
/// in one pass (a large fleet's unsigned replies are read faster than in two), accepting and
/// refusing what [`ReplyEnvelope::decode`] and [`check_sender`] would.
fn open_unverified(payload: &[u8]) -> Result<Reply, ReplyRejected> {
    ReplyEnvelope::open_unverified(payload)
        .map(|opened| opened.body)
        .map_err(|e| ReplyRejected::Malformed(e.to_string()))
}

/// Parses a verified reply and checks that the token that signed it is the sender's own.
/// Without a token it only parses: [`Client::verified`] hands its checks an optional token,
/// though an insecure client reads its replies with [`open_unverified`] instead.
fn check_sender(envelope: &ReplyEnvelope, token: Option<&Token>) -> Result<Reply, ReplyRejected> {
    let reply = envelope
        .body()
        .map_err(|e| ReplyRejected::Malformed(e.to_string()))?;
    if let Some(token) = token {
        if token.claims().name != reply.sender {
            return Err(ReplyRejected::Forged(format!(
                "reply claims to be from {} but is signed by {}",
                reply.sender,
                token.claims().name
            )));
        }
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: &str, sender: &str) -> Reply {
        Reply {
            request_id: id.into(),
            sender: sender.into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            time: 0,
            statuscode: mco_spec::StatusCode::Ok,
            statusmsg: "OK".into(),
            data: serde_json::json!({}),
        }
    }

    #[test]
    fn an_insecure_client_reads_in_one_pass_what_it_read_in_two() {
        let two_passes = |payload: &[u8]| {
            ReplyEnvelope::decode(payload)
                .map_err(|e| ReplyRejected::Malformed(e.to_string()))
                .and_then(|envelope| check_sender(&envelope, None))
        };
        let good = ReplyEnvelope::unsigned(&reply("r1", "web1"))
            .and_then(|e| e.to_bytes())
            .expect("a reply encodes");
        let good = String::from_utf8(good).expect("JSON is UTF-8");
        let payloads = [
            good.clone(),
            good.replace("\"rpcutil\"", "\"rpc\\u0075til\""),
            good.replace("mco.reply.v1", "mco.request.v1"),
            good.replace("\"data\":{}", "\"data\":[]"),
            good.replace("\"data\":{}", "\"data\":{\"pong\":1}"),
            good.replace("\"sender\":\"web1\",", ""),
            good.replace("\"signature\":null", "\"signature\":\"c2ln\""),
            good.replace("\"reply\":", "\"unknown\":1,\"reply\":"),
            good[..good.len() - 1].to_string(),
            "[]".to_string(),
            String::new(),
        ];
        for payload in &payloads {
            let (one, two) = (
                open_unverified(payload.as_bytes()),
                two_passes(payload.as_bytes()),
            );
            assert_eq!(
                one.is_ok(),
                two.is_ok(),
                "{payload}: {one:?} against {two:?}"
            );
            if let (Ok(one), Ok(two)) = (&one, &two) {
                assert_eq!(one, two, "{payload}");
            }
            if two.is_err() {
                assert!(matches!(one, Err(ReplyRejected::Malformed(_))), "{payload}");
            }
        }
        assert_eq!(open_unverified(good.as_bytes()), Ok(reply("r1", "web1")));
    }

    #[test]
    fn a_batch_is_cut_into_parts_worth_a_thread_each_and_no_more_than_the_pool_has() {
        let threads = rayon::current_num_threads();
        assert_eq!(parallel_parts(0, true), 1);
        assert_eq!(parallel_parts(MIN_PART_SIGNED * 2 - 1, true), 1);
        assert_eq!(parallel_parts(MIN_PART_UNSIGNED * 2 - 1, false), 1);
        assert_eq!(parallel_parts(MIN_PART_SIGNED * 2, true), 2.min(threads));
        assert_eq!(parallel_parts(MIN_PART_UNSIGNED * 2, false), 2.min(threads));
        assert_eq!(
            parallel_parts(MIN_PART_SIGNED * 1000, true),
            threads.min(1000)
        );
    }

    #[test]
    fn the_gate_keeps_one_reply_per_sender_to_its_request() {
        let mut gate = ReplyGate::new("r1");
        assert!(gate.admit(Ok(reply("r1", "web1"))).is_some());
        assert!(gate.admit(Ok(reply("r1", "web1"))).is_none(), "duplicate");
        assert!(
            gate.admit(Ok(reply("r0", "web2"))).is_none(),
            "another request"
        );
        assert!(gate
            .admit(Err(ReplyRejected::Forged("bad".into())))
            .is_none());
        assert!(gate
            .admit(Err(ReplyRejected::Malformed("junk".into())))
            .is_none());
        assert!(gate.admit(Ok(reply("r1", "web2"))).is_some());
        assert_eq!((gate.forged, gate.dropped), (1, 3));
        assert_eq!(gate.seen().len(), 2);
    }
}
