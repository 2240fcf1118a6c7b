//! The pure decisions of a call, with no broker: which nodes, how they are reached and why,
//! in which slices, and with which TTL.
//!
//! When the node list is known — named ([`crate::Call::nodes`], plain `-I`), read by a
//! discovery method that yields a list (flatfile, stdin, registry, external), narrowed by a
//! limit, sliced into batches, or found by a broadcast discovery to be at most
//! `direct_threshold` nodes — each node gets a direct request; otherwise one broadcast carries
//! the filter. One request (one id, one signature, one TTL) serves every slice of a call, so
//! its TTL must cover the whole run: without an explicit TTL it is stretched to, and an
//! explicit one too short for the run is warned about.
//!
//! Not for: discovering (the call does that first) or sending.

use std::collections::VecDeque;
use std::time::Duration;

use mco_discovery::limit::{choose, slices, Size};
use mco_discovery::method::MethodKind;
use mco_spec::subjects;

use crate::error::{invalid, CallError};
use crate::result::{Mode, ModeReason, Warning};

/// `--limit-nodes`: act on part of the nodes, chosen at random.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// How many.
    pub size: Size,
    /// A seed makes the choice repeatable.
    pub seed: Option<u64>,
}

/// `--batch`: direct requests in slices, each waited for before the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batch {
    /// Nodes per slice.
    pub size: Size,
    /// Pause between slices.
    pub sleep: Duration,
}

/// Where a call's nodes come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// The call named them.
    Given(Vec<String>),
    /// The filter was nothing but plain identities.
    Identities(Vec<String>),
    /// A discovery method found them.
    Discovered {
        /// The nodes.
        nodes: Vec<String>,
        /// The method.
        method: MethodKind,
    },
}

/// What shapes a call's plan besides its nodes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// A broadcast discovery finding at most this many nodes goes direct.
    pub(crate) direct_threshold: usize,
    /// Part of the nodes only.
    pub(crate) limit: Option<Limit>,
    /// Slices.
    pub(crate) batch: Option<Batch>,
    /// How long each slice waits for replies.
    pub(crate) timeout: Duration,
    /// The call's own TTL, if it has one.
    pub(crate) ttl: Option<u64>,
    /// The client's default TTL.
    pub(crate) default_ttl: u64,
}

/// A call's plan.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) mode: Mode,
    pub(crate) reason: ModeReason,
    /// Every node the call is for, sorted (discovery order for broadcast).
    pub(crate) nodes: Vec<String>,
    /// The slices of direct requests (none for a broadcast).
    pub(crate) slices: VecDeque<Vec<String>>,
    pub(crate) ttl: u64,
    pub(crate) warnings: Vec<Warning>,
}

impl Plan {
    /// How many slices the call will send (0 when there is nobody to send to).
    pub(crate) fn batches_planned(&self) -> usize {
        match self.mode {
            Mode::Direct => self.slices.len(),
            Mode::Broadcast => usize::from(!self.nodes.is_empty()),
        }
    }
}

/// Decides the plan for the nodes of `source`.
pub(crate) fn decide(source: Source, shape: Shape) -> Result<Plan, CallError> {
    let (mut nodes, mut mode, mut reason) = match source {
        Source::Given(nodes) => (checked(nodes)?, Mode::Direct, ModeReason::NodesGiven),
        Source::Identities(nodes) => (checked(nodes)?, Mode::Direct, ModeReason::IdentitiesNamed),
        Source::Discovered { nodes, method } if method.yields_node_list() => {
            (nodes, Mode::Direct, ModeReason::NodeList(method))
        }
        Source::Discovered { nodes, .. } => {
            let found = nodes.len();
            let threshold = shape.direct_threshold;
            if found <= threshold {
                (
                    nodes,
                    Mode::Direct,
                    ModeReason::FewDiscovered { found, threshold },
                )
            } else {
                let reason = ModeReason::ManyDiscovered { found, threshold };
                (nodes, Mode::Broadcast, reason)
            }
        }
    };
    if let Some(limit) = shape.limit {
        let of = nodes.len();
        nodes = choose(&nodes, limit.size, limit.seed);
        if nodes.len() < of {
            mode = Mode::Direct;
            reason = ModeReason::Limited {
                chosen: nodes.len(),
                of,
            };
        }
    }
    if shape.batch.is_some() && mode == Mode::Broadcast {
        mode = Mode::Direct;
        reason = ModeReason::Batching;
    }
    let slices: VecDeque<Vec<String>> = match (mode, shape.batch) {
        _ if nodes.is_empty() => VecDeque::new(),
        (Mode::Direct, Some(batch)) => slices(&nodes, batch.size).into(),
        (Mode::Direct, None) => VecDeque::from([nodes.clone()]),
        (Mode::Broadcast, _) => VecDeque::new(),
    };
    let mut warnings = Vec::new();
    let ttl = ttl_for(shape, slices.len(), &mut warnings);
    Ok(Plan {
        mode,
        reason,
        nodes,
        slices,
        ttl,
        warnings,
    })
}

