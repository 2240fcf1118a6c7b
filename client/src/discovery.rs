//! Discovery from the client's side: one entry point, [`Client::discover_with`], for every
//! method (`--dm`), each answering with the node list and how long it took.
//!
//! Broadcast discovery is the client's own (a ping on the broker); the other methods are
//! built from `mco_discovery`'s pieces (the registry database is read on a blocking thread). A method that cannot serve the filter refuses it.
//!
//! Not for: reading files or stdin (the command line does, and hands over the parsed list),
//! or sending the request itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mco_discovery::method::{select_from_list, MethodKind};
use mco_spec::Filter;

use crate::client::{Client, ClientError};

/// Where the node list comes from.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub enum Discovery {
    /// A discovery ping on the broker; every filter.
    #[default]
    Broadcast,
    /// A list of node names already read (from `--nodes FILE` or stdin); identity filters
    /// select from it, other filters are refused.
    List {
        /// Which method read it (flatfile or stdin), for messages.
        method: MethodKind,
        /// The names.
        nodes: Vec<String>,
    },
    /// The registry database that the registry service (`mcod registry`) fills from node
    /// registrations; every filter except data-plugin calls, no broadcast.
    Registry {
        /// An SQLite file (`PATH` or `sqlite://PATH`) or `postgres://...`.
        url: String,
    },
    /// A program speaking Choria's external discovery protocol.
    External {
        /// The program and its arguments.
        command: Vec<String>,
        /// Options passed to it (`--do key=value`).
        options: BTreeMap<String, String>,
    },
}

impl Discovery {
    /// The method's kind.
    pub fn kind(&self) -> MethodKind {
        match self {
            Discovery::Broadcast => MethodKind::Broadcast,
            Discovery::List { method, .. } => *method,
            Discovery::Registry { .. } => MethodKind::Registry,
            Discovery::External { .. } => MethodKind::External,
        }
    }
}

/// What a discovery found.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The nodes, sorted.
    pub nodes: Vec<String>,
    /// The method used.
    pub method: MethodKind,
    /// How long it took.
    pub elapsed: Duration,
}

impl Client {
    /// Finds the nodes matching `filter` in `collective` (main if `None`) with `discovery`.
    /// `timeout` bounds broadcast and external discovery (the client's discovery timeout if
    /// `None`).
    ///
    /// For node lists, `filter` must not carry the agent a call adds: a list knows names only.
    pub async fn discover_with(
        &self,
        discovery: &Discovery,
        filter: &Filter,
        collective: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Discovered, ClientError> {
        filter.compile()?;
        let collective = self.collective(collective)?;
        let started = Instant::now();
        let nodes = match discovery {
            Discovery::Broadcast => self.discover(filter, Some(&collective), timeout).await?,
            Discovery::List { method, nodes } => select_from_list(*method, nodes.clone(), filter)?,
            Discovery::External { command, options } => {
                let request = mco_discovery::external::ExternalRequest {
                    collective: &collective,
                    filter,
                    options,
                    timeout: timeout.unwrap_or(self.options().discovery_timeout),
                };
                mco_discovery::external::discover(command, &request).await?
            }
            #[cfg(not(feature = "registry"))]
            Discovery::Registry { .. } => return Err(ClientError::InvalidInput(
                "this build of mco-client reads no registry database (its registry feature is off)"
                    .into(),
            )),
            #[cfg(feature = "registry")]
            Discovery::Registry { url } => {
                let (url, filter, in_collective) =
                    (url.clone(), filter.clone(), collective.clone());
                // Both database drivers block; the registry is also dropped on that thread,
                // as the PostgreSQL driver's own runtime must not be dropped on ours.
                tokio::task::spawn_blocking(move || {
                    mco_discovery::registry::Registry::open_existing(&url)?
                        .discover(&filter, &in_collective)
                })
                .await
                .map_err(|e| {
                    ClientError::InvalidInput(format!("registry discovery failed: {e}"))
                })??
            }
        };
        Ok(Discovered {
            nodes,
            method: discovery.kind(),
            elapsed: started.elapsed(),
        })
    }
}
