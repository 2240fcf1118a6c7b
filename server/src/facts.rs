//! Facts and classes: what filters match against.
//!
//! Built-in facts (`hostname`, `fqdn`, `os.family/name/release`, `kernel`, `kernelrelease`,
//! `processors.count`, `memory.total_mb`) are found once at start; fact files (YAML or JSON)
//! are merged over them in order, nested objects key by key. Classes come from a
//! Puppet-style classes file. [`FactStore::refresh`] re-reads files whose modification time
//! changed; a file that fails to parse keeps the last good content and logs one warning.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use serde_json::{json, Map, Value};

/// The host name of this machine.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The facts mcod finds itself.
pub fn builtin_facts() -> Value {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        os_release.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_string())
        })
    };
    let id = field("ID").unwrap_or_else(|| "linux".into());
    let like = field("ID_LIKE").unwrap_or_default();
    let family = if id == "debian" || like.split_whitespace().any(|l| l == "debian") {
        "debian".to_string()
    } else if ["rhel", "fedora", "centos"]
        .iter()
        .any(|r| id == *r || like.split_whitespace().any(|l| l == *r))
    {
        "redhat".to_string()
    } else {
        id.clone()
    };
    let (kernel, kernelrelease) = uname();
    let memory_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| {
                    v.split_whitespace()
                        .next()
                        .and_then(|kb| kb.parse::<u64>().ok())
                })
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    let host = hostname();
    json!({
        "hostname": host.split('.').next().unwrap_or(&host),
        "fqdn": host,
        "os": {"family": family, "name": id, "release": field("VERSION_ID").unwrap_or_default()},
        "kernel": kernel,
        "kernelrelease": kernelrelease,
        "processors": {"count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)},
        "memory": {"total_mb": memory_mb},
    })
}

fn uname() -> (String, String) {
    // SAFETY: uname(2) fills the zeroed struct we own; the fields are NUL-terminated C strings.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return ("Linux".into(), String::new());
        }
        let text = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        (text(&u.sysname), text(&u.release))
    }
}

/// Merges `overlay` into `base`: objects key by key, anything else replaced.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, overlay) => *slot = overlay,
    }
}

/// Reads one fact file (YAML unless it ends in `.json`); its top level must be a mapping.
pub fn read_fact_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::to_value(yaml).map_err(|e| format!("{}: {e}", path.display()))?
    };
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(format!(
            "{}: facts must be a mapping of names to values",
            path.display()
        )),
    }
}

