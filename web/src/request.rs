//! The API's request bodies and their translation into the library's `Call`, `Filter` and
//! `Discovery`, with every check that is the gateway's own: a timeout within the gateway's
//! cap, and no discovery option that would make the gateway run a program or read a file an
//! HTTP caller names. Inputs are not checked here: the library checks them against the DDL
//! (the same check the nodes run) before anything is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use mco_client::{Call, ClientOptions, Discovery, Filter, MethodKind, Size};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// One of `Filter`'s parsers of a flag's argument (`Filter::add_fact`, ...).
type AddEntry = fn(&mut Filter, &str) -> Result<(), mco_client::FilterError>;

/// Filters in the command line's syntax, one list per flag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSpec {
    /// `-F`: `country=uk`, `cpus>=4`.
    pub fact: Vec<String>,
    /// `-C`: `role::web`, `/^role/`.
    pub class: Vec<String>,
    /// `-I`: `web1`, `/^web/`.
    pub identity: Vec<String>,
    /// `-A`: agents the nodes must have.
    pub agent: Vec<String>,
    /// `-S`: compound expressions.
    pub compound: Vec<String>,
    /// `-W`: facts and classes mixed.
    pub with: Vec<String>,
}

impl FilterSpec {
    /// The filter, or a 400 naming the entry that does not parse.
    pub fn to_filter(&self) -> Result<Filter, ApiError> {
        let mut filter = Filter::default();
        let lists: [(&str, &Vec<String>, AddEntry); 6] = [
            ("fact", &self.fact, Filter::add_fact),
            ("class", &self.class, Filter::add_class),
            ("identity", &self.identity, Filter::add_identity),
            ("agent", &self.agent, Filter::add_agent),
            ("compound", &self.compound, Filter::add_compound),
            ("with", &self.with, Filter::add_with),
        ];
        for (name, entries, add) in lists {
            for (i, entry) in entries.iter().enumerate() {
                add(&mut filter, entry).map_err(|e| {
                    ApiError::bad_field(format!("filter.{name}[{i}]"), e.to_string())
                })?;
            }
        }
        filter
            .compile()
            .map_err(|e| ApiError::bad_field("filter", e.to_string()))?;
        Ok(filter)
    }
}

/// A discovery method and its options, as `--dm` and `--do` give them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySpec {
    /// `broadcast`, `registry` or `external` (node lists go in `nodes`).
    pub method: String,
    /// Options for the method (`--do key=value`); the external program receives them.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Options an HTTP caller may not give: they would make the gateway run a program, open a
/// database or read a file of the caller's choosing. The gateway's configuration sets them.
const GATEWAY_ONLY_OPTIONS: [&str; 3] = ["command", "url", "file"];

impl DiscoverySpec {
    /// The library's discovery for this method, with the gateway's program and database.
    pub fn to_discovery(&self, client: &ClientOptions) -> Result<Discovery, ApiError> {
        let method = MethodKind::from_name(&self.method)
            .map_err(|e| ApiError::bad_field("discovery.method", e.to_string()))?;
        if matches!(method, MethodKind::Flatfile | MethodKind::Stdin) {
            return Err(ApiError::bad_field(
                "discovery.method",
                format!(
                    "the {} method reads a node list: send the names in \"nodes\"",
                    method.name()
                ),
            ));
        }
        if let Some(option) = self
            .options
            .keys()
            .find(|k| GATEWAY_ONLY_OPTIONS.contains(&k.as_str()))
        {
            return Err(ApiError::bad_field(
                format!("discovery.options.{option}"),
                format!(
                    "the {option} option is set by the gateway's configuration, not by a request"
                ),
            ));
        }
        Discovery::from_method(method, self.options.clone(), client).map_err(ApiError::from)
    }
}

/// A number of nodes or a percentage, as `--limit-nodes` and `--batch` take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    /// `5`.
    Count(usize),
    /// `"5"` or `"10%"`.
    Text(String),
}

impl SizeSpec {
    fn to_size(&self, field: &str) -> Result<Size, ApiError> {
        match self {
            SizeSpec::Count(0) => Err(ApiError::bad_field(field, "must be at least 1")),
            SizeSpec::Count(n) => Ok(Size::Count(*n)),
            SizeSpec::Text(t) => t
                .parse::<Size>()
                .map_err(|e| ApiError::bad_field(field, e.to_string())),
        }
    }
}

/// Direct requests in slices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// Nodes per slice.
    pub size: SizeSpec,
    /// Seconds between slices.
    #[serde(default)]
    pub sleep: f64,
}

/// `POST /api/v1/discover`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverRequest {
    /// Which nodes.
    pub filter: FilterSpec,
    /// The collective (default: the main one).
    pub collective: Option<String>,
    /// The method (default: the configuration's).
    pub discovery: Option<DiscoverySpec>,
    /// How long broadcast discovery may take, seconds.
    pub discovery_timeout: Option<f64>,
}

