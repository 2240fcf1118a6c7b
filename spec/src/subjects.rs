//! NATS subject names.
//!
//! Every subject starts with the collective, so a node in several collectives (sub-collectives,
//! `-T`) subscribes once per collective and a broker ACL can confine a client to a collective.
//! This module only builds and checks names; it does not subscribe or publish.

use crate::name_bytes;
use sha2::{Digest, Sha256};

/// The agent that broadcast discovery pings. Every node answers it; it is not in any DDL.
pub const DISCOVERY_AGENT: &str = "discovery";

/// The agent name under which nodes publish registration data.
pub const REGISTRATION_AGENT: &str = "registration";

/// `<collective>.broadcast.agent.<agent>`: every node that has `agent` subscribes.
pub fn broadcast(collective: &str, agent: &str) -> String {
    format!("{collective}.broadcast.agent.{agent}")
}

/// `<collective>.node.<identity>`: requests addressed to exactly one node.
pub fn direct(collective: &str, identity: &str) -> String {
    format!("{collective}.node.{identity}")
}

/// `<collective>.reply.<caller-hash>.<request-id>`: where nodes answer a request.
///
/// The caller is hashed so that a caller name with dots or spaces cannot break the subject,
/// and so that a broker ACL can grant a caller exactly its own reply prefix.
pub fn reply(collective: &str, caller: &str, request_id: &str) -> String {
    format!("{}.{}", reply_prefix(collective, caller), request_id)
}

/// `<collective>.reply.<caller-hash>`: the prefix of all reply subjects of one caller.
pub fn reply_prefix(collective: &str, caller: &str) -> String {
    let token = caller_key(caller).hex;
    // Hex digits are ASCII: the conversion cannot fail.
    format!(
        "{collective}.reply.{}",
        std::str::from_utf8(&token).unwrap_or_default()
    )
}

/// The SHA-256 digest of a caller name: what its reply prefix is made of, and what a node's
/// replay memory counts the caller's share under.
///
/// Every node checks the reply subject of every request it hears and counts its id against
/// the caller, and the requests of a fleet come from a few callers, mostly one after another
/// from the same: each thread keeps the last caller's digest rather than hashing the name
/// again (a name of any length is compared, never trusted to a shorter key).
pub fn caller_digest(caller: &str) -> [u8; 32] {
    caller_key(caller).digest
}

/// A caller's digest and the hex of its first half (the token of its reply prefix).
#[derive(Clone, Copy)]
struct CallerKey {
    digest: [u8; 32],
    hex: [u8; 32],
}

/// [`caller_digest`] with the prefix token beside it, remembered per thread for the last
/// caller: the one place the token is encoded, for [`reply_prefix`] and for
/// [`check_reply_to`], which compares its bytes without encoding it per request.
fn caller_key(caller: &str) -> CallerKey {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(String, CallerKey)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((name, key)) = last.as_ref() {
            if name == caller {
                return *key;
            }
        }
        let digest: [u8; 32] = Sha256::digest(caller.as_bytes()).into();
        let mut hex = [0u8; 32];
        // 16 bytes always fill 32 hex digits.
        let _ = hex::encode_to_slice(&digest[..16], &mut hex);
        let key = CallerKey { digest, hex };
        match last.as_mut() {
            // The name's buffer is reused: a node that alternates between two callers does
            // not allocate for each request.
            Some((name, last_key)) => {
                name.clear();
                name.push_str(caller);
                *last_key = key;
            }
            None => *last = Some((caller.to_string(), key)),
        }
        key
    })
}

/// The longest reply subject accepted, in bytes.
pub const MAX_REPLY_SUBJECT_BYTES: usize = 256;

/// Why a reply subject is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplySubjectError {
    /// Not a subject one can publish to: empty, too long, an empty token, whitespace or a
    /// wildcard.
    #[error("{subject:?} is not a NATS subject replies can be sent to (1 to {MAX_REPLY_SUBJECT_BYTES} bytes, no wildcards, spaces or empty tokens)")]
    Malformed {
        /// The subject.
        subject: String,
    },
    /// A valid subject, but not under the caller's own reply prefix.
    #[error("{subject:?} is not under the caller's reply prefix {prefix}.")]
    NotOwnPrefix {
        /// The subject.
        subject: String,
        /// The prefix it must start with.
        prefix: String,
    },
}