/// Parses a classes file: one class per line; blank lines and `#` comments ignored.
pub fn parse_classes(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The node's current facts and classes, reloaded when their files change.
#[derive(Debug)]
pub struct FactStore {
    builtin: Value,
    files: Vec<PathBuf>,
    classes_file: Option<PathBuf>,
    facts: RwLock<Arc<Value>>,
    classes: RwLock<Arc<Vec<String>>>,
    /// The last good content of each fact file, and the mtime it was read at.
    file_state: Mutex<Vec<(Option<SystemTime>, Value)>>,
    classes_mtime: Mutex<Option<SystemTime>>,
}

/// Which files a load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// All, at start.
    First,
    /// Those whose modification time changed.
    Changed,
    /// All, on request.
    Every,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl FactStore {
    /// A store over `files` and `classes_file`, loaded once now.
    pub fn new(builtin: Value, files: Vec<PathBuf>, classes_file: Option<PathBuf>) -> FactStore {
        let store = FactStore {
            builtin,
            file_state: Mutex::new(
                files
                    .iter()
                    .map(|_| (None, Value::Object(Map::new())))
                    .collect(),
            ),
            files,
            classes_file,
            facts: RwLock::new(Arc::new(Value::Null)),
            classes: RwLock::new(Arc::new(Vec::new())),
            classes_mtime: Mutex::new(None),
        };
        store.load(Load::First);
        store
    }

    /// A store of fixed facts and classes with no files behind them (the fleet simulator's
    /// identities, tests): nothing to reload.
    pub fn fixed(facts: Value, classes: Vec<String>) -> FactStore {
        let store = FactStore::new(facts, vec![], None);
        *store.classes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(classes);
        store
    }

    /// The current facts.
    pub fn facts(&self) -> Arc<Value> {
        self.facts.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current classes.
    pub fn classes(&self) -> Arc<Vec<String>> {
        self.classes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads files whose modification time changed; returns whether anything changed.
    pub fn refresh(&self) -> bool {
        self.load(Load::Changed)
    }

    /// Re-reads every file whatever its modification time (SIGHUP: a file replaced within
    /// the same second, or with its old time kept, is read too); a file that cannot be read
    /// or parsed keeps its last good content. Returns whether anything was read.
    pub fn reload(&self) -> bool {
        self.load(Load::Every)
    }

    fn load(&self, what: Load) -> bool {
        let first = what == Load::First;
        let mut changed = first;
        {
            let mut state = self.file_state.lock().unwrap_or_else(|p| p.into_inner());
            for (path, (seen, content)) in self.files.iter().zip(state.iter_mut()) {
                let now = mtime(path);
                if what == Load::Changed && now == *seen {
                    continue;
                }
                *seen = now;
                if now.is_none() {
                    if first {
                        tracing::warn!("fact file {} does not exist (yet)", path.display());
                    }
                    continue;
                }
                match read_fact_file(path) {
                    Ok(value) => {
                        *content = value;
                        changed = true;
                        if !first {
                            tracing::info!("reloaded facts from {}", path.display());
                        }
                    }
                    Err(e) => tracing::warn!("keeping the last good facts: {e}"),
                }
            }
            if changed {
                let mut facts = self.builtin.clone();
                for (_, content) in state.iter() {
                    merge(&mut facts, content.clone());
                }
                *self.facts.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(facts);
            }
        }
        if let Some(path) = &self.classes_file {
            let now = mtime(path);
            let mut seen = self.classes_mtime.lock().unwrap_or_else(|p| p.into_inner());
            if what != Load::Changed || now != *seen {
                *seen = now;
                match std::fs::read_to_string(path) {
                    Ok(text) => {
                        *self.classes.write().unwrap_or_else(|p| p.into_inner()) =
                            Arc::new(parse_classes(&text));
                        changed = true;
                    }
                    Err(e) => tracing::warn!("classes file {}: {e}", path.display()),
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_facts_are_found() {
        let f = builtin_facts();
        assert!(!f["hostname"].as_str().unwrap().is_empty());
        assert!(f["processors"]["count"].as_u64().unwrap() >= 1);
        assert!(f["memory"]["total_mb"].as_u64().unwrap() > 0);
        assert_eq!(f["kernel"], "Linux");
        assert!(f["os"]["family"].is_string());
    }

    #[test]
    fn files_merge_over_builtins_and_reload_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("facts.yaml");
        let json = dir.path().join("more.json");
        std::fs::write(&yaml, "country: uk\nos:\n  family: custom\nroles: [web]\n").unwrap();
        std::fs::write(&json, r#"{"cpus": 4, "country": "de"}"#).unwrap();
        let classes = dir.path().join("classes.txt");
        std::fs::write(&classes, "# puppet\nwebserver\n\nrole::web\n").unwrap();
        let builtin = json!({"hostname": "h", "os": {"family": "debian", "release": "12"}});
        let store = FactStore::new(
            builtin,
            vec![yaml.clone(), json.clone()],
            Some(classes.clone()),
        );
        let f = store.facts();
        assert_eq!(f["country"], "de");
        assert_eq!(f["os"]["family"], "custom");
        assert_eq!(f["os"]["release"], "12");
        assert_eq!(f["roles"], json!(["web"]));
        assert_eq!(*store.classes(), ["webserver", "role::web"]);
        assert!(!store.refresh());

        // A change is picked up; a broken file keeps the last good facts.
        std::fs::write(&json, r#"{"cpus": 8}"#).unwrap();
        bump_mtime(&json);
        assert!(store.refresh());
        assert_eq!(store.facts()["cpus"], 8);
        assert_eq!(store.facts()["country"], "uk");
        std::fs::write(&json, "{broken").unwrap();
        bump_mtime(&json);
        store.refresh();
        assert_eq!(store.facts()["cpus"], 8);
        std::fs::write(&classes, "db\n").unwrap();
        bump_mtime(&classes);
        assert!(store.refresh());
        assert_eq!(*store.classes(), ["db"]);
    }

    fn bump_mtime(path: &Path) {
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(later).unwrap();
    }

    #[test]
    fn bad_fact_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.yaml");
        std::fs::write(&list, "- a\n- b\n").unwrap();
        assert!(read_fact_file(&list)
            .unwrap_err()
            .contains("must be a mapping"));
        let empty = dir.path().join("empty.yaml");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(read_fact_file(&empty).unwrap(), json!({}));
    }
}
