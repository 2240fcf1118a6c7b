//! Replay protection: a request id seen before, within the window in which the request could
//! still be accepted, is refused.
//!
//! Memory is bounded by the window: an id is remembered until its request expires (after
//! which the time check refuses it anyway), and at most `capacity` ids are kept; when full,
//! new ids are refused rather than old ones forgotten, so a flood cannot make the guard
//! forget and accept a replay. Each caller may hold at most `caller_share` of them, so a
//! flood from one caller fills only its own share and every other caller keeps being served
//! (the pipeline also admits an id only for a request that is about to run, and caps the TTL
//! an id is kept for).
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
//! happen. Journal lines are `<expiry> #<id digest, 32 hex digits> <caller digest, 16 hex
//! digits>`; lines an earlier version wrote (`<expiry> <id>` or `<expiry> #<digest>`) load
//! too, counted against no caller's share. The journal is private to mcod (mode 0600). When
//! it cannot be rewritten at start (a full disk), the daemon still starts: it keeps
//! appending to the old journal, or, if even that fails, keeps the ids in memory only and
//! says so.
//!
//! Expiry is tracked per second, not per millisecond: an id is forgotten in the sweep after
//! the second in which it expires (so up to a second late, never early), and the sweep runs
//! only when that second has passed. A node's memory is then a hash set plus a queue of ids in
//! the order they expire, and admitting an id touches little more than the hash set: in the
//! fleet simulator, where a thousand nodes' memories compete for the CPU caches, the
//! per-millisecond tree was a tenth of the CPU, and a list and tree entry per second most
//! of what remained of the guard beside the hash set.
//!
//! Not for: deciding whether a request is inside its time window (the pipeline does that).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A request id's digest: what the guard remembers.
type IdDigest = u128;

/// A caller's digest: whose share an id counts against.
type CallerDigest = u64;

/// The share of ids that no caller owns (journal lines of an earlier version).
const NO_CALLER: CallerDigest = 0;

fn digest(id: &str) -> IdDigest {
    let hash = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_be_bytes(first)
}

fn caller_digest(caller: &str) -> CallerDigest {
    // The same digest as the caller's reply prefix: remembered per thread for the last
    // caller, so most requests do not hash their caller's name again.
    let hash = mco_spec::subjects::caller_digest(caller);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    // Never NO_CALLER, so a real caller never shares the legacy bucket.
    u64::from_be_bytes(first).max(1)
}

/// What the guard keeps per id.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    expires_ms: u64,
    caller: CallerDigest,
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

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A map keyed by digests (of ids or of callers), which are not hashed again.
type DigestMap<K, V> = HashMap<K, V, BuildHasherDefault<DigestHasher>>;

/// How many ids each caller holds. The caller of the latest request is counted in the
/// guard itself, the others in a map: requests mostly come from the caller of the one
/// before, and then no table is looked into.
#[derive(Debug, Default)]
#[repr(C)]
struct CallerCounts {
    /// The caller counted inline, and its count (which may be 0).
    latest: Option<(CallerDigest, usize)>,
    /// Every other caller holding ids, by digest; never one with 0.
    others: DigestMap<CallerDigest, usize>,
}

impl CallerCounts {
    fn held(&self, caller: CallerDigest) -> usize {
        match self.latest {
            Some((latest, held)) if latest == caller => held,
            _ => self.others.get(&caller).copied().unwrap_or(0),
        }
    }

    /// `caller`'s count, made the inline one.
    fn of(&mut self, caller: CallerDigest) -> &mut usize {
        if !matches!(self.latest, Some((latest, _)) if latest == caller) {
            if let Some((previous, held)) = self.latest.take() {
                if held > 0 {
                    self.others.insert(previous, held);
                }
            }
            let held = self.others.remove(&caller).unwrap_or(0);
            self.latest = Some((caller, held));
        }
        // `latest` is `caller`'s by now: nothing is inserted here.
        &mut self.latest.get_or_insert((caller, 0)).1
    }

    /// Takes one id off `caller`'s count.
    fn release(&mut self, caller: CallerDigest) {
        match &mut self.latest {
            Some((latest, held)) if *latest == caller => *held = held.saturating_sub(1),
            _ => {
                if let Entry::Occupied(mut held) = self.others.entry(caller) {
                    *held.get_mut() -= 1;
                    if *held.get() == 0 {
                        held.remove();
                    }
                }
            }
        }
    }
}