/// Whether `subject` is a concrete NATS subject: 1 to [`MAX_REPLY_SUBJECT_BYTES`] bytes, no
/// empty token, no ASCII whitespace or control character, no wildcard.
pub fn is_concrete_subject(subject: &str) -> bool {
    // One pass over the bytes: every node checks every request's reply subject.
    let bytes = subject.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if bytes.len() > MAX_REPLY_SUBJECT_BYTES || first == b'.' || last == b'.' {
        return false;
    }
    name_bytes::all_of_without_empty_token(bytes, name_bytes::SUBJECT)
}

/// The one rule for where a node may send replies: a concrete subject under the calling
/// caller's own reply prefix ([`reply_prefix`]) in the request's collective. Nodes refuse
/// any other `reply_to`, so a signed request cannot make them publish elsewhere (another
/// caller's replies, `$JS.API.>`, a broadcast subject), and a broker can grant each caller
/// exactly its own prefix.
pub fn check_reply_to(
    collective: &str,
    caller: &str,
    subject: &str,
) -> Result<(), ReplySubjectError> {
    if !is_concrete_subject(subject) {
        return Err(ReplySubjectError::Malformed {
            subject: subject.to_string(),
        });
    }
    // Every node checks every request: compare piece by piece rather than building the
    // prefix string.
    let token = caller_key(caller).hex;
    let rest = subject
        .as_bytes()
        .strip_prefix(collective.as_bytes())
        .and_then(|r| r.strip_prefix(b".reply."))
        .and_then(|r| r.strip_prefix(&token[..]))
        .and_then(|r| r.strip_prefix(b"."));
    match rest {
        Some(name) if !name.is_empty() => Ok(()),
        _ => Err(ReplySubjectError::NotOwnPrefix {
            subject: subject.to_string(),
            prefix: reply_prefix(collective, caller),
        }),
    }
}

/// `<collective>.event.<category>.<name>.<identity>`: where `identity` says that an event of
/// type `kind` ([`crate::event`]) happened.
pub fn event(collective: &str, kind: &str, identity: &str) -> String {
    format!("{collective}.event.{kind}.{identity}")
}

/// The subject that selects the events of `pattern` from every node of `collective`.
pub fn events_matching(collective: &str, pattern: &crate::event::TypePattern) -> String {
    format!("{collective}.event.{}.>", pattern.subject_tokens())
}

/// Every event of `collective`: what its event stream keeps.
pub fn all_events(collective: &str) -> String {
    format!("{collective}.event.>")
}

/// What a node of `identity` may publish events on: its own identity only.
pub fn own_events(collective: &str, identity: &str) -> String {
    format!("{collective}.event.*.*.{identity}")
}

/// `<collective>.broadcast.agent.registration`.
pub fn registration(collective: &str) -> String {
    broadcast(collective, REGISTRATION_AGENT)
}

/// Whether `name` can be used as one token of a subject (an identity, a collective, an agent).
///
/// NATS tokens may not be empty or contain whitespace, `.`, `*` or `>`; identities are
/// allowed dots in MCollective, so [`is_valid_identity`] is the check for those.
pub fn is_valid_token(name: &str) -> bool {
    // Bytes, not chars: a character outside ASCII fails on its first byte alike.
    !name.is_empty() && name_bytes::all_of(name.as_bytes(), name_bytes::TOKEN)
}

