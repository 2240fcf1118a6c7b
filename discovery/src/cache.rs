//! The discovery cache: who answered a broadcast discovery for a filter recently, and how
//! long each took, so that the next discovery for the same filter knows whom to expect and can
//! end when they have all answered ([`crate::Expected`]).
//!
//! One small JSON file per filter, named by a hash of what makes two discoveries the same
//! question (the brokers, the collective, the caller and the filter), in
//! `$XDG_CACHE_HOME/mco/discovery/` (else `~/.cache/mco/discovery/`), private to the user
//! (directory 0700, files 0600, written whole and renamed into place so a reader never sees
//! half a file). An entry older than its lifetime, unreadable, too large, of another version
//! or naming an invalid identity is treated as absent: the cache can make a discovery end
//! sooner or later, never change who is found, so a bad file costs at most a longer wait.
//! Every write sweeps the entries past their lifetime, so the directory stays as small as
//! the set of filters asked within one lifetime.
//!
//! Not for: deciding when discovery ends ([`crate::collect`] does) or talking to the broker.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mco_spec::{subjects, Filter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format of an entry; an entry of another version is ignored.
const VERSION: u32 = 1;

/// The largest entry read: a fleet of a few hundred thousand nodes.
const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// The longest answer time an entry is believed to record: far beyond any discovery timeout.
const MAX_TOOK: Duration = Duration::from_secs(3600);

/// The default lifetime of an entry (`discovery_cache_seconds`).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// Why an entry could not be written.
#[derive(Debug, thiserror::Error)]
#[error("discovery cache {path}: {source}")]
pub struct CacheError {
    path: PathBuf,
    source: std::io::Error,
}

/// Names the question a discovery answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of a discovery for `filter` in `collective` by `caller` through `brokers`.
    pub fn new(brokers: &[String], collective: &str, caller: &str, filter: &Filter) -> CacheKey {
        let mut hash = Sha256::new();
        hash.update(format!("mco discovery cache v{VERSION}\n"));
        let mut brokers = brokers.to_vec();
        brokers.sort();
        for broker in &brokers {
            hash.update(broker.as_bytes());
            hash.update(b"\n");
        }
        hash.update(collective.as_bytes());
        hash.update(b"\n");
        hash.update(caller.as_bytes());
        hash.update(b"\n");
        hash.update(serde_json::to_vec(filter).unwrap_or_default());
        CacheKey(hex::encode(&hash.finalize()[..16]))
    }

    /// The file name of the entry.
    fn file_name(&self) -> String {
        format!("{}.json", self.0)
    }
}

/// One node of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedNode {
    /// Its identity.
    pub identity: String,
    /// How long its answer took, milliseconds.
    pub ms: f64,
}

/// What one discovery found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The format ([`VERSION`]).
    pub version: u32,
    /// When it was written, milliseconds since the Unix epoch.
    pub written_unix_ms: u64,
    /// The collective (for people reading the file).
    pub collective: String,
    /// The filter (for people reading the file).
    pub filter: serde_json::Value,
    /// How many nodes the broker knew in the collective when it was written (the direct
    /// queue's consumers), if it said: a different count later means the fleet changed.
    pub fleet_size: Option<u64>,
    /// The nodes that answered.
    pub nodes: Vec<CachedNode>,
}

impl Entry {
    /// An entry written now.
    pub fn new(
        collective: &str,
        filter: &Filter,
        fleet_size: Option<u64>,
        nodes: &[(String, Duration)],
    ) -> Entry {
        Entry {
            version: VERSION,
            written_unix_ms: now_unix_ms(),
            collective: collective.to_string(),
            filter: serde_json::to_value(filter).unwrap_or_default(),
            fleet_size,
            nodes: nodes
                .iter()
                .map(|(identity, took)| CachedNode {
                    identity: identity.clone(),
                    ms: took.as_secs_f64() * 1000.0,
                })
                .collect(),
        }
    }

