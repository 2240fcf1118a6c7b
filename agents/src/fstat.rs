//! The `fstat` data plugin: facts about a file, for compound filters such as
//! `fstat('/etc/hosts').size>=100` and for `rpcutil get_data`, and the rules that keep a
//! caller from using it to read what it should not, or to wedge the node.
//!
//! Outputs, as MCollective's: `name`, `output` (`present`/`not present`), `present` (bool),
//! `size`, `mode` (octal string), `uid`, `gid`, `mtime`/`ctime`/`atime` (Unix seconds),
//! `type` (`file`, `directory`, `symlink`, `socket`, `fifo`, `chardev`, `blockdev`), and
//! `md5` for regular files no larger than [`MAX_MD5_BYTES`]. A symlink is described as a
//! symlink (not followed), once its target too was found to be a place fstat may look at.
//!
//! The rules, in order ([`fstat`]):
//! - the path must be absolute (and at most [`MAX_PATH_BYTES`]); it is resolved (symlinks, `.` and `..`) before any check,
//!   so a link or `..` cannot lead the check astray;
//! - the resolved place must be under one of the node's `[data] fstat_paths`
//!   ([`FstatPolicy`]) and never under `/proc`, `/sys` or `/dev`: anything else is refused
//!   with [`FstatError::NotPermitted`] whether it exists or not, so a refusal does not tell
//!   whether a file exists;
//! - a file on a kernel pseudo-filesystem (procfs, sysfs, debugfs, cgroup, ... wherever it is
//!   mounted) is refused: reading one can block or never end (`/proc/self/pagemap` is "0
//!   bytes" and hundreds of gigabytes long);
//! - FIFOs, sockets and devices are described (their type, mode, owner) and never opened;
//! - a regular file is hashed only through a descriptor opened without following links and
//!   without blocking, that is checked again to be the same regular file on an ordinary
//!   filesystem, reading at most [`MAX_MD5_BYTES`] and for at most [`MD5_TIME_LIMIT`];
//!   otherwise `md5` is null.
//!
//! Not for: running the plugin off the async runtime (the callers do, see
//! [`crate::data::run_off_runtime`]).

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde_json::{json, Value};

/// Regular files larger than this get no `md5`: hashing is bounded work. Also the most
/// bytes read from any file, whatever size it claims (procfs files claim 0).
pub const MAX_MD5_BYTES: u64 = 16 * 1024 * 1024;

/// Hashing that takes longer than this (a slow or stuck network filesystem) gives up, and
/// `md5` is null.
pub const MD5_TIME_LIMIT: Duration = Duration::from_secs(2);

/// The longest path fstat resolves (Linux's `PATH_MAX`): resolving walks up a missing
/// path's ancestors, which must stay cheap whatever a caller sends.
pub const MAX_PATH_BYTES: usize = 4096;

/// Places fstat never looks at, whatever `fstat_paths` says: the kernel's views of
/// processes, devices and itself.
pub const NEVER_PERMITTED: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The `fstat_paths` a node has when its configuration names none: where configuration and
/// installed software live.
pub const DEFAULT_FSTAT_PATHS: [&str; 3] = ["/etc", "/opt", "/usr"];

/// Kernel pseudo-filesystems, by `statfs(2)` magic number: their files are views of kernel
/// state whose reads may block, never end, or have side effects. Refused wherever mounted.
const PSEUDO_FILESYSTEMS: [(u32, &str); 16] = [
    (0x0000_9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x6265_6570, "configfs"),
    (0xcafe_4a11, "bpf"),
    (0xde5e_81e4, "efivarfs"),
    (0x6165_676c, "pstore"),
    (0x4249_4e4d, "binfmt_misc"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x0000_1cd1, "devpts"),
    (0x0000_0187, "autofs"),
    (0x6573_5543, "fusectl"),
];

/// Why fstat gives no description of a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FstatError {
    /// The query is not an absolute path.
    #[error("fstat needs an absolute path, not {0:?}")]
    NotAbsolute(String),
    /// The query is longer than any path the system can open ([`MAX_PATH_BYTES`]).
    #[error("fstat was given a path of {0} bytes; paths are at most 4096")]
    TooLong(usize),
    /// The path leads somewhere this node does not let fstat look.
    #[error("fstat is not permitted to look at {0:?} on this node")]
    NotPermitted(String),
    /// The path leads to a file on a kernel pseudo-filesystem.
    #[error("fstat does not look at {path:?}: it is on a {filesystem} filesystem")]
    SpecialFilesystem {
        /// The path as asked.
        path: String,
        /// The filesystem's name.
        filesystem: &'static str,
    },
}