/// Whether `identity` is a valid node identity: `^[A-Za-z0-9_.-]+$`, as in MCollective.
///
/// Dots are allowed (identities are usually FQDNs); they become extra subject tokens in the
/// direct subject, which is harmless because the node subscribes to its exact subject.
pub fn is_valid_identity(identity: &str) -> bool {
    !identity.is_empty()
        && !identity.starts_with('.')
        && !identity.ends_with('.')
        && name_bytes::all_of_without_empty_token(identity.as_bytes(), name_bytes::IDENTITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_the_documented_shape() {
        assert_eq!(broadcast("mco", "rpcutil"), "mco.broadcast.agent.rpcutil");
        assert_eq!(
            direct("mco", "web1.example.net"),
            "mco.node.web1.example.net"
        );
        assert_eq!(registration("eu"), "eu.broadcast.agent.registration");
        let r = reply("mco", "user=alice", "abc");
        assert!(r.starts_with("mco.reply."));
        assert!(r.ends_with(".abc"));
        assert_eq!(r.split('.').count(), 4);
        assert_ne!(reply("mco", "a", "x"), reply("mco", "b", "x"));
    }

    #[test]
    fn the_remembered_caller_digest_is_always_the_callers_own() {
        let sha = |name: &str| -> [u8; 32] { Sha256::digest(name.as_bytes()).into() };
        // Same caller twice, a prefix of it, a longer name, and back: each is its own digest.
        for name in ["alice", "alice", "ali", "alice.extra", "", "alice", "bob"] {
            assert_eq!(caller_digest(name), sha(name), "{name:?}");
        }
        // Another thread has its own memory and the same answers.
        let other = std::thread::spawn(|| caller_digest("alice"))
            .join()
            .unwrap();
        assert_eq!(other, sha("alice"));
        assert_eq!(caller_digest("bob"), sha("bob"));
    }

    #[test]
    fn the_remembered_prefix_token_is_the_current_callers() {
        // Callers alternating in one thread: each is held to its own prefix, never to the
        // one remembered from the caller before.
        let callers = ["alice", "bob", "alice", "ali", "alice.extra", "bob"];
        for pair in callers.windows(2) {
            let (before, now) = (pair[0], pair[1]);
            assert_eq!(
                check_reply_to("mco", before, &reply("mco", before, "x")),
                Ok(())
            );
            assert_eq!(check_reply_to("mco", now, &reply("mco", now, "x")), Ok(()));
            if before != now {
                let theirs = reply("mco", before, "x");
                assert!(
                    check_reply_to("mco", now, &theirs).is_err(),
                    "{now} {before}"
                );
            }
        }
    }

    #[test]
    fn replies_go_only_under_the_callers_own_prefix() {
        let own = reply("mco", "alice", "abc");
        assert_eq!(check_reply_to("mco", "alice", &own), Ok(()));
        let deeper = format!("{}.web.42", reply_prefix("mco", "alice"));
        assert_eq!(check_reply_to("mco", "alice", &deeper), Ok(()));
        let table: &[(&str, &str)] = &[
            ("mco", "$JS.API.STREAM.PURGE.MCO_DIRECT_mco"),
            ("mco", "mco.broadcast.agent.rpcutil"),
            ("mco", &reply("mco", "bob", "abc")),
            ("uk", &own),
            ("mco", &reply_prefix("mco", "alice")),
            ("mco", &format!("{}.", reply_prefix("mco", "alice"))),
            ("mco", &format!("{}x", reply_prefix("mco", "alice"))),
            ("mco", &format!("{}.a..b", reply_prefix("mco", "alice"))),
            ("mco", &format!("{}.>", reply_prefix("mco", "alice"))),
            ("mco", &format!("{}.*", reply_prefix("mco", "alice"))),
            ("mco", &format!("{}.a b", reply_prefix("mco", "alice"))),
            (
                "mco",
                &format!("{}.{}", reply_prefix("mco", "alice"), "x".repeat(300)),
            ),
            ("mco", ""),
        ];
        for (collective, subject) in table {
            assert!(
                check_reply_to(collective, "alice", subject).is_err(),
                "{collective} {subject}"
            );
        }
    }

    #[test]
    fn names_are_checked() {
        for ok in ["mco", "eu_west-1", "A9"] {
            assert!(is_valid_token(ok), "{ok}");
        }
        for bad in ["", "a.b", "a b", "*", ">", "a>"] {
            assert!(!is_valid_token(bad), "{bad}");
        }
        for ok in ["web1", "web1.example.net", "a-b_c"] {
            assert!(is_valid_identity(ok), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a>"] {
            assert!(!is_valid_identity(bad), "{bad}");
        }
    }
}
