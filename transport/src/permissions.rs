//! Broker permissions: what each kind of mco connection may publish and subscribe to, and the
//! nats-server `authorization` block that enforces them (`mco broker config` writes it).
//!
//! Without permissions every connection reads and publishes everywhere: any node reads every
//! other node's direct requests, any caller reads everyone's replies, and anyone can purge
//! the direct-request queue. Here every connection is one NATS user (an nkey) with exactly
//! what its part needs ([`permissions`]):
//!
//! | role | publishes | subscribes |
//! | --- | --- | --- |
//! | node | replies (`<c>.reply.>`), its registration, its own events (`<c>.event.*.*.<identity>`), and for its own consumer only: look-up, next message, acknowledgements | its collectives' broadcasts (not registrations), its own direct subject, its own inbox |
//! | client | broadcasts (not registrations), the listed nodes' direct subjects, stream info of the queue; reading the event history (stream info, ephemeral consumers, next message) | its own reply prefix (`<c>.reply.<caller-hash>.>`), every event (`<c>.event.>`), its own inbox |
//! | registry | nothing | registrations |
//! | admin | the JetStream API (`mco broker setup`) | its own inbox |
//!
//! A client may send direct requests only to the nodes listed, so junk for names nobody
//! consumes cannot fill the direct-request queue; each listed node's share of it is bounded
//! by `max_msgs_per_subject`. (A stream that captured only the listed subjects would do the
//! same, but nats-server 2.9 checks a stream's subjects in quadratic time: 3.7 s to create
//! and 3.5 s to restart with 3,000 subjects, blocking the JetStream API meanwhile. Listed
//! publish permissions cost linear memory instead, and the clients' shared list is written
//! once as a variable.)
//!
//! Nobody but the admin may create, purge or delete streams or consumers. On nats-server
//! 2.9 a consumer's subject is in the body of the request that creates it, which permissions
//! cannot see, so nodes may not create their consumers: the admin makes them
//! ([`crate::setup`]) and nodes use them as they are ([`crate::existing_consumer`]).
//!
//! Not for: connecting, or creating streams and consumers.

use std::collections::HashSet;

use mco_spec::subjects;

use crate::{
    consumer_name, events_stream_name, inbox_prefix, stream_info_subject, stream_name, BrokerRole,
};

/// Subjects allowed and denied for one direction (publish or subscribe). A deny wins over an
/// allow; with no allow, everything not denied is allowed (as in nats-server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Subjects (with wildcards) allowed.
    pub allow: Vec<String>,
    /// Subjects (with wildcards) denied.
    pub deny: Vec<String>,
}

/// What one connection may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Publishing.
    pub publish: Rules,
    /// Subscribing.
    pub subscribe: Rules,
}

/// The permissions of `user`, given all the `users` of the broker (a client may send direct
/// requests to the nodes among them that share a collective with it).
pub fn permissions(user: &BrokerUser, users: &[BrokerUser]) -> Permissions {
    let name = user.name.as_str();
    let collectives = &user.collectives;
    let inbox = format!("{}.>", inbox_prefix(user.role, name));
    let mut p = Permissions::default();
    match user.role {
        BrokerRole::Node => {
            let consumer = consumer_name(name);
            for c in collectives {
                let stream = stream_name(c);
                p.publish.allow.extend([
                    format!("{c}.reply.>"),
                    subjects::registration(c),
                    // A node speaks only for itself: what its key signs names it too.
                    subjects::own_events(c, name),
                    // Whether the event history exists (it may not create it).
                    stream_info_subject(&events_stream_name(c)),
                    format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
                    format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
                    // Acknowledgements and progress go to the delivery's reply subject:
                    // `$JS.ACK.<stream>.<consumer>.…`, and on newer servers
                    // `$JS.ACK.<domain>.<account>.<stream>.<consumer>.…`.
                    format!("$JS.ACK.{stream}.{consumer}.>"),
                    format!("$JS.ACK.*.*.{stream}.{consumer}.>"),
                ]);
                p.subscribe
                    .allow
                    .extend([subjects::broadcast(c, "*"), subjects::direct(c, name)]);
                // Registrations carry every node's facts; only registry services read them.
                p.subscribe.deny.push(subjects::registration(c));
            }
            p.subscribe.allow.push(inbox);
        }
        BrokerRole::Client => {
            for c in collectives {
                p.publish.allow.push(subjects::broadcast(c, "*"));
                let mut nodes: Vec<String> = users
                    .iter()
                    .filter(|u| u.role == BrokerRole::Node && u.collectives.contains(c))
                    .map(|u| subjects::direct(c, &u.name))
                    .collect();
                nodes.sort();
                p.publish.allow.extend(nodes);
                p.publish.allow.push(stream_info_subject(&stream_name(c)));
                // The event history: a client reads it through unacknowledged consumers of
                // its own, without a subject filter (a filter would need `CREATE.<s>.<c>.>`),
                // which can only read: the stream denies purge and delete.
                let events = events_stream_name(c);
                p.publish.allow.extend([
                    stream_info_subject(&events),
                    format!("$JS.API.CONSUMER.CREATE.{events}"),
                    format!("$JS.API.CONSUMER.CREATE.{events}.*"),
                    format!("$JS.API.CONSUMER.MSG.NEXT.{events}.*"),
                    format!("$JS.API.CONSUMER.DELETE.{events}.*"),
                ]);
                p.publish.deny.push(subjects::registration(c));
                p.subscribe.allow.extend([
                    format!("{}.>", subjects::reply_prefix(c, name)),
                    subjects::all_events(c),
                ]);
            }
            p.subscribe.allow.push(inbox);
        }
        BrokerRole::Registry => {
            p.publish.deny.push(">".into());
            p.subscribe
                .allow
                .extend(collectives.iter().map(|c| subjects::registration(c)));
        }
        BrokerRole::Admin => {
            p.publish.allow.push("$JS.API.>".into());
            p.subscribe.allow.push(inbox);
        }
    }
    p
}