/// Where fstat may look: the node's `[data] fstat_paths`, resolved as the paths fstat is
/// asked about are, minus [`NEVER_PERMITTED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstatPolicy {
    allowed: Vec<PathBuf>,
}

impl Default for FstatPolicy {
    /// The policy of [`DEFAULT_FSTAT_PATHS`].
    fn default() -> Self {
        FstatPolicy::new(DEFAULT_FSTAT_PATHS.iter().map(PathBuf::from))
    }
}

impl FstatPolicy {
    /// A policy permitting `paths` and everything under them. Each is resolved now (a
    /// configured `/opt/app` that is a link to `/data/app` permits `/data/app`); one that
    /// does not exist yet is kept as written.
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> FstatPolicy {
        let allowed = paths
            .into_iter()
            .map(|p| std::fs::canonicalize(&p).unwrap_or_else(|_| lexical(&p)))
            .collect();
        FstatPolicy { allowed }
    }

    /// A policy that permits nothing: every query is refused.
    pub fn nothing() -> FstatPolicy {
        FstatPolicy {
            allowed: Vec::new(),
        }
    }

    /// Whether a resolved path may be looked at.
    pub fn permits(&self, resolved: &Path) -> bool {
        !is_never_permitted(resolved) && self.allowed.iter().any(|a| resolved.starts_with(a))
    }
}

/// Whether `path` is under one of [`NEVER_PERMITTED`] (component-wise: `/devices` is not).
pub fn is_never_permitted(path: &Path) -> bool {
    NEVER_PERMITTED.iter().any(|p| path.starts_with(p))
}

/// Describes `path` under `policy`; a permitted path that does not exist (or cannot be
/// resolved) is `present: false`.
pub fn fstat(path: &str, policy: &FstatPolicy) -> Result<Value, FstatError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(FstatError::TooLong(path.len()));
    }
    let asked = Path::new(path);
    if !asked.is_absolute() {
        return Err(FstatError::NotAbsolute(path.to_string()));
    }
    let not_permitted = || FstatError::NotPermitted(path.to_string());
    let (place, exists) = locate(asked);
    if !policy.permits(&place) {
        return Err(not_permitted());
    }
    if !exists {
        return Ok(absent(path));
    }
    let Ok(meta) = std::fs::symlink_metadata(&place) else {
        return Ok(absent(path));
    };
    if meta.file_type().is_symlink() {
        // Described, not followed; but only when where it leads is permitted too, so a link
        // does not tell what lies outside. A dangling link is not present, as MCollective had it.
        return match std::fs::canonicalize(&place) {
            Ok(target) if policy.permits(&target) => Ok(describe(path, &meta, None)),
            Ok(_) => Err(not_permitted()),
            Err(_) => Ok(absent(path)),
        };
    }
    if let Some(filesystem) = pseudo_filesystem_of_path(&place) {
        return Err(FstatError::SpecialFilesystem {
            path: path.to_string(),
            filesystem,
        });
    }
    let md5 = (meta.file_type().is_file() && meta.len() <= MAX_MD5_BYTES)
        .then(|| md5_file(&place, &meta))
        .flatten();
    Ok(describe(path, &meta, md5))
}

/// Where `asked` (absolute) leads, without following its last component if that is a link:
/// its parent resolved, then its name; and whether it can exist. When part of the parent is
/// missing, the place is the deepest existing ancestor resolved, then the rest as written,
/// so a refusal does not depend on whether the file exists.
fn locate(asked: &Path) -> (PathBuf, bool) {
    let (dir, name) = match asked.components().next_back() {
        Some(Component::Normal(name)) => (asked.parent().unwrap_or(asked), Some(name)),
        _ => (asked, None),
    };
    let mut missing: Vec<OsString> = Vec::new();
    let mut ancestor = dir;
    let resolved = loop {
        match std::fs::canonicalize(ancestor) {
            Ok(resolved) => break resolved,
            Err(_) => {
                let Some(parent) = ancestor.parent() else {
                    break PathBuf::from("/");
                };
                if let Some(last) = ancestor.components().next_back() {
                    missing.push(last.as_os_str().to_os_string());
                }
                ancestor = parent;
            }
        }
    };
    let exists = missing.is_empty();
    let mut place = resolved;
    for part in missing.iter().rev() {
        place = lexical(&place.join(part));
    }
    if let Some(name) = name {
        place.push(name);
    }
    (place, exists)
}

/// `path` with `.` and `..` removed by their names alone (for paths that do not exist, where
/// no link can be involved).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn absent(path: &str) -> Value {
    json!({
        "name": path, "output": "not present", "present": false,
        "size": 0, "mode": "0000", "type": "unknown", "md5": null,
        "uid": null, "gid": null, "mtime": null, "ctime": null, "atime": null,
    })
}

