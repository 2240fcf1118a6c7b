//! Replay protection: a request id seen before, within the window in which the request could
//! still be accepted, is refused.
//!
//! Memory is bounded by the window: an id is remembered until its request expires (after
//! which the time check refuses it anyway), and at most `capacity` ids are kept; when full,
//! new ids are refused rather than old ones forgotten, so a flood cannot make the guard
//! forget and accept a replay.

use std::collections::{BTreeMap, HashMap};

/// Remembers recently accepted request ids until they expire.
#[derive(Debug)]
pub struct ReplayGuard {
    expiry_by_id: HashMap<String, u64>,
    ids_by_expiry: BTreeMap<u64, Vec<String>>,
    capacity: usize,
}

/// Why [`ReplayGuard::admit`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// The id was seen before and has not expired.
    Replayed,
    /// The guard is full of unexpired ids.
    Full,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` unexpired ids.
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            expiry_by_id: HashMap::new(),
            ids_by_expiry: BTreeMap::new(),
            capacity,
        }
    }

    /// Admits `id` (whose request is acceptable until `expires_ms`) if it has not been seen.
    pub fn admit(&mut self, id: &str, expires_ms: u64, now_ms: u64) -> Result<(), ReplayError> {
        self.forget_expired(now_ms);
        if self.expiry_by_id.contains_key(id) {
            return Err(ReplayError::Replayed);
        }
        if self.expiry_by_id.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        self.expiry_by_id.insert(id.to_string(), expires_ms);
        self.ids_by_expiry
            .entry(expires_ms)
            .or_default()
            .push(id.to_string());
        Ok(())
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.expiry_by_id.len()
    }

    /// Whether no ids are remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry_by_id.is_empty()
    }

    fn forget_expired(&mut self, now_ms: u64) {
        while let Some(entry) = self.ids_by_expiry.first_entry() {
            if *entry.key() >= now_ms {
                break;
            }
            for id in entry.remove() {
                self.expiry_by_id.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_expiry_and_memory_is_bounded() {
        let mut guard = ReplayGuard::new(3);
        assert_eq!(guard.admit("a", 100, 0), Ok(()));
        assert_eq!(guard.admit("a", 100, 50), Err(ReplayError::Replayed));
        assert_eq!(guard.admit("b", 200, 50), Ok(()));
        assert_eq!(guard.admit("c", 300, 50), Ok(()));
        assert_eq!(guard.admit("d", 300, 50), Err(ReplayError::Full));
        // After a's expiry it is forgotten (the time window refuses it anyway) and there is room.
        assert_eq!(guard.admit("d", 300, 101), Ok(()));
        assert_eq!(guard.len(), 3);
        assert_eq!(guard.admit("x", 1000, 400), Ok(()));
        assert_eq!(guard.len(), 1);
    }
}
