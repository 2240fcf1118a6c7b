//! `mco keys`: the organisation's issuer key and the tokens it signs.
//!
//! ```text
//! mco keys issuer --dir /etc/mco/ca                       # issuer.key (0600), issuer.pub
//! mco keys client alice --issuer-key /etc/mco/ca/issuer.key --dir ~/.config/mco
//! mco keys server web1.example.net --issuer-key /etc/mco/ca/issuer.key --dir /etc/mco
//! mco keys show ~/.config/mco/alice.token
//! mco keys verify ~/.config/mco/alice.token --issuer /etc/mco/ca/issuer.pub
//! ```

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use mco_spec::message::now_millis;
use mco_spec::security::{encode_public_key, Token, TokenClaims, TokenRole};

use crate::{Failure, Printed};

/// Arguments of `mco keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create the organisation's issuer key pair: DIR/issuer.key (0600) and DIR/issuer.pub.
    Issuer {
        /// Where to write the files.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Create a key for a caller and a client token for it: DIR/NAME.key and DIR/NAME.token.
    Client {
        /// The caller name policies and audit will see.
        name: String,
        #[command(flatten)]
        issue: IssueArgs,
        /// Agents the token may call, comma separated (default: all). Discovery is always
        /// allowed, so a limited caller can find the nodes it may act on.
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        /// Collectives the token may use, comma separated (default: all).
        #[arg(long, value_delimiter = ',')]
        collectives: Vec<String>,
    },
    /// Create a key for a node and a server token for its identity: DIR/ID.key and DIR/ID.token.
    Server {
        /// The node's identity.
        identity: String,
        #[command(flatten)]
        issue: IssueArgs,
    },
    /// Print a token's claims.
    Show {
        /// The token file.
        token: PathBuf,
    },
    /// Check a token against an issuer's public key and the current time.
    Verify {
        /// The token file.
        token: PathBuf,
        /// The issuer's public key file.
        #[arg(long)]
        issuer: PathBuf,
    },
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// The issuer's private key.
    #[arg(long)]
    issuer_key: PathBuf,
    /// Where to write the key and token.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Seconds from now until the token becomes valid (negative: already valid since).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    starts_in: i64,
    /// How long the token is valid, seconds (default: one year).
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    valid_for: u64,
}

fn issue(
    role: TokenRole,
    name: &str,
    args: &IssueArgs,
    agents: Vec<String>,
    collectives: Vec<String>,
    printed: &mut Printed,
) -> Result<u8, Failure> {
    if !mco_spec::subjects::is_valid_identity(name) {
        return Err(anyhow::anyhow!(
            "{name:?} is not a valid name (letters, digits, '.', '-', '_')"
        )
        .into());
    }
    let issuer = mco_keys::read_private_key(&args.issuer_key)?;
    let key = mco_keys::generate_key()?;
    let now = now_millis() / 1000;
    let not_before = now.saturating_add_signed(args.starts_in);
    let claims = TokenClaims {
        role,
        name: name.to_string(),
        public_key: encode_public_key(&key.verifying_key()),
        issuer: String::new(),
        not_before,
        expires: not_before.saturating_add(args.valid_for),
        agents,
        collectives,
    };
    let token = Token::issue(&claims, &issuer);
    std::fs::create_dir_all(&args.dir)?;
    let key_path = args.dir.join(format!("{name}.key"));
    let token_path = args.dir.join(format!("{name}.token"));
    mco_keys::write_private_key(&key_path, &key)?;
    std::fs::write(&token_path, format!("{token}\n"))?;
    printed.out.push_str(&format!(
        "wrote {} and {} ({role} token for {name})\n",
        key_path.display(),
        token_path.display()
    ));
    Ok(0)
}

fn read_token(path: &Path) -> Result<Token, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Token::parse(text.trim()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()).into())
}

pub(super) fn run(args: &KeysArgs, printed: &mut Printed) -> Result<u8, Failure> {
    match &args.command {
        KeysCommand::Issuer { dir } => {
            std::fs::create_dir_all(dir)?;
            let key = mco_keys::generate_key()?;
            mco_keys::write_private_key(&dir.join("issuer.key"), &key)?;
            mco_keys::write_public_key(&dir.join("issuer.pub"), &key.verifying_key())?;
            printed.out.push_str(&format!(
                "wrote {} (keep it secret) and {} (give it to every node and client)\n",
                dir.join("issuer.key").display(),
                dir.join("issuer.pub").display()
            ));
            Ok(0)
        }
        KeysCommand::Client {
            name,
            issue: a,
            agents,
            collectives,
        } => issue(
            TokenRole::Client,
            name,
            a,
            agents.clone(),
            collectives.clone(),
            printed,
        ),
        KeysCommand::Server { identity, issue: a } => {
            issue(TokenRole::Server, identity, a, vec![], vec![], printed)
        }
        KeysCommand::Show { token } => {
            let token = read_token(token)?;
            printed.out.push_str(&format!(
                "{}\n",
                serde_json::to_string_pretty(token.claims()).unwrap_or_default()
            ));
            Ok(0)
        }
        KeysCommand::Verify {
            token: path,
            issuer,
        } => {
            let token = read_token(path)?;
            let issuer = mco_keys::read_public_key(issuer)?;
            let role = token.claims().role;
            match token.verify(&[issuer], role, now_millis() / 1000, 0) {
                Ok(()) => {
                    printed.out.push_str(&format!(
                        "{}: valid {role} token for {}\n",
                        path.display(),
                        token.claims().name
                    ));
                    Ok(0)
                }
                Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display()).into()),
            }
        }
    }
}