fn describe(path: &str, meta: &Metadata, md5: Option<String>) -> Value {
    let kind = meta.file_type();
    let type_name = if kind.is_symlink() {
        "symlink"
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_file() {
        "file"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_fifo() {
        "fifo"
    } else if kind.is_char_device() {
        "chardev"
    } else if kind.is_block_device() {
        "blockdev"
    } else {
        "unknown"
    };
    json!({
        "name": path,
        "output": "present",
        "present": true,
        "size": meta.len(),
        "mode": format!("{:04o}", meta.mode() & 0o7777),
        "uid": meta.uid(),
        "gid": meta.gid(),
        "mtime": meta.mtime(),
        "ctime": meta.ctime(),
        "atime": meta.atime(),
        "type": type_name,
        "md5": md5,
    })
}

/// The MD5 of the regular file at `place` (resolved) that `seen` described, or `None` when
/// what is opened is not that file any more, or is too long, or too slow to read.
fn md5_file(place: &Path, seen: &Metadata) -> Option<String> {
    // O_NOFOLLOW: a link swapped in since the path was resolved is not followed.
    // O_NONBLOCK: a FIFO or device swapped in does not block the open.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(place)
        .ok()?;
    let opened = file.metadata().ok()?;
    let same =
        opened.file_type().is_file() && opened.dev() == seen.dev() && opened.ino() == seen.ino();
    if !same || pseudo_filesystem_of_file(&file).is_some() {
        return None;
    }
    let deadline = Instant::now() + MD5_TIME_LIMIT;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut reader = file.take(MAX_MD5_BYTES + 1);
    let mut total: u64 = 0;
    loop {
        let n = reader.read(&mut buffer).ok()?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_MD5_BYTES || Instant::now() > deadline {
            return None;
        }
        hasher.update(&buffer[..n]);
    }
    Some(hex::encode(hasher.finalize()))
}

/// The pseudo-filesystem `path` is on, if it is on one. `statfs` never opens the file.
fn pseudo_filesystem_of_path(path: &Path) -> Option<&'static str> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs(2) with a valid C string that outlives the call, writing into the
    // struct `pseudo_filesystem` owns.
    pseudo_filesystem(|buf| unsafe { libc::statfs(c_path.as_ptr(), buf) })
}

/// The pseudo-filesystem an open file is on, if it is on one.
fn pseudo_filesystem_of_file(file: &File) -> Option<&'static str> {
    // SAFETY: fstatfs(2) on a descriptor we own, writing into the struct `pseudo_filesystem` owns.
    pseudo_filesystem(|buf| unsafe { libc::fstatfs(file.as_raw_fd(), buf) })
}

