//! Turning the discovery flags (`--dm`, `--do`, `--nodes`, `--limit-nodes`, `--limit-seed`)
//! and a piped stdin into the library's [`Discovery`] and [`Limit`], and the one stderr line
//! that says which method found how many nodes in how long.
//!
//! stdin is read as a node list when no `--dm` is given and stdin is a pipe or a file (not a
//! terminal, not /dev/null), as MCollective and Choria do: `mco rpc ... -j | jq ... | mco rpc
//! ...` acts on exactly the nodes the first command printed and the filter kept — none if it
//! kept none, never the whole fleet. `--dm broadcast` ignores stdin, and so does a command run
//! as an `mco events --run` callback, whose stdin is the event.

use std::collections::BTreeMap;
use std::io::Read;

use mco_discovery::limit::Size;
use mco_discovery::method::MethodKind;
use mco_discovery::nodelist;

use crate::{CommonArgs, Failure};
use mco_client::config::ClientConfig;
use mco_client::discovery::DiscoveryEnding;
use mco_client::{ClientBuilder, Discovery, Limit, Stats};

/// What the flags ask for.
#[derive(Debug, Clone)]
pub struct Targeting {
    /// Where the node list comes from.
    pub discovery: Discovery,
    /// `--limit-nodes`.
    pub limit: Option<Limit>,
}

impl CommonArgs {
    /// The discovery method and limit the flags, the configuration and stdin ask for.
    pub fn targeting(&self, config: &ClientConfig) -> Result<Targeting, Failure> {
        let (_, _, base) = self.client_config()?;
        let client = config.apply(ClientBuilder::default(), &base);
        let limit = match (&self.limit_nodes, self.one) {
            (_, true) => Some(Limit {
                size: Size::Count(1),
                seed: self.limit_seed,
            }),
            (Some(text), false) => Some(Limit {
                size: text
                    .parse::<Size>()
                    .map_err(|e| anyhow::anyhow!("--limit-nodes: {e}"))?,
                seed: self.limit_seed,
            }),
            (None, false) => None,
        };
        let mut options = BTreeMap::new();
        for kv in &self.discovery_options {
            // MCollective's `--dm flatfile --do FILE`: a value without `=` names the file.
            let (k, v) = match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => (k, v),
                Some(_) => {
                    return Err(anyhow::anyhow!("--do {kv:?} is not KEY=VALUE or FILE").into())
                }
                None => ("file", kv.as_str()),
            };
            options.insert(k.to_string(), v.to_string());
        }
        let method = match (&self.discovery_method, &self.nodes) {
            (Some(name), _) => MethodKind::from_name(name).map_err(anyhow::Error::from)?,
            (None, Some(_)) => MethodKind::Flatfile,
            (None, None) if stdin_holds_nodes() => MethodKind::Stdin,
            (None, None) => match &config.default_discovery_method {
                Some(name) => MethodKind::from_name(name).map_err(anyhow::Error::from)?,
                None => MethodKind::Broadcast,
            },
        };
        if self.nodes.is_some() && method != MethodKind::Flatfile {
            return Err(anyhow::anyhow!(
                "--nodes reads a node list (the flatfile method); it cannot be combined with --dm {}",
                method.name()
            )
            .into());
        }
        let discovery = match method {
            MethodKind::Flatfile => {
                let path = match (&self.nodes, options.get("file")) {
                    (Some(p), _) => p.clone(),
                    (None, Some(f)) => f.into(),
                    (None, None) => {
                        return Err(anyhow::anyhow!(
                            "the flatfile discovery method needs --nodes FILE (or --do file=FILE)"
                        )
                        .into())
                    }
                };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("--nodes {}: {e}", path.display()))?;
                Discovery::List {
                    method,
                    nodes: nodelist::parse(&text, &path.display().to_string())
                        .map_err(anyhow::Error::from)?,
                }
            }
            MethodKind::Stdin => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| anyhow::anyhow!("cannot read node names from stdin: {e}"))?;
                Discovery::List {
                    method,
                    nodes: nodelist::parse(&text, "stdin").map_err(anyhow::Error::from)?,
                }
            }
            MethodKind::External | MethodKind::Registry | MethodKind::Broadcast => {
                Discovery::from_method(method, options, client.options())?
            }
        };
        Ok(Targeting { discovery, limit })
    }
}