/// The ids by the second they expire in (rounded up), for the sweep.
///
/// Requests mostly arrive in the order they expire (one TTL for a fleet's calls), so ids are
/// kept in one queue in arrival order, each beside its second: listing an id is a push onto
/// the queue's back, and a node that admits an id for every request it runs allocates
/// nothing for it once the queue has grown to its working size. An id expiring earlier than
/// the queue's last one (a shorter TTL) goes into a map by second instead.
#[derive(Debug, Default)]
#[repr(C)]
struct ExpiryIndex {
    /// Seconds and ids in arrival order, the seconds never decreasing.
    in_order: VecDeque<(u64, IdDigest)>,
    /// The second of `in_order`'s last id, 0 when it is empty: kept beside the queue's own
    /// fields, so that listing an id does not first read the queue's last entry, a line a
    /// busy node has lost from its caches.
    last_second: u64,
    /// Ids that expire before the last second of `in_order`, by second.
    earlier: BTreeMap<u64, Vec<IdDigest>>,
}

impl ExpiryIndex {
    /// Queues this small keep their room when they empty.
    const KEPT_ROOM: usize = 64;

    fn add(&mut self, second: u64, key: IdDigest) {
        if self.last_second > second {
            self.earlier.entry(second).or_default().push(key);
        } else {
            self.in_order.push_back((second, key));
            self.last_second = second;
        }
    }

