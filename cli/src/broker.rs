//! `mco broker`: lock the broker down. Without permissions anyone on the broker reads every
//! request and reply and publishes anywhere; these commands give every node, caller,
//! registry service and administrator its own NATS user (an nkey) with exactly what its part
//! needs (the rules are `mco_transport::permissions`).
//!
//! ```text
//! mco broker nkey --out /etc/mco/broker.nk --node web1.example.net   # on each node: seed 0600, prints a users line
//! mco broker nkey --out ~/.config/mco/broker.nk --client alice      # per caller (its token's name)
//! mco broker config --users users.txt --out /etc/nats/mco-auth.conf # include it in nats-server.conf
//! mco broker setup --users users.txt -c admin.toml                  # as the admin: the streams and consumers
//! ```
//!
//! Not for: issuing mco tokens (`mco keys`), or running nats-server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use mco_transport::permissions::{authorization_block, BrokerUser};
use mco_transport::BrokerRole;

use crate::{Failure, Printed};

/// Arguments of `mco broker`.
#[derive(Debug, Args)]
#[command(after_help = WORKFLOW)]
pub struct BrokerArgs {
    #[command(subcommand)]
    command: BrokerCommand,
}

const WORKFLOW: &str = "Workflow:
  1. mco broker nkey --out FILE --node ID      on each node; [broker_auth] nkey_seed_file = FILE
     mco broker nkey --out FILE --client NAME  per caller (NAME: its token's name)
     mco broker nkey --out FILE --registry NAME / --admin NAME
     Each prints a users-file line: ROLE NAME KEY [COLLECTIVE,...]; collect them in users.txt.
  2. mco broker config --users users.txt --out mco-auth.conf
     include mco-auth.conf in nats-server's configuration (with jetstream {}); reload it.
  3. mco broker setup --users users.txt -c admin.toml
     as the admin: creates each collective's direct-request stream and every node's consumer.
     Nodes need [direct_queue] provisioned = true.
  Repeat 2 and 3 when nodes or callers come and go.";

#[derive(Debug, Subcommand)]
enum BrokerCommand {
    /// Create an nkey for one broker user: its seed in FILE (0600), its public key printed
    /// (with --node/--client/--registry/--admin, as a users-file line).
    Nkey {
        /// Where to write the seed (refuses to overwrite).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        who: Who,
        /// Collectives the user works in, comma separated (added to the users-file line).
        #[arg(long, value_delimiter = ',', value_name = "COLLECTIVE")]
        collectives: Vec<String>,
    },
    /// Write nats-server's authorization block: one nkey user per node, caller, registry
    /// service and administrator, with exactly the permissions its part needs.
    Config {
        #[command(flatten)]
        users: UsersArgs,
        /// Where to write it (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// As the administrator: create or update each collective's direct-request stream and
    /// every listed node's consumer, which the broker permissions do not let nodes and
    /// clients create. Connects with the client configuration's brokers and [broker_auth].
    Setup {
        #[command(flatten)]
        users: UsersArgs,
        /// Client configuration file with the brokers, [broker_auth] (the admin's nkey) and
        /// [direct_queue] settings (default: the usual places).
        #[arg(short = 'c', long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// NATS server URL; repeat for a pool. Overrides the configuration file.
        #[arg(long, value_name = "URL")]
        broker: Vec<String>,
        /// The admin user this connects as (its inbox); default: the only admin listed, else
        /// "admin".
        #[arg(long = "as", value_name = "NAME")]
        as_admin: Option<String>,
        /// Most requests a node's consumer hands out at once (mcod's max_concurrent_actions).
        #[arg(long, default_value_t = 64, value_name = "N")]
        max_ack_pending: usize,
        /// How long a node may hold a request without reporting progress before it is handed
        /// out again (mcod's [direct_queue] ack_wait_seconds).
        #[arg(long, default_value_t = mco_transport::DEFAULT_ACK_WAIT.as_secs(), value_name = "SECONDS")]
        ack_wait_seconds: u64,
    },
}

/// One user's role and name, for `mco broker nkey`.
#[derive(Debug, Args)]
#[group(multiple = false)]
struct Who {
    /// A node, by identity.
    #[arg(long, value_name = "ID")]
    node: Option<String>,
    /// A caller, by caller name (its token's name).
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// A registry service.
    #[arg(long, value_name = "NAME")]
    registry: Option<String>,
    /// An administrator.
    #[arg(long, value_name = "NAME")]
    admin: Option<String>,
}

/// The broker's users: from users files and from flags.
#[derive(Debug, Args)]
struct UsersArgs {
    /// A users file: one `ROLE NAME KEY [COLLECTIVE,...]` a line (role node, client, registry
    /// or admin; # comments), as `mco broker nkey` prints them. Repeatable.
    #[arg(long, value_name = "FILE")]
    users: Vec<PathBuf>,
    /// A node: ID=KEY (setup takes ID alone). Repeatable.
    #[arg(long, value_name = "ID=KEY")]
    node: Vec<String>,
    /// A caller: NAME=KEY. Repeatable.
    #[arg(long, value_name = "NAME=KEY")]
    client: Vec<String>,
    /// A registry service: NAME=KEY. Repeatable.
    #[arg(long, value_name = "NAME=KEY")]
    registry: Vec<String>,
    /// An administrator: NAME=KEY. Repeatable.
    #[arg(long, value_name = "NAME=KEY")]
    admin: Vec<String>,
    /// Collectives of the users that do not name theirs (default: mco). Repeatable.
    #[arg(long = "collective", value_name = "COLLECTIVE")]
    collectives: Vec<String>,
}

impl UsersArgs {
    /// Every user, from the files then the flags. With `need_keys` false (setup), a flag may
    /// be a bare name.
    fn load(&self, need_keys: bool) -> Result<Vec<BrokerUser>, Failure> {
        let defaults = if self.collectives.is_empty() {
            vec!["mco".to_string()]
        } else {
            self.collectives.clone()
        };
        let mut users = Vec::new();
        for path in &self.users {
            users.extend(read_users(path, &defaults)?);
        }
        for (role, list) in [
            (BrokerRole::Node, &self.node),
            (BrokerRole::Client, &self.client),
            (BrokerRole::Registry, &self.registry),
            (BrokerRole::Admin, &self.admin),
        ] {
            for flag in list {
                let (name, nkey) = match flag.split_once('=') {
                    Some((name, key)) => (name, key),
                    None if !need_keys => (flag.as_str(), ""),
                    None => {
                        return Err(anyhow::anyhow!(
                            "--{role} {flag}: expected NAME=KEY (the public key `mco broker nkey` printed)"
                        )
                        .into())
                    }
                };
                users.push(BrokerUser {
                    role,
                    name: name.to_string(),
                    nkey: nkey.to_string(),
                    collectives: defaults.clone(),
                });
            }
        }
        Ok(users)
    }
}

/// Reads a users file: `ROLE NAME KEY [COLLECTIVE,...]` lines.
fn read_users(path: &Path, defaults: &[String]) -> Result<Vec<BrokerUser>, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut users = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = || format!("{}:{}", path.display(), number + 1);
        let (role, name, nkey, collectives) = match fields.as_slice() {
            [role, name, nkey] => (role, name, nkey, defaults.to_vec()),
            [role, name, nkey, list] => (
                role,
                name,
                nkey,
                list.split(',').map(str::to_string).collect(),
            ),
            _ => {
                return Err(anyhow::anyhow!(
                    "{}: expected ROLE NAME KEY [COLLECTIVE,...], got {line:?}",
                    at()
                )
                .into())
            }
        };
        let role = BrokerRole::from_name(role).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: unknown role {role:?} (node, client, registry or admin)",
                at()
            )
        })?;
        users.push(BrokerUser {
            role,
            name: name.to_string(),
            nkey: nkey.to_string(),
            collectives,
        });
    }
    Ok(users)
}

