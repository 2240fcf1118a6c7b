//! Target binding: a signed request names the nodes it is for, compactly.
//!
//! A direct request goes to named nodes. If the signed bytes did not say which, anyone who
//! reads a request off one node's subject could publish it, unchanged and validly signed, to
//! another node's subject. So a direct request carries a [`Targets`] commitment inside the
//! signed request: the root of a Merkle tree over the identities it is for, and their number.
//! Each node's copy carries, outside the signed bytes, a [`TargetProof`]: its leaf index and
//! the audit path from its leaf to the root. A node accepts a targeted request only when the
//! proof shows its own identity is one of the leaves. One signature serves any number of
//! nodes, and a node's proof is `ceil(log2(n))` hashes (14 for 10,000 nodes).
//!
//! # The tree (RFC 9162, section 2.1, with SHA-256)
//!
//! The leaves are the target identities' UTF-8 bytes, sorted bytewise and without
//! duplicates. With `D[n]` the list of `n` leaves and `k` the largest power of two below `n`:
//!
//! ```text
//! MTH({d0})   = SHA-256(0x00 || d0)
//! MTH(D[n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))      for n > 1
//! ```
//!
//! The audit path of leaf `m` is RFC 9162's `PATH(m, D[n])`, leaf side first, and it is
//! verified with the algorithm of RFC 9162 section 2.1.3.2 ([`Targets::contains`]).
//! Hashes are written as 64 lowercase hex digits.
//!
//! # Wire format
//!
//! In the request (signed): `"targets": {"root": "<64 hex>", "count": 3}`. In the envelope
//! of the copy for one node (not signed): `"target": {"index": 1, "path": ["<64 hex>", ...]}`.
//!
//! Not for: deciding who the targets are (the client) or how the request travels.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The most nodes one request may be for: far more than any fleet, small enough that a
/// proof stays short (at most 32 hashes).
pub const MAX_TARGETS: u64 = 1 << 32;

/// The commitment to the set of nodes a request is for; part of the signed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// The Merkle tree hash of the sorted identities, 64 lowercase hex digits.
    pub root: String,
    /// How many identities the tree has.
    pub count: u64,
}

/// The proof that one identity is among a request's targets; travels beside the signed
/// request in that node's copy of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetProof {
    /// The identity's position among the sorted targets.
    pub index: u64,
    /// The audit path, leaf side first, each hash 64 lowercase hex digits.
    pub path: Vec<String>,
}

type Hash = [u8; 32];

fn leaf_hash(identity: &str) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(identity.as_bytes());
    hasher.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

fn decode_hash(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The largest power of two strictly below `n` (for `n >= 2`).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

impl Targets {
    /// Whether `proof` shows that `identity` is one of the targets (RFC 9162 2.1.3.2).
    pub fn contains(&self, identity: &str, proof: &TargetProof) -> bool {
        let Some(root) = decode_hash(&self.root) else {
            return false;
        };
        if self.count == 0 || self.count > MAX_TARGETS || proof.index >= self.count {
            return false;
        }
        if proof.path.len() > 64 {
            return false;
        }
        let mut f = proof.index;
        let mut s = self.count - 1;
        let mut r = leaf_hash(identity);
        for step in &proof.path {
            let Some(p) = decode_hash(step) else {
                return false;
            };
            if s == 0 {
                return false;
            }
            if f & 1 == 1 || f == s {
                r = node_hash(&p, &r);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, &p);
            }
            f >>= 1;
            s >>= 1;
        }
        s == 0 && r == root
    }
}

/// A set of target identities with its Merkle tree: the commitment for the request and a
/// proof for each identity.
#[derive(Debug, Clone)]
pub struct TargetSet {
    /// The identities, sorted and without duplicates: leaf `i` is `identities[i]`.
    identities: Vec<String>,
    /// Every subtree, halves before the tree they make up.
    nodes: Vec<Subtree>,
    /// The index of the whole tree in `nodes`.
    root: usize,
}

