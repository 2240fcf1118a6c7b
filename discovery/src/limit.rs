//! Choosing part of a node list: `--limit-nodes N|N%` (with `--limit-seed` for a repeatable
//! choice) and the slices of `--batch N|N%`.
//!
//! A limit picks nodes at random — so repeated runs spread over the fleet — from the sorted
//! list, with ChaCha8 seeded by `--limit-seed` when given: the same seed and the same nodes
//! give the same choice on any machine. Percentages round down but never to zero nodes.
//!
//! Not for: discovering the nodes.

use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::DiscoveryError;

/// How many nodes: a count or a percentage of the nodes there are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    /// Exactly this many (or all there are, if fewer).
    Count(usize),
    /// This percentage (above 0, at most 100), rounded down, at least one node.
    Percent(f64),
}

impl Size {
    /// How many of `total` nodes this is.
    pub fn of(self, total: usize) -> usize {
        let wanted = match self {
            Size::Count(n) => n,
            Size::Percent(p) => ((total as f64) * p / 100.0).floor() as usize,
        };
        wanted.clamp(1, total.max(1)).min(total)
    }
}

impl FromStr for Size {
    type Err = DiscoveryError;

    fn from_str(text: &str) -> Result<Size, DiscoveryError> {
        let invalid = || {
            DiscoveryError::InvalidOption(format!(
                "{text:?} is not a number of nodes (N) or a percentage (N%)"
            ))
        };
        match text.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| invalid())?;
                if p > 0.0 && p <= 100.0 {
                    Ok(Size::Percent(p))
                } else {
                    Err(DiscoveryError::InvalidOption(format!(
                        "{text:?}: a percentage must be above 0 and at most 100"
                    )))
                }
            }
            None => match text.trim().parse::<usize>() {
                Ok(0) => Err(DiscoveryError::InvalidOption(format!(
                    "{text:?}: must be at least 1 node"
                ))),
                Ok(n) => Ok(Size::Count(n)),
                Err(_) => Err(invalid()),
            },
        }
    }
}

/// Picks `size` of `nodes` at random (repeatably with `seed`); the result is sorted.
pub fn choose(nodes: &[String], size: Size, seed: Option<u64>) -> Vec<String> {
    let wanted = size.of(nodes.len());
    let mut sorted = nodes.to_vec();
    sorted.sort();
    sorted.dedup();
    if wanted >= sorted.len() {
        return sorted;
    }
    let mut rng = match seed {
        Some(seed) => rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        None => rand_chacha::ChaCha8Rng::from_entropy(),
    };
    sorted.shuffle(&mut rng);
    sorted.truncate(wanted);
    sorted.sort();
    sorted
}

/// Splits `nodes` into consecutive slices of `size` (a percentage of all of them).
pub fn slices(nodes: &[String], size: Size) -> Vec<Vec<String>> {
    let per = size.of(nodes.len()).max(1);
    nodes.chunks(per).map(<[String]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i:03}")).collect()
    }

    #[test]
    fn sizes_parse_and_round_down_but_never_to_zero() {
        let table: &[(&str, usize, usize)] = &[
            ("3", 10, 3),
            ("30", 10, 10),
            ("50%", 10, 5),
            ("33%", 10, 3),
            ("1%", 10, 1),
            ("100%", 7, 7),
            ("2.5%", 1000, 25),
        ];
        for (text, total, want) in table {
            assert_eq!(
                text.parse::<Size>().unwrap().of(*total),
                *want,
                "{text} of {total}"
            );
        }
        for bad in ["0", "-1", "0%", "101%", "x", "5 nodes", ""] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_seed_makes_the_choice_repeatable() {
        let all = nodes(100);
        let a = choose(&all, Size::Count(10), Some(42));
        let b = choose(&all, Size::Count(10), Some(42));
        let c = choose(&all, Size::Count(10), Some(43));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        assert!(a.iter().all(|n| all.contains(n)));
        // Order of the input does not matter.
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(choose(&reversed, Size::Count(10), Some(42)), a);
        assert_eq!(choose(&all[..3], Size::Count(10), None), all[..3]);
    }

    #[test]
    fn slices_cover_every_node_once() {
        let all = nodes(10);
        let s = slices(&all, Size::Count(4));
        assert_eq!(s.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(s.concat(), all);
        assert_eq!(slices(&all, Size::Percent(50.0)).len(), 2);
        assert!(slices(&[], Size::Count(3)).is_empty());
    }
}