fn nkey(
    out: &Path,
    who: &Who,
    collectives: &[String],
    printed: &mut Printed,
) -> Result<u8, Failure> {
    let public = mco_keys::write_nkey_seed(out)?;
    let role = [
        (BrokerRole::Node, &who.node),
        (BrokerRole::Client, &who.client),
        (BrokerRole::Registry, &who.registry),
        (BrokerRole::Admin, &who.admin),
    ]
    .into_iter()
    .find_map(|(role, name)| name.as_ref().map(|n| (role, n)));
    let line = match role {
        Some((role, name)) if collectives.is_empty() => format!("{role} {name} {public}"),
        Some((role, name)) => format!("{role} {name} {public} {}", collectives.join(",")),
        None => public,
    };
    printed.out.push_str(&format!("{line}\n"));
    printed.err.push_str(&format!(
        "wrote {} (keep it secret: [broker_auth] nkey_seed_file)\n",
        out.display()
    ));
    Ok(0)
}

fn config(users: &UsersArgs, out: Option<&Path>, printed: &mut Printed) -> Result<u8, Failure> {
    let text = authorization_block(&users.load(true)?)?;
    match out {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            printed.err.push_str(&format!(
                "wrote {}: include it in nats-server's configuration and reload it\n",
                path.display()
            ));
        }
        None => printed.out.push_str(&text),
    }
    Ok(0)
}