/// Named nodes, each a valid identity, sorted and without duplicates.
fn checked(mut nodes: Vec<String>) -> Result<Vec<String>, CallError> {
    if let Some(bad) = nodes.iter().find(|n| !subjects::is_valid_identity(n)) {
        return Err(invalid(format!("{bad:?} is not a valid identity")));
    }
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// The request's TTL for a run of `slices` slices.
fn ttl_for(shape: Shape, slices: usize, warnings: &mut Vec<Warning>) -> u64 {
    let run = match shape.batch {
        Some(batch) if slices > 1 => {
            let n = slices as u64;
            n * shape.timeout.as_secs().max(1) + (n - 1) * batch.sleep.as_secs().max(1)
        }
        _ => 0,
    };
    match shape.ttl {
        Some(ttl) => {
            if run > ttl {
                warnings.push(Warning::ShortTtl { ttl, run });
            }
            ttl
        }
        None => shape
            .default_ttl
            .saturating_add(run)
            .min(mco_spec::message::MAX_TTL_SECONDS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i:02}")).collect()
    }

    fn shape() -> Shape {
        Shape {
            direct_threshold: 10,
            limit: None,
            batch: None,
            timeout: Duration::from_secs(10),
            ttl: None,
            default_ttl: 60,
        }
    }

    #[test]
    fn the_mode_follows_where_the_nodes_came_from() {
        let table: Vec<(Source, Mode, &str)> = vec![
            (Source::Given(vec!["b".into(), "a".into(), "a".into()]), Mode::Direct, "the node list was given"),
            (Source::Identities(names(3)), Mode::Direct, "-I named the nodes"),
            (
                Source::Discovered { nodes: names(40), method: MethodKind::Flatfile },
                Mode::Direct,
                "the flatfile discovery method gave the node list",
            ),
            (
                Source::Discovered { nodes: names(10), method: MethodKind::Broadcast },
                Mode::Direct,
                "broadcast discovery found 10 node(s), at most direct_addressing_threshold (10)",
            ),
            (
                Source::Discovered { nodes: names(11), method: MethodKind::Broadcast },
                Mode::Broadcast,
                "broadcast discovery found 11 nodes, more than direct_addressing_threshold (10): one broadcast with the filter",
            ),
        ];
        for (source, mode, reason) in table {
            let plan = decide(source, shape()).unwrap();
            assert_eq!(plan.mode, mode, "{reason}");
            assert_eq!(plan.reason.to_string(), reason);
        }
        let given = decide(
            Source::Given(vec!["b".into(), "a".into(), "a".into()]),
            shape(),
        )
        .unwrap();
        assert_eq!(given.nodes, ["a", "b"]);
        assert!(decide(Source::Given(vec!["a b".into()]), shape()).is_err());
    }

    #[test]
    fn limits_and_batches_go_direct_in_slices() {
        let limited = Shape {
            limit: Some(Limit {
                size: Size::Count(5),
                seed: Some(1),
            }),
            ..shape()
        };
        let plan = decide(
            Source::Discovered {
                nodes: names(40),
                method: MethodKind::Broadcast,
            },
            limited,
        )
        .unwrap();
        assert_eq!((plan.mode, plan.nodes.len()), (Mode::Direct, 5));
        assert_eq!(plan.reason.to_string(), "--limit-nodes chose 5 of 40 nodes");
        let batched = Shape {
            batch: Some(Batch {
                size: Size::Count(15),
                sleep: Duration::from_secs(5),
            }),
            ..shape()
        };
        let plan = decide(
            Source::Discovered {
                nodes: names(40),
                method: MethodKind::Broadcast,
            },
            batched,
        )
        .unwrap();
        assert_eq!(plan.mode, Mode::Direct);
        assert_eq!(plan.reason, ModeReason::Batching);
        assert_eq!(
            plan.slices.iter().map(Vec::len).collect::<Vec<_>>(),
            [15, 15, 10]
        );
        assert_eq!(plan.batches_planned(), 3);
        let nobody = decide(
            Source::Discovered {
                nodes: vec![],
                method: MethodKind::Broadcast,
            },
            shape(),
        )
        .unwrap();
        assert_eq!(nobody.batches_planned(), 0);
    }

    #[test]
    fn a_batched_run_stretches_the_default_ttl_and_warns_about_a_short_one() {
        let batch = Some(Batch {
            size: Size::Count(2),
            sleep: Duration::from_secs(5),
        });
        // 4 slices: 4 × 10 s waiting + 3 × 5 s sleeping.
        let plan = decide(Source::Given(names(8)), Shape { batch, ..shape() }).unwrap();
        assert_eq!(plan.ttl, 60 + 55);
        assert!(plan.warnings.is_empty());
        let short = decide(
            Source::Given(names(8)),
            Shape {
                batch,
                ttl: Some(30),
                ..shape()
            },
        )
        .unwrap();
        assert_eq!(short.ttl, 30);
        assert_eq!(short.warnings, [Warning::ShortTtl { ttl: 30, run: 55 }]);
        let plain = decide(Source::Given(names(8)), shape()).unwrap();
        assert_eq!(plain.ttl, 60);
    }
}