/// One broker user: a connection's role, name, nkey and collectives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUser {
    /// What the connection is.
    pub role: BrokerRole,
    /// A node's identity, a caller's name (its token's name), or a label for a registry
    /// service or an administrator.
    pub name: String,
    /// The user's nkey public key (`U...`).
    pub nkey: String,
    /// The collectives it works in.
    pub collectives: Vec<String>,
}

/// Why a list of broker users cannot be turned into an authorization block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// A name is not acceptable for its role.
    #[error("{role} {name:?}: {reason}")]
    InvalidName {
        /// The role.
        role: BrokerRole,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A key is not an nkey user public key.
    #[error("{role} {name}: {key:?} is not an nkey user public key (U...): {reason}")]
    InvalidKey {
        /// The role.
        role: BrokerRole,
        /// The name.
        name: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A collective name is not valid.
    #[error("{name}: {collective:?} is not a valid collective name")]
    InvalidCollective {
        /// Whose.
        name: String,
        /// The collective.
        collective: String,
    },
    /// The same key or the same role and name twice.
    #[error("{0}")]
    Duplicate(String),
    /// No users at all.
    #[error("no users: name at least one node, client, registry or admin")]
    Empty,
}

/// Checks one user: its name for its role, its key, its collectives.
fn check(user: &BrokerUser) -> Result<(), UsersError> {
    let bad_name = |reason: &str| UsersError::InvalidName {
        role: user.role,
        name: user.name.clone(),
        reason: reason.into(),
    };
    match user.role {
        BrokerRole::Node if !subjects::is_valid_identity(&user.name) => {
            return Err(bad_name(
                "not a valid node identity (letters, digits, _ . -)",
            ))
        }
        _ if user.name.is_empty()
            || user
                .name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return Err(bad_name("must be non-empty, without spaces"))
        }
        _ => {}
    }
    let bad_key = |reason: String| UsersError::InvalidKey {
        role: user.role,
        name: user.name.clone(),
        key: user.nkey.clone(),
        reason,
    };
    nkeys::KeyPair::from_public_key(&user.nkey).map_err(|e| bad_key(e.to_string()))?;
    if !user.nkey.starts_with('U') {
        return Err(bad_key("a user key starts with U".into()));
    }
    if user.role != BrokerRole::Admin && user.collectives.is_empty() {
        return Err(UsersError::InvalidCollective {
            name: user.name.clone(),
            collective: String::new(),
        });
    }
    if let Some(bad) = user
        .collectives
        .iter()
        .find(|c| !subjects::is_valid_token(c))
    {
        return Err(UsersError::InvalidCollective {
            name: user.name.clone(),
            collective: bad.clone(),
        });
    }
    Ok(())
}

