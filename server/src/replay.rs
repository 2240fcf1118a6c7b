//! Replay protection: a request id seen before, within the window in which the request could
//! still be accepted, is refused.
//!
//! Memory is bounded by the window: an id is remembered until its request expires (after
//! which the time check refuses it anyway), and at most `capacity` ids are kept; when full,
//! new ids are refused rather than old ones forgotten, so a flood cannot make the guard
//! forget and accept a replay.
//!
//! With a journal file ([`ReplayGuard::with_journal`]) the memory survives a restart: every
//! admitted id is appended (one `write` per id, before the action runs) and read back at
//! start. So a queued direct request that JetStream hands out again after the daemon was
//! killed mid-action is recognised and not run a second time, and a captured request cannot
//! be replayed against a freshly restarted node. The journal is written without `fsync`: it
//! survives the daemon dying, not the machine losing power, which would cost a disk flush per
//! request. It is compacted when it holds many expired ids. It is readable by its owner only
//! (0600): it is rewritten at every start, which also takes away any wider mode it had.
//!
//! Ids are remembered as 128-bit digests (SHA-256, truncated), not as strings: a node
//! admits one id per request it gets, and a fleet-wide broadcast storm must not turn into
//! two string allocations per request on every node. A digest collision could only make a
//! fresh request look replayed (a refusal, never an acceptance), and at 128 bits it does not
//! happen. Appended journal lines carry the id itself (`<expiry> <id>`); lines rewritten by
//! compaction carry the digest (`<expiry> #<32 hex digits>`). Both load.
//!
//! Expiry is tracked per second, not per millisecond: an id is forgotten in the sweep after
//! the second in which it expires (so up to a second late, never early), and the sweep runs
//! only when that second has passed. A node's memory is then a hash set plus one short list
//! per second of the TTL window, and admitting an id touches little more than the hash set:
//! in the fleet simulator, where a thousand nodes' memories compete for the CPU caches, the
//! per-millisecond tree was a tenth of the CPU.
//!
//! Not for: deciding whether a request is inside its time window (the pipeline does that).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A request id's digest: what the guard remembers.
type IdDigest = u128;

fn digest(id: &str) -> IdDigest {
    let hash = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_be_bytes(first)
}

/// Digests are uniformly distributed already; hashing them again would be wasted work.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed (through write_u128); this keeps the hasher total.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

type DigestMap<V> = HashMap<IdDigest, V, BuildHasherDefault<DigestHasher>>;

/// Remembers recently accepted request ids until they expire.
#[derive(Debug)]
pub struct ReplayGuard {
    /// Each remembered id's expiry, Unix milliseconds.
    expiry_by_id: DigestMap<u64>,
    /// The ids by the second they expire in (rounded up), for the sweep.
    ids_by_second: BTreeMap<u64, Vec<IdDigest>>,
    /// Nothing is due to be forgotten before this Unix millisecond.
    next_sweep_ms: u64,
    capacity: usize,
    journal: Option<Journal>,
}

/// The second in which `expires_ms` falls, rounded up: every id in its bucket has expired
/// once the clock is past the bucket's end.
fn expiry_second(expires_ms: u64) -> u64 {
    expires_ms.div_ceil(1000)
}

/// Why [`ReplayGuard::admit`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// The id was seen before and has not expired.
    Replayed,
    /// The guard is full of unexpired ids.
    Full,
}

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("replay journal {path}: {source}")]
pub struct JournalError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

/// The append-only file behind a persistent guard.
#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
    /// Lines in the file, live or expired; compaction happens when it is far above the
    /// number of live ids.
    lines: usize,
}

/// Compact when the journal holds this many lines more than twice the live ids.
const COMPACT_SLACK: usize = 10_000;