/// `POST /api/v1/agents/{agent}/actions/{action}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallRequest {
    /// The action's inputs, typed as the DDL says.
    pub inputs: Map<String, Value>,
    /// Which nodes.
    pub filter: FilterSpec,
    /// The collective (default: the main one).
    pub collective: Option<String>,
    /// The discovery method (default: the configuration's).
    pub discovery: Option<DiscoverySpec>,
    /// These nodes, by name, instead of discovery: direct requests, queued for nodes that
    /// are down.
    pub nodes: Option<Vec<String>>,
    /// At most this many (or this percentage) of the discovered nodes.
    pub limit: Option<SizeSpec>,
    /// The seed that makes `limit`'s choice repeatable.
    pub limit_seed: Option<u64>,
    /// Direct requests in slices.
    pub batch: Option<BatchSpec>,
    /// How long the request stays valid, seconds.
    pub ttl: Option<u64>,
    /// How long to wait for replies, seconds.
    pub timeout: Option<f64>,
    /// How long broadcast discovery may take, seconds.
    pub discovery_timeout: Option<f64>,
}

/// `seconds` as a duration within `cap`, or a 400 naming `field`.
pub fn seconds(field: &str, seconds: f64, cap: Duration) -> Result<Duration, ApiError> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(ApiError::bad_field(
            field,
            format!("{seconds} is not a positive number of seconds"),
        ));
    }
    // A finite number can still be beyond any Duration (1e300): that is "too long", too.
    let duration = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX);
    if duration > cap {
        return Err(ApiError::bad_field(
            field,
            format!(
                "{seconds} s is more than this gateway allows ({} s)",
                cap.as_secs_f64()
            ),
        ));
    }
    Ok(duration)
}

impl CallRequest {
    /// The library call for `agent#action`, within the gateway's `cap` on waiting.
    pub fn to_call(
        &self,
        agent: &str,
        action: &str,
        client: &ClientOptions,
        cap: Duration,
    ) -> Result<Call, ApiError> {
        let mut call = Call::new(agent, action)
            .data(self.inputs.clone())
            .filter(self.filter.to_filter()?);
        if let Some(collective) = &self.collective {
            call = call.collective(collective);
        }
        if let Some(discovery) = &self.discovery {
            call = call.discovery(discovery.to_discovery(client)?);
        }
        if let Some(nodes) = &self.nodes {
            if self.discovery.is_some() {
                return Err(ApiError::bad_field(
                    "nodes",
                    "give either nodes or a discovery method, not both",
                ));
            }
            call = call.nodes(nodes.iter().cloned());
        }
        if let Some(limit) = &self.limit {
            call = call.limit(limit.to_size("limit")?, self.limit_seed);
        }
        if let Some(batch) = &self.batch {
            let sleep = match batch.sleep {
                0.0 => Duration::ZERO,
                s => seconds("batch.sleep", s, cap)?,
            };
            call = call.batch(batch.size.to_size("batch.size")?, sleep);
        }
        if let Some(ttl) = self.ttl {
            if ttl == 0 {
                return Err(ApiError::bad_field("ttl", "must be at least 1 second"));
            }
            call = call.ttl(ttl);
        }
        let timeout = match self.timeout {
            Some(t) => seconds("timeout", t, cap)?,
            None => client.timeout.min(cap),
        };
        call = call.timeout(timeout);
        if let Some(t) = self.discovery_timeout {
            call = call.discovery_timeout(seconds("discovery_timeout", t, cap)?);
        }
        Ok(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ClientOptions {
        mco_client::Client::builder().options().clone()
    }

    #[test]
    fn a_bad_filter_entry_is_named_by_its_place() {
        let spec: FilterSpec =
            serde_json::from_value(serde_json::json!({"fact": ["country=uk", "=x"]})).unwrap();
        let e = spec.to_filter().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("filter.fact[1]"), "{e:?}");
        assert_eq!(e.status.as_u16(), 400);
    }

    #[test]
    fn callers_cannot_choose_the_program_database_or_file_of_discovery() {
        for (method, option) in [
            ("external", "command"),
            ("registry", "url"),
            ("external", "file"),
        ] {
            let spec = DiscoverySpec {
                method: method.into(),
                options: [(option.to_string(), "/bin/sh".to_string())].into(),
            };
            let e = spec.to_discovery(&options()).unwrap_err();
            assert_eq!(
                e.field,
                Some(format!("discovery.options.{option}")),
                "{e:?}"
            );
        }
        let flatfile = DiscoverySpec {
            method: "flatfile".into(),
            options: BTreeMap::new(),
        };
        assert!(flatfile.to_discovery(&options()).is_err());
    }

    #[test]
    fn waits_are_capped_by_the_gateway() {
        let cap = Duration::from_secs(60);
        assert!(seconds("timeout", 61.0, cap).is_err());
        assert!(seconds("timeout", f64::NAN, cap).is_err());
        assert!(seconds("timeout", 0.0, cap).is_err());
        // Found by schemathesis: a finite number too large for a Duration panicked.
        assert!(seconds("timeout", 1.8446744073709552e19, cap).is_err());
        assert!(seconds("timeout", f64::MAX, cap).is_err());
        assert_eq!(
            seconds("timeout", 1.5, cap).unwrap(),
            Duration::from_millis(1500)
        );
        let request = CallRequest {
            timeout: Some(1e9),
            ..CallRequest::default()
        };
        let e = request
            .to_call("rpcutil", "ping", &options(), cap)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("timeout"));
    }
}