impl CommonArgs {
    /// Whether the flags address every node of the collective: no filter, no node list (from
    /// `--nodes`, a flatfile or stdin) and no limit. What MCollective asks about before an
    /// application changes anything.
    pub fn addresses_whole_fleet(&self) -> Result<bool, Failure> {
        if !self.filter()?.is_empty()
            || self.nodes.is_some()
            || self.limit_nodes.is_some()
            || self.one
        {
            return Ok(false);
        }
        Ok(match &self.discovery_method {
            Some(name) => !matches!(
                MethodKind::from_name(name).map_err(anyhow::Error::from)?,
                MethodKind::Flatfile | MethodKind::Stdin
            ),
            None => !stdin_holds_nodes(),
        })
    }
}

/// Whether stdin, unasked, is a node list: piped to mco, and not the event an `mco events
/// --run` callback is given ([`crate::callbacks`] sets `MCO_EVENT_ID`), so that a callback
/// running `mco rpc ... -C role` discovers as typed on a terminal (`--dm stdin` still reads
/// it).
fn stdin_holds_nodes() -> bool {
    stdin_is_piped() && std::env::var_os(crate::callbacks::EVENT_ID_VARIABLE).is_none()
}

/// Whether stdin is a pipe or a regular file: something that was given to mco to read, as
/// opposed to a terminal, /dev/null or a closed descriptor.
fn stdin_is_piped() -> bool {
    // SAFETY: fstat fills the zeroed struct we own; fd 0 may be closed, which it reports.
    let mode = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut st) != 0 {
            return false;
        }
        st.st_mode
    };
    let kind = mode & libc::S_IFMT;
    kind == libc::S_IFIFO || kind == libc::S_IFREG
}

/// `Discovering hosts using the METHOD method for S second(s) .... N` (stderr), when
/// discovery happened; with `-v`, a second line says why a broadcast discovery ended.
pub fn discovery_line(stats: &Stats, common: &CommonArgs) -> Option<String> {
    if common.quiet {
        return None;
    }
    let verbose = common.verbose;
    let method = stats.discovery_method?;
    Some(discovery_text(
        method,
        stats.discovery_time,
        stats.discovered,
        stats.discovery_end.as_ref(),
        verbose,
    ))
}

/// The discovery line of [`discovery_line`] for what a discovery found.
pub fn discovery_text(
    method: MethodKind,
    took: std::time::Duration,
    found: usize,
    ending: Option<&DiscoveryEnding>,
    verbose: bool,
) -> String {
    let mut text = format!(
        "Discovering hosts using the {} method for {:.2} second(s) .... {found}\n",
        method.name(),
        took.as_secs_f64(),
    );
    if let Some(ending) = ending.filter(|_| verbose) {
        text.push_str(&ending_line(ending));
    }
    text
}

/// `Discovery ended: why` (for `-v`).
pub fn ending_line(ending: &DiscoveryEnding) -> String {
    format!("Discovery ended: {ending}\n")
}

impl CommonArgs {
    /// The nodes the flags select for `filter`, found by the flags' discovery method and cut
    /// by `--limit-nodes`/`-1`, with the discovery line on `err` (unless `-q`).
    pub async fn discover_nodes(
        &self,
        client: &mco_client::Client,
        filter: &mco_spec::Filter,
        err: &mut String,
    ) -> Result<mco_client::discovery::Discovered, Failure> {
        let (config, _, _) = self.client_config()?;
        let targeting = self.targeting(&config)?;
        let mut found = client
            .discover_with(
                &targeting.discovery,
                filter,
                self.target.as_deref(),
                self.discovery_timeout()?,
            )
            .await?;
        if let Some(limit) = targeting.limit {
            found.nodes = mco_discovery::limit::choose(&found.nodes, limit.size, limit.seed);
        }
        if !self.quiet {
            err.push_str(&discovery_text(
                found.method,
                found.elapsed,
                found.nodes.len(),
                found.ending.as_ref(),
                self.verbose,
            ));
        }
        Ok(found)
    }
}