impl ReplayGuard {
    /// A guard remembering at most `capacity` unexpired ids, in memory only.
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            expiry_by_id: DigestMap::default(),
            ids_by_second: BTreeMap::new(),
            next_sweep_ms: u64::MAX,
            capacity,
            journal: None,
        }
    }

    /// A guard that also keeps its ids in `path`, loading the unexpired ones written by an
    /// earlier run. Malformed lines (a write cut short by a crash) are skipped.
    pub fn with_journal(
        capacity: usize,
        path: &Path,
        now_ms: u64,
    ) -> Result<ReplayGuard, JournalError> {
        let error = |source| JournalError {
            path: path.display().to_string(),
            source,
        };
        let mut guard = ReplayGuard::new(capacity);
        match File::open(path) {
            Ok(file) => {
                for line in BufReader::new(file).lines() {
                    let line = line.map_err(error)?;
                    let Some((expires, id)) = line.split_once(' ') else {
                        continue;
                    };
                    let Ok(expires) = expires.parse::<u64>() else {
                        continue;
                    };
                    let key = match id.strip_prefix('#') {
                        Some(hex) if hex.len() == 32 => match u128::from_str_radix(hex, 16) {
                            Ok(key) => key,
                            Err(_) => continue,
                        },
                        _ if !id.is_empty() => digest(id),
                        _ => continue,
                    };
                    if expires >= now_ms && guard.len() < capacity {
                        guard.remember(key, expires);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let file = rewrite(path, &guard.expiry_by_id).map_err(error)?;
        guard.journal = Some(Journal {
            path: path.to_path_buf(),
            file,
            lines: guard.len(),
        });
        Ok(guard)
    }

    /// Admits `id` (whose request is acceptable until `expires_ms`) if it has not been seen.
    pub fn admit(&mut self, id: &str, expires_ms: u64, now_ms: u64) -> Result<(), ReplayError> {
        self.forget_expired(now_ms);
        let key = digest(id);
        if self.expiry_by_id.contains_key(&key) {
            return Err(ReplayError::Replayed);
        }
        if self.expiry_by_id.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        self.remember(key, expires_ms);
        self.journal_append(id, expires_ms);
        Ok(())
    }

    /// Whether `id` is remembered (and not expired at `now_ms`).
    pub fn contains(&self, id: &str, now_ms: u64) -> bool {
        self.expiry_by_id
            .get(&digest(id))
            .is_some_and(|&e| e >= now_ms)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.expiry_by_id.len()
    }

    /// Whether no ids are remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry_by_id.is_empty()
    }

    fn remember(&mut self, key: IdDigest, expires_ms: u64) {
        self.expiry_by_id.insert(key, expires_ms);
        let second = expiry_second(expires_ms);
        self.ids_by_second.entry(second).or_default().push(key);
        self.next_sweep_ms = self.next_sweep_ms.min(second.saturating_mul(1000));
    }

    fn journal_append(&mut self, id: &str, expires_ms: u64) {
        let live = self.expiry_by_id.len();
        let Some(journal) = &mut self.journal else {
            return;
        };
        // One write per line, so a killed daemon leaves whole lines (or a cut last line,
        // which loading skips).
        let line = format!("{expires_ms} {id}\n");
        if let Err(e) = journal.file.write_all(line.as_bytes()) {
            // The id is still remembered in memory; only a restart would forget it.
            tracing::error!(
                "cannot append to the replay journal {}: {e}",
                journal.path.display()
            );
            return;
        }
        journal.lines += 1;
        if journal.lines > live.saturating_mul(2) + COMPACT_SLACK {
            match rewrite(&journal.path, &self.expiry_by_id) {
                Ok(file) => {
                    journal.file = file;
                    journal.lines = live;
                }
                Err(e) => tracing::error!(
                    "cannot compact the replay journal {}: {e}",
                    journal.path.display()
                ),
            }
        }
    }

    fn forget_expired(&mut self, now_ms: u64) {
        if now_ms <= self.next_sweep_ms {
            return;
        }
        while let Some(entry) = self.ids_by_second.first_entry() {
            let second = *entry.key();
            if second.saturating_mul(1000) >= now_ms {
                break;
            }
            for key in entry.remove() {
                // A journal can list an id twice; only its latest expiry counts.
                if let Entry::Occupied(id) = self.expiry_by_id.entry(key) {
                    if expiry_second(*id.get()) <= second {
                        id.remove();
                    }
                }
            }
        }
        self.next_sweep_ms = self
            .ids_by_second
            .first_key_value()
            .map_or(u64::MAX, |(second, _)| second.saturating_mul(1000));
    }
}

/// Writes the live ids to a new file and puts it in place of `path` atomically; returns it
/// opened for appending.
fn rewrite(path: &Path, ids: &DigestMap<u64>) -> std::io::Result<File> {
    let tmp = path.with_extension("tmp");
    {
        // Owner only: the ids say who was sent what, and when. The mode is set on the open
        // file as well, because a stale temporary file keeps the mode it was created with.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut out = std::io::BufWriter::new(file);
        for (key, expires) in ids {
            writeln!(out, "{expires} #{key:032x}")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_expiry_and_memory_is_bounded() {
        let mut guard = ReplayGuard::new(3);
        assert_eq!(guard.admit("a", 10_000, 0), Ok(()));
        assert_eq!(guard.admit("a", 10_000, 5_000), Err(ReplayError::Replayed));
        assert_eq!(guard.admit("b", 20_000, 5_000), Ok(()));
        assert_eq!(guard.admit("c", 30_000, 5_000), Ok(()));
        assert_eq!(guard.admit("d", 30_000, 5_000), Err(ReplayError::Full));
        // After a's expiry it is forgotten (the time window refuses it anyway) and there is room.
        assert_eq!(guard.admit("d", 30_000, 10_001), Ok(()));
        assert_eq!(guard.len(), 3);
        assert_eq!(guard.admit("x", 100_000, 40_000), Ok(()));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn an_id_is_forgotten_within_the_second_after_it_expires_never_before() {
        let mut guard = ReplayGuard::new(10);
        assert_eq!(guard.admit("a", 10_400, 0), Ok(()));
        // Expired (the pipeline's time check refuses it) but still within its second.
        assert_eq!(guard.admit("b", 20_000, 10_500), Ok(()));
        assert_eq!(guard.len(), 2);
        assert_eq!(guard.admit("a", 20_000, 10_999), Err(ReplayError::Replayed));
        assert_eq!(guard.admit("c", 20_000, 11_001), Ok(()));
        assert!(!guard.contains("a", 0), "forgotten after its second");
        assert!(guard.contains("b", 11_001));
    }

    #[test]
    fn a_journal_remembers_ids_across_restarts_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let mut guard = ReplayGuard::with_journal(10, &path, 0).unwrap();
        assert_eq!(guard.admit("early", 100, 0), Ok(()));
        assert_eq!(guard.admit("late", 1000, 0), Ok(()));
        drop(guard);
        // A crash can cut the last line short; it is skipped.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"12").unwrap();
        drop(f);

        let mut guard = ReplayGuard::with_journal(10, &path, 500).unwrap();
        assert_eq!(guard.len(), 1, "only the unexpired id is loaded");
        assert!(guard.contains("late", 500));
        assert_eq!(guard.admit("late", 1000, 500), Err(ReplayError::Replayed));
        assert_eq!(guard.admit("early", 1000, 500), Ok(()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "compacted at start: {text}");
    }

    #[test]
    fn the_journal_is_private_to_its_owner_even_when_it_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut guard = ReplayGuard::with_journal(10, &path, 0).unwrap();
        assert_eq!(mode(&path), 0o600, "a new journal");
        guard.admit("a", 100, 0).unwrap();
        drop(guard);
        // An older mcod wrote it with the umask's mode; a crash left a readable temporary.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, "").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        let guard = ReplayGuard::with_journal(10, &path, 0).unwrap();
        assert_eq!(mode(&path), 0o600, "tightened at start");
        assert!(guard.contains("a", 0));
    }

    #[test]
    fn the_journal_is_compacted_when_it_holds_mostly_expired_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let mut guard = ReplayGuard::with_journal(100, &path, 0).unwrap();
        for i in 0..(COMPACT_SLACK as u64 + 10) {
            // Each id expires before the next is admitted, so at most two are remembered
            // (the last one's second may not have passed yet).
            assert_eq!(
                guard.admit(&format!("id{i}"), i * 1000 + 500, i * 1000),
                Ok(())
            );
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < COMPACT_SLACK, "{lines} lines");
        let reloaded = ReplayGuard::with_journal(100, &path, 0).unwrap();
        assert!(reloaded.contains(&format!("id{}", COMPACT_SLACK + 9), 0));
    }
}