/// Runs a `statfs`-like call on a zeroed buffer and names the pseudo-filesystem it reports.
fn pseudo_filesystem(call: impl FnOnce(&mut libc::statfs) -> libc::c_int) -> Option<&'static str> {
    // SAFETY: statfs is plain old data; all zeroes is a valid value.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    if call(&mut buf) != 0 {
        return None;
    }
    // Magic numbers are 32-bit; f_type's width differs between architectures.
    let magic = buf.f_type as u32;
    PSEUDO_FILESYSTEMS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn only(dir: &Path) -> FstatPolicy {
        FstatPolicy::new([dir.to_path_buf()])
    }

    #[test]
    fn describes_files_directories_links_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        let policy = only(dir.path());
        let file = dir.path().join("hosts");
        std::fs::write(&file, "hello\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let f = fstat(file.to_str().unwrap(), &policy).unwrap();
        assert_eq!(f["present"], true);
        assert_eq!(f["size"], 6);
        assert_eq!(f["mode"], "0640");
        assert_eq!(f["type"], "file");
        assert_eq!(f["md5"], "b1946ac92492d2347c6235b4d2611184");
        let d = fstat(dir.path().to_str().unwrap(), &policy).unwrap();
        assert_eq!(d["type"], "directory");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let l = fstat(link.to_str().unwrap(), &policy).unwrap();
        assert_eq!(
            (l["type"].as_str(), &l["md5"]),
            (Some("symlink"), &Value::Null)
        );
        let none = fstat(dir.path().join("missing").to_str().unwrap(), &policy).unwrap();
        assert_eq!(none["present"], false);
        assert_eq!(none["output"], "not present");
        let deep = dir.path().join("no/such/dir/file");
        assert_eq!(
            fstat(deep.to_str().unwrap(), &policy).unwrap()["present"],
            false
        );
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
        assert_eq!(
            fstat(dangling.to_str().unwrap(), &policy).unwrap()["present"],
            false
        );
    }

    #[test]
    fn special_places_files_and_paths_outside_the_policy_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let policy = only(dir.path());
        let everything = FstatPolicy::new([PathBuf::from("/")]);
        // Refused even when the policy would permit everything.
        for path in [
            "/proc/self/pagemap",
            "/proc/self/mem",
            "/sys/kernel/notes",
            "/dev/zero",
            "/dev/null",
            "/proc",
        ] {
            assert_eq!(
                fstat(path, &everything),
                Err(FstatError::NotPermitted(path.into())),
                "{path}"
            );
        }
        // Outside the policy: refused whether the file exists or not.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        for path in [
            outside.path().join("secret"),
            outside.path().join("nothing-here"),
            outside.path().join("no/such/dir"),
            dir.path()
                .join("../")
                .join(outside.path().file_name().unwrap())
                .join("secret"),
        ] {
            let path = path.display().to_string();
            assert_eq!(
                fstat(&path, &policy),
                Err(FstatError::NotPermitted(path.clone())),
                "{path}"
            );
        }
        // Links inside that lead outside, or into /proc, are refused, not described.
        for (name, target) in [
            ("to-pagemap", PathBuf::from("/proc/self/pagemap")),
            ("to-outside", outside.path().join("secret")),
            ("to-zero", PathBuf::from("/dev/zero")),
        ] {
            let link = dir.path().join(name);
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let link = link.display().to_string();
            assert_eq!(
                fstat(&link, &policy),
                Err(FstatError::NotPermitted(link.clone())),
                "{link}"
            );
            // ... also as a directory on the way.
            let through = format!("{link}/x");
            assert!(fstat(&through, &policy).is_err(), "{through}");
        }
        assert_eq!(
            fstat("etc/hosts", &policy),
            Err(FstatError::NotAbsolute("etc/hosts".into()))
        );
        assert!(fstat("/etc/hosts", &FstatPolicy::nothing()).is_err());
        let long = "/a".repeat(MAX_PATH_BYTES);
        assert_eq!(fstat(&long, &policy), Err(FstatError::TooLong(long.len())));
    }

    #[test]
    fn fifos_and_sockets_are_described_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let policy = only(dir.path());
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        let f = fstat(fifo.to_str().unwrap(), &policy).unwrap();
        assert_eq!(
            (f["type"].as_str(), &f["md5"]),
            (Some("fifo"), &Value::Null)
        );
        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let s = fstat(socket.to_str().unwrap(), &policy).unwrap();
        assert_eq!(
            (s["type"].as_str(), &s["md5"]),
            (Some("socket"), &Value::Null)
        );
    }

    #[test]
    fn pseudo_filesystems_are_refused_wherever_they_are_mounted() {
        // /proc is procfs; the check is by filesystem, so it does not depend on the path.
        assert_eq!(
            pseudo_filesystem_of_path(Path::new("/proc/self/stat")),
            Some("proc")
        );
        assert_eq!(pseudo_filesystem_of_path(Path::new("/")), None);
        let file = File::open("/proc/self/stat").unwrap();
        assert_eq!(pseudo_filesystem_of_file(&file), Some("proc"));
    }

    #[test]
    fn only_a_small_regular_file_that_is_still_the_same_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let policy = only(dir.path());
        let big = dir.path().join("big");
        let file = File::create(&big).unwrap();
        file.set_len(MAX_MD5_BYTES + 1).unwrap();
        let f = fstat(big.to_str().unwrap(), &policy).unwrap();
        assert_eq!(
            (f["size"].as_u64(), &f["md5"]),
            (Some(MAX_MD5_BYTES + 1), &Value::Null)
        );
        // A file replaced after it was described is not hashed.
        let small = dir.path().join("small");
        std::fs::write(&small, "a").unwrap();
        let seen = std::fs::metadata(&small).unwrap();
        // The old file lives on under another name, so the new one cannot reuse its inode.
        std::fs::rename(&small, dir.path().join("kept")).unwrap();
        std::fs::write(&small, "b").unwrap();
        assert_eq!(md5_file(&small, &seen), None);
    }

    #[test]
    fn the_policy_resolves_its_paths_and_matches_whole_components() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let policy = FstatPolicy::new([link.clone()]);
        let resolved = std::fs::canonicalize(&real).unwrap();
        assert!(policy.permits(&resolved.join("x")));
        let sibling = resolved.with_file_name("realer");
        assert!(!policy.permits(&sibling));
        assert!(FstatPolicy::default().permits(Path::new("/etc/hosts")));
        assert!(!FstatPolicy::default().permits(Path::new("/root/.ssh/id_rsa")));
        assert!(is_never_permitted(Path::new("/dev/zero")));
        assert!(!is_never_permitted(Path::new("/devices")));
    }
}