/// The nats-server `authorization { users = [...] }` block for `users`, one nkey user each
/// with its [`permissions`], in a stable order (by role, then name), with a comment naming
/// each. Include it in the server's configuration (`include mco-auth.conf`) next to a
/// `jetstream {}` block.
pub fn authorization_block(users: &[BrokerUser]) -> Result<String, UsersError> {
    if users.is_empty() {
        return Err(UsersError::Empty);
    }
    let mut keys = HashSet::new();
    let mut names = HashSet::new();
    for user in users {
        check(user)?;
        if !keys.insert(user.nkey.as_str()) {
            return Err(UsersError::Duplicate(format!(
                "{} {}: key {} is used twice (each connection needs its own)",
                user.role, user.name, user.nkey
            )));
        }
        if !names.insert((user.role, user.name.as_str())) {
            return Err(UsersError::Duplicate(format!(
                "{} {} is listed twice",
                user.role, user.name
            )));
        }
    }
    let mut sorted: Vec<&BrokerUser> = users.iter().collect();
    sorted.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    let all: Vec<(&BrokerUser, Permissions)> = sorted
        .into_iter()
        .map(|u| (u, permissions(u, users)))
        .collect();
    // Rules that several users share (every client's list of nodes) are written once, as a
    // variable, so the file grows with clients + nodes rather than clients × nodes.
    let mut shared: Vec<&Rules> = Vec::new();
    for (i, (_, p)) in all.iter().enumerate() {
        for rules in [&p.publish, &p.subscribe] {
            let reused = all[i + 1..]
                .iter()
                .any(|(_, q)| q.publish == *rules || q.subscribe == *rules);
            if reused
                && rules.allow.len() + rules.deny.len() > SHARE_ABOVE
                && !shared.contains(&rules)
            {
                shared.push(rules);
            }
        }
    }
    let mut out = String::from(
        "# mco broker permissions, written by `mco broker config`: regenerate rather than edit.\n\
         # One nkey user per node, caller, registry service and administrator; see\n\
         # `mco broker --help`. Include this file in nats-server's configuration, which must\n\
         # also enable JetStream (jetstream {}), and run `mco broker setup` as the admin.\n\
         authorization {\n",
    );
    for (i, rules) in shared.iter().enumerate() {
        out.push_str(&format!(
            "  MCO_RULES_{i} = {}\n",
            render_rules(rules, "  ")
        ));
    }
    out.push_str("  users = [\n");
    for (user, p) in &all {
        out.push_str(&format!(
            "    # {} {} (collectives: {})\n    {{\n      nkey: {}\n      permissions: {{\n",
            user.role,
            user.name,
            user.collectives.join(", "),
            quote(&user.nkey)
        ));
        for (direction, rules) in [("publish", &p.publish), ("subscribe", &p.subscribe)] {
            let text = match shared.iter().position(|s| *s == rules) {
                Some(i) => format!("$MCO_RULES_{i}"),
                None => render_rules(rules, "        "),
            };
            out.push_str(&format!("        {direction}: {text}\n"));
        }
        out.push_str("      }\n    }\n");
    }
    out.push_str("  ]\n}\n");
    Ok(out)
}

/// Rules longer than this that several users share are written once as a variable.
const SHARE_ABOVE: usize = 8;

/// `{ allow: [...] deny: [...] }`, one list a line, indented by `indent`.
fn render_rules(rules: &Rules, indent: &str) -> String {
    let mut out = String::from("{\n");
    for (kind, list) in [("allow", &rules.allow), ("deny", &rules.deny)] {
        if !list.is_empty() {
            let quoted: Vec<String> = list.iter().map(|s| quote(s)).collect();
            out.push_str(&format!("{indent}  {kind}: [{}]\n", quoted.join(", ")));
        }
    }
    out.push_str(&format!("{indent}}}"));
    out
}