struct SetupArgs<'a> {
    users: &'a UsersArgs,
    config: Option<&'a Path>,
    brokers: &'a [String],
    admin: Option<&'a str>,
    consumer: (usize, Duration),
}

async fn setup(args: SetupArgs<'_>, printed: &mut Printed) -> Result<u8, Failure> {
    let users = args.users.load(false)?;
    let nodes: Vec<&BrokerUser> = users
        .iter()
        .filter(|u| u.role == BrokerRole::Node)
        .collect();
    if nodes.is_empty() {
        return Err(anyhow::anyhow!("no nodes listed: give --users FILE or --node ID").into());
    }
    if let Some(bad) = nodes
        .iter()
        .find(|n| !mco_spec::subjects::is_valid_identity(&n.name))
    {
        return Err(anyhow::anyhow!("{:?} is not a valid node identity", bad.name).into());
    }
    if args.consumer.1.is_zero() {
        return Err(anyhow::anyhow!("--ack-wait-seconds must be at least 1").into());
    }
    let admins: Vec<&str> = users
        .iter()
        .filter(|u| u.role == BrokerRole::Admin)
        .map(|u| u.name.as_str())
        .collect();
    let admin = match (args.admin, admins.as_slice()) {
        (Some(name), _) => name,
        (None, [only]) => only,
        (None, _) => "admin",
    };
    let (file, _, base) = crate::load_config(args.config)?;
    let defaults = mco_client::ClientOptions::default();
    let brokers = match (args.brokers, &file.brokers) {
        ([], Some(b)) => b.clone(),
        ([], None) => defaults.brokers,
        (flags, _) => flags.to_vec(),
    };
    let auth = file
        .broker_auth
        .as_ref()
        .map(|a| a.resolved(&base))
        .unwrap_or_default();
    let settings = file.direct_queue.map(|q| q.settings).unwrap_or_default();
    let timeout = file
        .connect_timeout
        .map(Duration::from_secs_f64)
        .unwrap_or(defaults.connect_timeout);
    let nats = mco_client::connect_as(&brokers, &auth, BrokerRole::Admin, admin, timeout).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let collectives: BTreeSet<&String> = nodes.iter().flat_map(|n| &n.collectives).collect();
    for collective in collectives {
        let identities: Vec<String> = nodes
            .iter()
            .filter(|n| n.collectives.contains(collective))
            .map(|n| n.name.clone())
            .collect();
        let report =
            mco_transport::setup(&js, collective, &settings, &identities, args.consumer).await?;
        printed.out.push_str(&format!(
            "{}: {} stream {}; {} node consumer{} ready\n",
            collective,
            if report.created { "created" } else { "updated" },
            report.stream,
            report.consumers,
            if report.consumers == 1 { "" } else { "s" }
        ));
        // The event history, which nodes under broker permissions may not create.
        let events = mco_transport::ensure_events_stream(
            &js,
            collective,
            &mco_transport::EventHistorySettings::default(),
        )
        .await?;
        printed.out.push_str(&format!(
            "{collective}: event history stream {} ready\n",
            events.cached_info().config.name
        ));
    }
    nats.flush().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(0)
}

pub(super) async fn run(args: &BrokerArgs, printed: &mut Printed) -> Result<u8, Failure> {
    match &args.command {
        BrokerCommand::Nkey {
            out,
            who,
            collectives,
        } => nkey(out, who, collectives, printed),
        BrokerCommand::Config { users, out } => config(users, out.as_deref(), printed),
        BrokerCommand::Setup {
            users,
            config,
            broker,
            as_admin,
            max_ack_pending,
            ack_wait_seconds,
        } => {
            setup(
                SetupArgs {
                    users,
                    config: config.as_deref(),
                    brokers: broker,
                    admin: as_admin.as_deref(),
                    consumer: (*max_ack_pending, Duration::from_secs(*ack_wait_seconds)),
                },
                printed,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_files_give_roles_names_keys_and_collectives_or_say_which_line_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.txt");
        let defaults = vec!["mco".to_string()];
        std::fs::write(
            &path,
            "# fleet\nnode web1 UKEY1\n\nclient alice UKEY2 mco,eu  # two collectives\n",
        )
        .unwrap();
        let users = read_users(&path, &defaults).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(
            (
                users[0].role,
                users[0].name.as_str(),
                users[0].nkey.as_str()
            ),
            (BrokerRole::Node, "web1", "UKEY1")
        );
        assert_eq!(users[0].collectives, defaults);
        assert_eq!(users[1].collectives, ["mco", "eu"]);
        for (text, want) in [
            ("node web1\n", "users.txt:1: expected ROLE NAME KEY"),
            (
                "\nserver web1 UKEY\n",
                "users.txt:2: unknown role \"server\"",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = read_users(&path, &defaults).err().unwrap().0.to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}