    /// The earliest second listed.
    fn first(&self) -> Option<u64> {
        let queued = self.in_order.front().map(|(second, _)| *second);
        let earlier = self.earlier.first_key_value().map(|(second, _)| *second);
        match (queued, earlier) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one id whose second is before `now_ms`, with that second.
    fn pop_due(&mut self, now_ms: u64) -> Option<(u64, IdDigest)> {
        let due = |second: u64| second.saturating_mul(1000) < now_ms;
        if let Some(mut listed) = self.earlier.first_entry() {
            let second = *listed.key();
            if due(second) {
                let key = listed.get_mut().pop();
                if listed.get().is_empty() {
                    listed.remove();
                }
                if let Some(key) = key {
                    return Some((second, key));
                }
            }
        }
        if !due(self.in_order.front()?.0) {
            return None;
        }
        let popped = self.in_order.pop_front();
        if self.in_order.is_empty() {
            self.last_second = 0;
            // A burst's room is given back once it has been forgotten.
            self.in_order.shrink_to(Self::KEPT_ROOM);
        }
        popped
    }
}

/// Remembers recently accepted request ids until they expire.
///
/// `repr(C)`, in the order an admission reads the fields: a node admits an id for every
/// request it runs, and reads the guard from memory its caches have mostly lost.
#[derive(Debug)]
#[repr(C)]
pub struct ReplayGuard {
    /// Nothing is due to be forgotten before this Unix millisecond.
    next_sweep_ms: u64,
    /// Each remembered id's expiry (Unix milliseconds) and caller.
    expiry_by_id: DigestMap<IdDigest, Remembered>,
    /// How many ids each caller holds.
    ids_by_caller: CallerCounts,
    capacity: usize,
    caller_share: usize,
    /// The ids by the second they expire in (rounded up), for the sweep.
    ids_by_second: ExpiryIndex,
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
    /// The caller holds its whole share of the guard.
    CallerShareFull,
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

/// One journal line: `<expiry> #<id digest> <caller digest>`, or an earlier version's
/// `<expiry> #<id digest>` or `<expiry> <id>`. `None` for a malformed line.
fn parse_journal_line(line: &str) -> Option<(IdDigest, Remembered)> {
    let mut fields = line.split(' ');
    let expires_ms = fields.next()?.parse::<u64>().ok()?;
    let id = fields.next()?;
    let key = match id.strip_prefix('#') {
        Some(hex) if hex.len() == 32 => u128::from_str_radix(hex, 16).ok()?,
        Some(_) => return None,
        None if !id.is_empty() => digest(id),
        None => return None,
    };
    let caller = match fields.next() {
        Some(hex) if hex.len() == 16 => u64::from_str_radix(hex, 16).ok()?,
        Some(_) => return None,
        None => NO_CALLER,
    };
    if fields.next().is_some() {
        return None;
    }
    Some((key, Remembered { expires_ms, caller }))
}

fn journal_line(key: IdDigest, entry: Remembered) -> String {
    format!("{} #{key:032x} {:016x}\n", entry.expires_ms, entry.caller)
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` unexpired ids, at most `caller_share` of them
    /// for any one caller, in memory only.
    pub fn new(capacity: usize, caller_share: usize) -> ReplayGuard {
        ReplayGuard {
            expiry_by_id: DigestMap::default(),
            ids_by_second: ExpiryIndex::default(),
            ids_by_caller: CallerCounts::default(),
            next_sweep_ms: u64::MAX,
            capacity,
            caller_share: caller_share.clamp(1, capacity.max(1)),
            journal: None,
        }
    }

    /// A guard that also keeps its ids in `path`, loading the unexpired ones written by an
    /// earlier run. Malformed lines (a write cut short by a crash) are skipped. A journal
    /// that cannot be compacted (a full disk) is appended to as it is; one that cannot be
    /// written at all leaves the guard in memory only: the node still starts, and says why.
    pub fn with_journal(
        capacity: usize,
        caller_share: usize,
        path: &Path,
        now_ms: u64,
    ) -> Result<ReplayGuard, JournalError> {
        let error = |source| JournalError {
            path: path.display().to_string(),
            source,
        };
        let mut guard = ReplayGuard::new(capacity, caller_share);
        let mut lines = 0;
        match File::open(path) {
            Ok(file) => {
                for line in BufReader::new(file).lines() {
                    let line = line.map_err(error)?;
                    lines += 1;
                    let Some((key, entry)) = parse_journal_line(&line) else {
                        continue;
                    };
                    if entry.expires_ms >= now_ms && guard.len() < capacity {
                        guard.remember(key, entry);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let (file, lines) = match rewrite(path, &guard.expiry_by_id) {
            Ok(file) => (Some(file), guard.len()),
            Err(e) => {
                tracing::error!(
                    "cannot rewrite the replay journal {} ({e}); appending to it as it is",
                    path.display()
                );
                match open_journal(path) {
                    Ok(file) => (Some(file), lines),
                    Err(e) => {
                        tracing::error!(
                            "cannot write the replay journal {} ({e}): request ids are kept in memory only until it can be, so a restart forgets them",
                            path.display()
                        );
                        (None, lines)
                    }
                }
            }
        };
        guard.journal = file.map(|file| Journal {
            path: path.to_path_buf(),
            file,
            lines,
        });
        Ok(guard)
    }

    /// Admits `id` from `caller` (whose request is acceptable until `expires_ms`) if it has
    /// not been seen and there is room for it, in the guard and in the caller's share.
    pub fn admit(
        &mut self,
        id: &str,
        caller: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), ReplayError> {
        self.forget_expired(now_ms);
        let key = digest(id);
        let remembered = self.expiry_by_id.len();
        // One look into the (in a large fleet, rarely cached) table: the slot found for the
        // check is the one the id goes into.
        let Entry::Vacant(slot) = self.expiry_by_id.entry(key) else {
            return Err(ReplayError::Replayed);
        };
        let caller = caller_digest(caller);
        let held = self.ids_by_caller.of(caller);
        if *held >= self.caller_share {
            return Err(ReplayError::CallerShareFull);
        }
        if remembered >= self.capacity {
            return Err(ReplayError::Full);
        }
        *held += 1;
        let entry = Remembered { expires_ms, caller };
        slot.insert(entry);
        self.index_expiry(key, entry.expires_ms);
        self.journal_append(key, entry);
        Ok(())
    }

    /// Whether `id` is remembered (and not expired at `now_ms`).
    pub fn contains(&self, id: &str, now_ms: u64) -> bool {
        self.expiry_by_id
            .get(&digest(id))
            .is_some_and(|e| e.expires_ms >= now_ms)
    }

    /// How many ids `caller` holds.
    pub fn held_by(&self, caller: &str) -> usize {
        self.ids_by_caller.held(caller_digest(caller))
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.expiry_by_id.len()
    }

    /// Whether no ids are remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry_by_id.is_empty()
    }

    fn remember(&mut self, key: IdDigest, entry: Remembered) {
        // A journal can list an id twice; only its latest entry counts, once.
        if let Some(old) = self.expiry_by_id.insert(key, entry) {
            self.release(old.caller);
        }
        *self.ids_by_caller.of(entry.caller) += 1;
        self.index_expiry(key, entry.expires_ms);
    }

    /// Lists `key` under the second it expires in, for the sweep.
    fn index_expiry(&mut self, key: IdDigest, expires_ms: u64) {
        let second = expiry_second(expires_ms);
        self.ids_by_second.add(second, key);
        self.next_sweep_ms = self.next_sweep_ms.min(second.saturating_mul(1000));
    }

    /// Takes one id off `caller`'s count.
    fn release(&mut self, caller: CallerDigest) {
        self.ids_by_caller.release(caller);
    }

    fn journal_append(&mut self, key: IdDigest, entry: Remembered) {
        let live = self.expiry_by_id.len();
        let Some(journal) = &mut self.journal else {
            return;
        };
        // One write per line, so a killed daemon leaves whole lines (or a cut last line,
        // which loading skips).
        let line = journal_line(key, entry);
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
        while let Some((second, key)) = self.ids_by_second.pop_due(now_ms) {
            // An id listed twice is forgotten with its latest expiry only.
            if let Entry::Occupied(id) = self.expiry_by_id.entry(key) {
                if expiry_second(id.get().expires_ms) <= second {
                    let caller = id.remove().caller;
                    self.release(caller);
                }
            }
        }
        self.next_sweep_ms = self
            .ids_by_second
            .first()
            .map_or(u64::MAX, |second| second.saturating_mul(1000));
    }
}

/// Creates (mode 0600) or opens `path` for appending, tightening an existing file that
/// others could read: the journal says when each caller was active.
fn open_journal(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(file)
}

/// Writes the live ids to a new file (mode 0600) and puts it in place of `path`
/// atomically; returns it opened for appending.
fn rewrite(path: &Path, ids: &DigestMap<IdDigest, Remembered>) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    let written = (|| {
        // Owner only: the ids say who was sent what, and when. The mode is set on the open
        // file as well, because a stale temporary file keeps the mode it was created with.
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut out = std::io::BufWriter::new(file);
        for (key, entry) in ids {
            out.write_all(journal_line(*key, *entry).as_bytes())?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A half-written copy must not be left for the next start to trip over.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    open_journal(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_expiry_and_memory_is_bounded() {
        let mut guard = ReplayGuard::new(3, 3);
        assert_eq!(guard.admit("a", "a", 10_000, 0), Ok(()));
        assert_eq!(
            guard.admit("a", "a", 10_000, 5_000),
            Err(ReplayError::Replayed)
        );
        assert_eq!(guard.admit("b", "b", 20_000, 5_000), Ok(()));
        assert_eq!(guard.admit("c", "c", 30_000, 5_000), Ok(()));
        assert_eq!(guard.admit("d", "d", 30_000, 5_000), Err(ReplayError::Full));
        // After a's expiry it is forgotten (the time window refuses it anyway) and there is room.
        assert_eq!(guard.admit("d", "d", 30_000, 10_001), Ok(()));
        assert_eq!(guard.len(), 3);
        assert_eq!(guard.admit("x", "x", 100_000, 40_000), Ok(()));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn an_id_is_forgotten_within_the_second_after_it_expires_never_before() {
        let mut guard = ReplayGuard::new(10, 10);
        assert_eq!(guard.admit("a", "alice", 10_400, 0), Ok(()));
        // Expired (the pipeline's time check refuses it) but still within its second.
        assert_eq!(guard.admit("b", "alice", 20_000, 10_500), Ok(()));
        assert_eq!(guard.len(), 2);
        assert_eq!(
            guard.admit("a", "alice", 20_000, 10_999),
            Err(ReplayError::Replayed)
        );
        assert_eq!(guard.admit("c", "alice", 20_000, 11_001), Ok(()));
        assert!(!guard.contains("a", 0), "forgotten after its second");
        assert!(guard.contains("b", 11_001));
    }

    #[test]
    fn ids_arriving_out_of_expiry_order_are_each_forgotten_in_their_own_second() {
        let mut guard = ReplayGuard::new(100, 100);
        // Long and short TTLs interleaved, and a second listed again after a later one.
        let ids = [
            ("long1", 30_000),
            ("short1", 5_000),
            ("long2", 30_000),
            ("shorter", 3_000),
            ("short2", 5_000),
            ("longest", 40_000),
            ("long3", 30_000),
        ];
        for (id, expires) in ids {
            assert_eq!(guard.admit(id, "alice", expires, 0), Ok(()));
        }
        for now in [1_000, 3_001, 5_001, 30_001, 40_001] {
            // Touch the guard at `now` so it sweeps.
            let probe = format!("probe-{now}");
            assert_eq!(guard.admit(&probe, "bob", now, now), Ok(()));
            for (id, expires) in ids {
                assert_eq!(
                    guard.contains(id, 0),
                    expires >= now,
                    "{id} (expires {expires}) at {now}"
                );
            }
        }
        // Every probe has expired too: only the newest id is left.
        assert_eq!(guard.admit("last", "bob", 50_000, 41_001), Ok(()));
        assert_eq!(guard.len(), 1);
        assert_eq!(guard.ids_by_second.in_order.len(), 1);
        assert!(guard.ids_by_second.earlier.is_empty());
    }

    #[test]
    fn the_expiry_queue_lists_by_its_last_second_and_forgets_it_when_emptied() {
        let mut index = ExpiryIndex::default();
        index.add(10, 1);
        index.add(10, 2);
        // Earlier than the queue's last second: listed by its second instead.
        index.add(5, 3);
        assert_eq!((index.in_order.len(), index.earlier.len()), (2, 1));
        assert_eq!(index.pop_due(11_000), Some((5, 3)));
        assert_eq!(index.pop_due(11_000), Some((10, 1)));
        assert_eq!(index.pop_due(11_000), Some((10, 2)));
        assert_eq!(index.pop_due(11_000), None);
        // Emptied, the queue takes any second again.
        index.add(3, 4);
        assert_eq!((index.in_order.len(), index.earlier.len()), (1, 0));
        index.add(7, 5);
        assert_eq!(index.pop_due(8_000), Some((3, 4)));
        assert_eq!(index.pop_due(8_000), Some((7, 5)));
    }

    #[test]
    fn a_journal_remembers_ids_across_restarts_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let mut guard = ReplayGuard::with_journal(10, 10, &path, 0).unwrap();
        assert_eq!(guard.admit("early", "alice", 100, 0), Ok(()));
        assert_eq!(guard.admit("late", "alice", 1000, 0), Ok(()));
        drop(guard);
        // A crash can cut the last line short; it is skipped.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"12").unwrap();
        drop(f);

        let mut guard = ReplayGuard::with_journal(10, 10, &path, 500).unwrap();
        assert_eq!(guard.len(), 1, "only the unexpired id is loaded");
        assert!(guard.contains("late", 500));
        assert_eq!(
            guard.admit("late", "alice", 1000, 500),
            Err(ReplayError::Replayed)
        );
        assert_eq!(guard.admit("early", "alice", 1000, 500), Ok(()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "compacted at start: {text}");
    }

    #[test]
    fn one_caller_fills_only_its_own_share() {
        let mut guard = ReplayGuard::new(10, 3);
        for i in 0..3 {
            assert_eq!(guard.admit(&format!("m{i}"), "mallory", 60_000, 0), Ok(()));
        }
        assert_eq!(
            guard.admit("m3", "mallory", 60_000, 0),
            Err(ReplayError::CallerShareFull)
        );
        assert_eq!(guard.held_by("mallory"), 3);
        // Everyone else is still served, up to the guard's capacity.
        for i in 0..7 {
            assert_eq!(
                guard.admit(&format!("a{i}"), &format!("c{i}"), 60_000, 0),
                Ok(())
            );
        }
        assert_eq!(guard.admit("z", "zed", 60_000, 0), Err(ReplayError::Full));
        // Expiry gives the share back.
        assert_eq!(guard.admit("m4", "mallory", 200_000, 61_001), Ok(()));
        assert_eq!(guard.held_by("mallory"), 1);
    }

    #[test]
    fn callers_taking_turns_keep_their_own_counts_and_every_id_expires_in_its_second() {
        let mut guard = ReplayGuard::new(100, 4);
        // Interleaved callers, and expiries out of order: later, earlier, the same, later.
        let admitted = [
            ("a1", "alice", 30_000),
            ("b1", "bob", 10_000),
            ("a2", "alice", 10_000),
            ("b2", "bob", 30_000),
            ("a3", "alice", 50_000),
            ("c1", "carol", 20_000),
            ("b3", "bob", 50_000),
        ];
        for (id, caller, expires) in admitted {
            assert_eq!(guard.admit(id, caller, expires, 0), Ok(()), "{id}");
        }
        let held =
            |guard: &ReplayGuard| ["alice", "bob", "carol"].map(|caller| guard.held_by(caller));
        assert_eq!(held(&guard), [3, 3, 1]);
        assert_eq!(
            guard.admit("a1", "alice", 60_000, 0),
            Err(ReplayError::Replayed)
        );
        // Each id is forgotten in the sweep after its own second, whatever the order it came in.
        assert_eq!(guard.admit("d1", "dave", 90_000, 10_001), Ok(()));
        assert_eq!(held(&guard), [2, 2, 1]);
        assert!(!guard.contains("b1", 0) && !guard.contains("a2", 0));
        assert_eq!(guard.admit("d2", "dave", 90_000, 30_001), Ok(()));
        assert_eq!(held(&guard), [1, 1, 0]);
        assert!(guard.contains("a3", 30_001) && guard.contains("b3", 30_001));
        assert_eq!(guard.admit("d3", "dave", 90_000, 50_001), Ok(()));
        assert_eq!(held(&guard), [0, 0, 0]);
        assert_eq!(guard.held_by("dave"), 3);
        assert_eq!(guard.len(), 3);
        // A share given back is a share to fill again.
        for i in 0..4 {
            assert_eq!(
                guard.admit(&format!("x{i}"), "alice", 90_000, 50_001),
                Ok(())
            );
        }
        assert_eq!(
            guard.admit("x4", "alice", 90_000, 50_001),
            Err(ReplayError::CallerShareFull)
        );
        assert_eq!(guard.held_by("dave"), 3);
    }

    #[test]
    fn shares_survive_a_restart_and_old_journal_lines_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let old_style = format!("5000 plain-id\n5000 #{:032x}\n", 7u128);
        std::fs::write(&path, old_style).unwrap();
        let mut guard = ReplayGuard::with_journal(10, 2, &path, 0).unwrap();
        assert!(guard.contains("plain-id", 0));
        assert_eq!(
            guard.admit("plain-id", "alice", 5000, 0),
            Err(ReplayError::Replayed)
        );
        assert_eq!(guard.admit("m1", "mallory", 5000, 0), Ok(()));
        assert_eq!(guard.admit("m2", "mallory", 5000, 0), Ok(()));
        drop(guard);
        let mut guard = ReplayGuard::with_journal(10, 2, &path, 0).unwrap();
        assert_eq!(guard.len(), 4);
        assert_eq!(
            guard.admit("m3", "mallory", 5000, 0),
            Err(ReplayError::CallerShareFull)
        );
        assert_eq!(guard.admit("a1", "alice", 5000, 0), Ok(()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[test]
    fn a_journal_that_cannot_be_rewritten_does_not_stop_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        std::fs::write(&path, format!("9000 #{:032x} {:016x}\n", 1u128, 5u64)).unwrap();
        // The compaction's temporary file cannot be created: the journal is appended to.
        std::fs::create_dir(path.with_extension("tmp")).unwrap();
        let mut guard = ReplayGuard::with_journal(10, 10, &path, 0).unwrap();
        assert_eq!(guard.len(), 1);
        assert_eq!(guard.admit("new", "alice", 9000, 0), Ok(()));
        drop(guard);
        let reloaded = ReplayGuard::with_journal(10, 10, &path, 0).unwrap();
        assert!(
            reloaded.contains("new", 0),
            "appended despite the failed rewrite"
        );
    }

    #[test]
    fn the_journal_is_private_to_its_owner_even_when_it_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut guard = ReplayGuard::with_journal(10, 10, &path, 0).unwrap();
        assert_eq!(mode(&path), 0o600, "a new journal");
        guard.admit("a", "alice", 100, 0).unwrap();
        drop(guard);
        // An older mcod wrote it with the umask's mode; a crash left a readable temporary.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, "").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        let guard = ReplayGuard::with_journal(10, 10, &path, 0).unwrap();
        assert_eq!(mode(&path), 0o600, "tightened at start");
        assert!(guard.contains("a", 0));
    }

    #[test]
    fn the_journal_is_compacted_when_it_holds_mostly_expired_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        let mut guard = ReplayGuard::with_journal(100, 100, &path, 0).unwrap();
        for i in 0..(COMPACT_SLACK as u64 + 10) {
            // Each id expires before the next is admitted, so at most two are remembered
            // (the last one's second may not have passed yet).
            assert_eq!(
                guard.admit(&format!("id{i}"), "alice", i * 1000 + 500, i * 1000),
                Ok(())
            );
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < COMPACT_SLACK, "{lines} lines");
        let reloaded = ReplayGuard::with_journal(100, 100, &path, 0).unwrap();
        assert!(reloaded.contains(&format!("id{}", COMPACT_SLACK + 9), 0));
    }
}