/// A double-quoted string for nats-server's configuration format (names and subjects are
/// checked to hold no quotes, backslashes or line breaks, so JSON quoting is exact).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";

    fn user(role: BrokerRole, name: &str, nkey: &str) -> BrokerUser {
        BrokerUser {
            role,
            name: name.into(),
            nkey: nkey.into(),
            collectives: vec!["mco".into()],
        }
    }

    fn user_key() -> String {
        nkeys::KeyPair::new_user().public_key()
    }

    #[test]
    fn a_node_reads_only_its_own_subjects_and_its_own_consumer() {
        let node = user(BrokerRole::Node, "web1.example.net", KEY_A);
        let p = permissions(&node, std::slice::from_ref(&node));
        let consumer = consumer_name("web1.example.net");
        assert!(p
            .subscribe
            .allow
            .contains(&"mco.node.web1.example.net".to_string()));
        assert!(p
            .subscribe
            .allow
            .contains(&"mco.broadcast.agent.*".to_string()));
        assert_eq!(p.subscribe.deny, ["mco.broadcast.agent.registration"]);
        assert!(p.subscribe.allow.iter().all(|s| !s.starts_with("_INBOX.")));
        for s in &p.publish.allow {
            assert!(
                s.starts_with("mco.reply.")
                    || s == "mco.broadcast.agent.registration"
                    || s == "mco.event.*.*.web1.example.net"
                    || s == "$JS.API.STREAM.INFO.MCO_EVENTS_mco"
                    || s.contains(&consumer),
                "{s}"
            );
            assert!(
                !s.starts_with("$JS.API.STREAM") || s.starts_with("$JS.API.STREAM.INFO."),
                "{s}"
            );
        }
    }

    #[test]
    fn a_client_reads_only_its_own_replies_and_inbox() {
        let alice = BrokerUser {
            collectives: vec!["mco".into(), "eu".into()],
            ..user(BrokerRole::Client, "alice", &user_key())
        };
        let users = [
            alice.clone(),
            user(BrokerRole::Node, "web1", &user_key()),
            BrokerUser {
                collectives: vec!["uk".into()],
                ..user(BrokerRole::Node, "web2", &user_key())
            },
        ];
        let p = permissions(&alice, &users);
        // Direct requests only to the nodes listed in its collectives.
        assert!(p.publish.allow.contains(&"mco.node.web1".to_string()));
        assert!(!p
            .publish
            .allow
            .iter()
            .any(|s| s.contains("web2") || s.ends_with(".>")));
        assert_eq!(
            p.subscribe.allow,
            [
                format!("{}.>", subjects::reply_prefix("mco", "alice")),
                "mco.event.>".to_string(),
                format!("{}.>", subjects::reply_prefix("eu", "alice")),
                "eu.event.>".to_string(),
                format!("{}.>", inbox_prefix(BrokerRole::Client, "alice")),
            ]
        );
        assert!(p.publish.allow.iter().all(|s| !s.contains(".reply.")));
        assert!(p.publish.allow.iter().all(|s| !s.contains(".event.")));
        // The JetStream API only to read: the queue's info, and the event history.
        assert!(p.publish.allow.iter().all(|s| !s.starts_with("$JS.")
            || s.starts_with("$JS.API.STREAM.INFO.")
            || s.starts_with("$JS.API.CONSUMER.CREATE.MCO_EVENTS_")
            || s.starts_with("$JS.API.CONSUMER.MSG.NEXT.MCO_EVENTS_")
            || s.starts_with("$JS.API.CONSUMER.DELETE.MCO_EVENTS_")));
    }

    #[test]
    fn inboxes_differ_by_role_and_name() {
        let a = inbox_prefix(BrokerRole::Node, "web1");
        assert_ne!(a, inbox_prefix(BrokerRole::Client, "web1"));
        assert_ne!(a, inbox_prefix(BrokerRole::Node, "web2"));
        assert!(a.starts_with("_INBOX_") && !a.contains('.'), "{a}");
    }

    #[test]
    fn bad_users_are_refused_with_their_name() {
        let a = user_key();
        for (users, want) in [
            (vec![], "no users"),
            (vec![user(BrokerRole::Node, "a b", &a)], "node \"a b\""),
            (vec![user(BrokerRole::Client, "", &a)], "non-empty"),
            (vec![user(BrokerRole::Node, "web1", "SUAB")], "not an nkey"),
            (
                vec![user(
                    BrokerRole::Node,
                    "web1",
                    &nkeys::KeyPair::new_server().public_key(),
                )],
                "starts with U",
            ),
            (
                vec![
                    user(BrokerRole::Node, "web1", &a),
                    user(BrokerRole::Node, "web2", &a),
                ],
                "used twice",
            ),
            (
                vec![
                    user(BrokerRole::Node, "web1", &a),
                    user(BrokerRole::Node, "web1", &user_key()),
                ],
                "listed twice",
            ),
            (
                vec![BrokerUser {
                    collectives: vec!["a.b".into()],
                    ..user(BrokerRole::Client, "alice", &a)
                }],
                "not a valid collective",
            ),
        ] {
            let e = authorization_block(&users).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn the_clients_shared_list_of_nodes_is_written_once() {
        let mut users: Vec<BrokerUser> = (0..20)
            .map(|i| user(BrokerRole::Node, &format!("web{i}"), &user_key()))
            .collect();
        users.extend((0..3).map(|i| user(BrokerRole::Client, &format!("c{i}"), &user_key())));
        let text = authorization_block(&users).unwrap();
        // Once in the clients' shared list, once in web7's own subscriptions.
        assert_eq!(text.matches("\"mco.node.web7\"").count(), 2, "{text}");
        assert_eq!(text.matches("publish: $MCO_RULES_0").count(), 3, "{text}");
    }

    #[test]
    fn the_block_names_each_user_in_a_stable_order() {
        let text = authorization_block(&[
            user(BrokerRole::Client, "alice", &user_key()),
            user(BrokerRole::Node, "web1", KEY_A),
        ])
        .unwrap();
        let node = text.find("# node web1").unwrap();
        let client = text.find("# client alice").unwrap();
        assert!(node < client, "{text}");
        assert!(!text.contains("MCO_RULES"), "{text}");
        assert!(text.contains(&format!("nkey: \"{KEY_A}\"")), "{text}");
        assert!(text.starts_with("# mco broker permissions"));
    }
}