#[derive(Debug, Clone)]
struct Subtree {
    start: usize,
    end: usize,
    hash: Hash,
    /// Indexes of the two halves in `TargetSet::nodes` (none for a leaf).
    halves: Option<(usize, usize)>,
}

impl TargetSet {
    /// The tree over `identities` (sorted and deduplicated here). `None` when there are none.
    pub fn new(identities: impl IntoIterator<Item = impl Into<String>>) -> Option<TargetSet> {
        let mut identities: Vec<String> = identities.into_iter().map(Into::into).collect();
        identities.sort_unstable();
        identities.dedup();
        if identities.is_empty() {
            return None;
        }
        let mut set = TargetSet {
            nodes: Vec::with_capacity(identities.len() * 2),
            identities,
            root: 0,
        };
        set.root = set.build(0, set.identities.len());
        Some(set)
    }

    /// Builds the subtree over leaves `start..end`, returning its index in `nodes`.
    fn build(&mut self, start: usize, end: usize) -> usize {
        let (hash, halves) = if end - start == 1 {
            (leaf_hash(&self.identities[start]), None)
        } else {
            let k = split_point(end - start);
            let left = self.build(start, start + k);
            let right = self.build(start + k, end);
            (
                node_hash(&self.nodes[left].hash, &self.nodes[right].hash),
                Some((left, right)),
            )
        };
        self.nodes.push(Subtree {
            start,
            end,
            hash,
            halves,
        });
        self.nodes.len() - 1
    }

    /// The commitment to put in the signed request.
    pub fn targets(&self) -> Targets {
        Targets {
            root: hex::encode(self.nodes[self.root].hash),
            count: self.identities.len() as u64,
        }
    }

    /// The identities, sorted: leaf `i` is the `i`th.
    pub fn identities(&self) -> &[String] {
        &self.identities
    }

    /// The proof for `identity`, if it is one of the targets.
    pub fn proof(&self, identity: &str) -> Option<TargetProof> {
        self.index_of(identity).map(|index| self.proof_at(index))
    }

    /// The position of `identity` among the targets, if it is one.
    pub fn index_of(&self, identity: &str) -> Option<usize> {
        self.identities
            .binary_search_by(|i| i.as_str().cmp(identity))
            .ok()
    }

    /// The hashes on the path of leaf `index` (below the number of identities), leaf side
    /// first.
    fn path_hashes(&self, index: usize) -> Vec<&Hash> {
        let mut path = Vec::with_capacity(33);
        let mut current = &self.nodes[self.root];
        while let Some((left, right)) = current.halves {
            let (into, sibling) = if index < self.nodes[left].end {
                (left, right)
            } else {
                (right, left)
            };
            path.push(&self.nodes[sibling].hash);
            current = &self.nodes[into];
        }
        debug_assert!(current.start == index && current.end == index + 1);
        path.reverse();
        path
    }

    /// The proof for leaf `index` (which must be below the number of identities).
    pub fn proof_at(&self, index: usize) -> TargetProof {
        TargetProof {
            index: index as u64,
            path: self
                .path_hashes(index)
                .into_iter()
                .map(hex::encode)
                .collect(),
        }
    }