    /// How long the slowest node took to answer, if any did. The file is the user's own, but
    /// a time that is not one (negative, not a number, beyond any timeout) counts as none.
    pub fn slowest(&self) -> Option<Duration> {
        self.nodes
            .iter()
            .filter_map(|n| Duration::try_from_secs_f64(n.ms / 1000.0).ok())
            .filter(|took| *took <= MAX_TOOK)
            .max()
    }

    /// How old it is.
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_unix_ms().saturating_sub(self.written_unix_ms))
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A directory of entries, each valid for `lifetime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryCache {
    dir: PathBuf,
    lifetime: Duration,
}

impl DiscoveryCache {
    /// The cache in `dir`, its entries valid for `lifetime`.
    pub fn new(dir: impl Into<PathBuf>, lifetime: Duration) -> DiscoveryCache {
        DiscoveryCache {
            dir: dir.into(),
            lifetime,
        }
    }

    /// `$XDG_CACHE_HOME/mco/discovery`, else `$HOME/.cache/mco/discovery`; `None` without
    /// either.
    pub fn default_dir() -> Option<PathBuf> {
        let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(xdg) => PathBuf::from(xdg),
            None => {
                PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache")
            }
        };
        Some(base.join("mco").join("discovery"))
    }

    /// How long an entry is used.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Where its entries are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry for `key` if there is a valid one younger than the lifetime.
    pub fn load(&self, key: &CacheKey) -> Option<Entry> {
        let path = self.dir.join(key.file_name());
        let file = std::fs::File::open(&path).ok()?;
        if file.metadata().ok()?.len() > MAX_ENTRY_BYTES {
            return None;
        }
        let entry: Entry = serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
        let valid = entry.version == VERSION
            && entry.age() <= self.lifetime
            && entry
                .nodes
                .iter()
                .all(|n| subjects::is_valid_identity(&n.identity));
        valid.then_some(entry)
    }

    /// Writes `entry` for `key`, replacing what was there.
    pub fn store(&self, key: &CacheKey, entry: &Entry) -> Result<(), CacheError> {
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError { path, source }
        };
        create_private_dir(&self.dir).map_err(failed(&self.dir))?;
        let path = self.dir.join(key.file_name());
        // tempfile creates the file 0600 in the same directory, so the rename is atomic.
        let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(failed(&self.dir))?;
        serde_json::to_writer(&mut file, entry)
            .map_err(std::io::Error::from)
            .and_then(|()| file.flush())
            .map_err(failed(&path))?;
        file.persist(&path).map_err(|e| CacheError {
            path: path.clone(),
            source: e.error,
        })?;
        self.sweep();
        Ok(())
    }

    /// Removes the entries no discovery will use again (older than the lifetime) and the
    /// temporary files of writes that never finished, so the directory holds at most the
    /// filters asked within one lifetime. Runs after every write; returns how many files it
    /// removed. Only regular files named as this cache names them are touched: anything
    /// else an operator keeps there is left alone.
    pub fn sweep(&self) -> usize {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for item in listing.flatten() {
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            let limit = if is_entry_name(name) {
                self.lifetime
            } else if name.starts_with(".tmp") {
                STALE_WRITE
            } else {
                continue;
            };
            let Ok(meta) = item.path().symlink_metadata() else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if meta.file_type().is_file()
                && age > limit
                && std::fs::remove_file(item.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}

/// How old a temporary file must be before a sweep takes it for an abandoned write: a write
/// takes milliseconds, so a minute leaves a concurrent `mco` well alone.
const STALE_WRITE: Duration = Duration::from_secs(60);

/// Whether `name` is an entry's file name ([`CacheKey::file_name`]: 32 hex digits, `.json`).
fn is_entry_name(name: &str) -> bool {
    name.strip_suffix(".json")
        .is_some_and(|stem| stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn filter(text: &str) -> Filter {
        let mut f = Filter::default();
        f.add_fact(text).unwrap_or_else(|e| panic!("{e}"));
        f
    }

    fn key(f: &Filter) -> CacheKey {
        CacheKey::new(&["nats://a:4222".into()], "mco", "user=alice", f)
    }

    #[test]
    fn an_entry_is_read_back_for_the_same_question_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = DiscoveryCache::new(dir.path().join("d"), DEFAULT_LIFETIME);
        let uk = filter("country=uk");
        let found = vec![("web1".to_string(), Duration::from_millis(3))];
        cache
            .store(&key(&uk), &Entry::new("mco", &uk, Some(7), &found))
            .unwrap_or_else(|e| panic!("{e}"));
        let entry = cache.load(&key(&uk)).unwrap_or_else(|| panic!("no entry"));
        assert_eq!(entry.nodes[0].identity, "web1");
        assert_eq!(entry.fleet_size, Some(7));
        assert!(cache.load(&key(&filter("country=de"))).is_none());
        let other_caller = CacheKey::new(&["nats://a:4222".into()], "mco", "user=bob", &uk);
        assert!(cache.load(&other_caller).is_none());
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode(cache.dir()).ok(), Some(0o700));
        let file = cache.dir().join(key(&uk).file_name());
        assert_eq!(mode(&file).ok(), Some(0o600));
    }

    #[test]
    fn a_write_removes_expired_entries_and_abandoned_writes_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = DiscoveryCache::new(dir.path(), Duration::from_secs(60));
        let old = SystemTime::now() - Duration::from_secs(120);
        let aged = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, "{}").unwrap_or_else(|e| panic!("{e}"));
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("{e}"));
            file.set_modified(old).unwrap_or_else(|e| panic!("{e}"));
            path
        };
        let expired = aged(&format!("{}.json", "ab".repeat(16)));
        let abandoned = aged(".tmpXYZ123");
        let foreign = aged("notes.txt");
        let odd_name = aged("abc.json");
        let fresh_filter = filter("country=uk");
        cache
            .store(
                &key(&fresh_filter),
                &Entry::new("mco", &fresh_filter, None, &[]),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!expired.exists() && !abandoned.exists());
        assert!(foreign.exists() && odd_name.exists());
        assert!(
            cache.load(&key(&fresh_filter)).is_some(),
            "the new entry stays"
        );
        assert_eq!(cache.sweep(), 0);
    }

    #[test]
    fn the_slowest_answer_is_read_only_from_times_that_are_times() {
        let f = Filter::default();
        let found = [
            ("a".to_string(), Duration::from_millis(4)),
            ("b".to_string(), Duration::from_millis(380)),
        ];
        let mut entry = Entry::new("mco", &f, None, &found);
        assert_eq!(entry.slowest(), Some(Duration::from_millis(380)));
        // A hand-edited file's nonsense neither panics nor stretches discovery.
        for ms in [f64::NAN, f64::INFINITY, -5.0, 1e300, 4e6] {
            entry.nodes[1].ms = ms;
            assert_eq!(entry.slowest(), Some(Duration::from_millis(4)), "{ms}");
        }
        assert_eq!(Entry::new("mco", &f, None, &[]).slowest(), None);
    }

    #[test]
    fn expired_malformed_or_invalid_entries_are_absent() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = DiscoveryCache::new(dir.path(), Duration::from_secs(60));
        let f = Filter::default();
        let mut entry = Entry::new("mco", &f, None, &[("web1".into(), Duration::ZERO)]);
        entry.written_unix_ms -= 61_000;
        cache
            .store(&key(&f), &entry)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(cache.load(&key(&f)).is_none(), "expired");
        let path = dir.path().join(key(&f).file_name());
        for bad in [
            "{not json".to_string(),
            serde_json::json!({"version": 99, "written_unix_ms": now_unix_ms(), "collective": "mco",
                "filter": {}, "fleet_size": null, "nodes": []})
            .to_string(),
            serde_json::json!({"version": 1, "written_unix_ms": now_unix_ms(), "collective": "mco",
                "filter": {}, "fleet_size": null, "nodes": [{"identity": "a b>", "ms": 1.0}]})
            .to_string(),
        ] {
            std::fs::write(&path, &bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(cache.load(&key(&f)).is_none(), "{bad}");
        }
    }
}