    /// Appends the JSON of leaf `index`'s proof to `out`: byte for byte what serde writes
    /// for [`Self::proof_at`], without building its strings (a call to 10,000 nodes writes
    /// 10,000 proofs).
    pub fn write_proof(&self, index: usize, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.extend_from_slice(b"{\"index\":");
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{index}");
        out.extend_from_slice(b",\"path\":[");
        let mut digits = [0u8; 64];
        for (i, hash) in self.path_hashes(index).into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            // 32 bytes always fit 64 hex digits.
            let _ = hex::encode_to_slice(hash, &mut digits);
            out.extend_from_slice(&digits);
            out.push(b'"');
        }
        out.extend_from_slice(b"]}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i:05}.example.net")).collect()
    }

    #[test]
    fn every_target_proves_membership_and_no_other_name_does() {
        for n in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100] {
            let set = TargetSet::new(names(n)).unwrap();
            let targets = set.targets();
            assert_eq!(targets.count, n as u64);
            for (i, name) in set.identities().iter().enumerate() {
                let proof = set.proof(name).unwrap();
                assert_eq!(proof.index, i as u64);
                assert!(targets.contains(name, &proof), "n={n} {name}");
                // The proof is for that name only, at that index only.
                assert!(!targets.contains("intruder", &proof), "n={n}");
                let mut moved = proof.clone();
                moved.index = (moved.index + 1) % n as u64;
                if n > 1 {
                    assert!(!targets.contains(name, &moved), "n={n} moved index");
                }
            }
            assert!(set.proof("intruder").is_none());
        }
    }

    #[test]
    fn a_proof_cannot_be_stretched_shortened_or_reused_across_sets() {
        let set = TargetSet::new(names(9)).unwrap();
        let other = TargetSet::new(names(10)).unwrap();
        let name = &set.identities()[4];
        let proof = set.proof(name).unwrap();
        assert!(!other.targets().contains(name, &proof));
        let mut short = proof.clone();
        short.path.pop();
        assert!(!set.targets().contains(name, &short));
        let mut long = proof.clone();
        long.path.push("00".repeat(32));
        assert!(!set.targets().contains(name, &long));
        let mut bad_hex = proof.clone();
        bad_hex.path[0] = "zz".repeat(32);
        assert!(!set.targets().contains(name, &bad_hex));
        let mut wrong_count = set.targets();
        wrong_count.count = 8;
        assert!(!wrong_count.contains(name, &proof));
        // An internal node's hash is not a leaf: a proof of a subtree is no proof.
        let mut as_internal = proof;
        as_internal.path.remove(0);
        assert!(!set.targets().contains(name, &as_internal));
    }

    #[test]
    fn the_tree_is_rfc_9162_and_independent_of_input_order() {
        // One leaf: the root is the leaf hash; two leaves: one node over both.
        let one = TargetSet::new(["web1"]).unwrap().targets();
        assert_eq!(one.root, hex::encode(leaf_hash("web1")));
        let two = TargetSet::new(["web2", "web1", "web1"]).unwrap().targets();
        assert_eq!(two.count, 2);
        assert_eq!(
            two.root,
            hex::encode(node_hash(&leaf_hash("web1"), &leaf_hash("web2")))
        );
        // Three leaves: MTH = H(1 || H(1 || a || b) || c).
        let three = TargetSet::new(["c", "a", "b"]).unwrap().targets();
        let ab = node_hash(&leaf_hash("a"), &leaf_hash("b"));
        assert_eq!(three.root, hex::encode(node_hash(&ab, &leaf_hash("c"))));
        // A fixed vector for independent implementations (also in PROTOCOL.md).
        assert_eq!(
            TargetSet::new(["db1", "web1", "web2"])
                .unwrap()
                .targets()
                .root,
            "e8f3fb2b467407600dc1453987272713cb49cc29ce4d20f64520373c05131c7d"
        );
        assert!(TargetSet::new(Vec::<String>::new()).is_none());
    }

    #[test]
    fn written_proofs_are_the_serialised_proofs() {
        for n in [1, 2, 5, 1000] {
            let set = TargetSet::new(names(n)).unwrap();
            for index in [0, n / 2, n - 1] {
                let mut out = Vec::new();
                set.write_proof(index, &mut out);
                assert_eq!(
                    out,
                    serde_json::to_vec(&set.proof_at(index)).unwrap(),
                    "n={n}"
                );
            }
        }
    }

    #[test]
    fn proofs_are_logarithmic() {
        let set = TargetSet::new(names(10_000)).unwrap();
        let proof = set.proof_at(1234);
        assert_eq!(proof.path.len(), 14);
        assert!(set.targets().contains(&set.identities()[1234], &proof));
    }
}
