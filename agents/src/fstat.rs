//! The `fstat` data plugin: facts about a file, for compound filters such as
//! `fstat('/etc/hosts').size>=100` and for `rpcutil get_data`.
//!
//! Outputs, as MCollective's: `name`, `output` (`present`/`not present`), `present` (bool),
//! `size`, `mode` (octal string), `uid`, `gid`, `mtime`/`ctime`/`atime` (Unix seconds),
//! `type` (`file`, `directory`, `symlink`, `socket`, `fifo`, `chardev`, `blockdev`), and
//! `md5` for regular files no larger than [`MAX_MD5_BYTES`] (hashing a huge file would stall a
//! node's filter evaluation). Symlinks are described, not followed.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use md5::{Digest, Md5};
use serde_json::{json, Value};

/// Files larger than this get no `md5`.
pub const MAX_MD5_BYTES: u64 = 64 * 1024 * 1024;

/// Describes `path`; a path that does not exist (or cannot be read) is `present: false`.
pub fn fstat(path: &str) -> Value {
    let Ok(meta) = std::fs::symlink_metadata(Path::new(path)) else {
        return json!({
            "name": path, "output": "not present", "present": false,
            "size": 0, "mode": "0000", "type": "unknown", "md5": null,
            "uid": null, "gid": null, "mtime": null, "ctime": null, "atime": null,
        });
    };
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
    let md5 = (kind.is_file() && meta.len() <= MAX_MD5_BYTES)
        .then(|| md5_file(Path::new(path)))
        .flatten();
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

fn md5_file(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Md5::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Some(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn describes_files_directories_links_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, "hello\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let f = fstat(file.to_str().unwrap());
        assert_eq!(f["present"], true);
        assert_eq!(f["size"], 6);
        assert_eq!(f["mode"], "0640");
        assert_eq!(f["type"], "file");
        assert_eq!(f["md5"], "b1946ac92492d2347c6235b4d2611184");
        assert_eq!(fstat(dir.path().to_str().unwrap())["type"], "directory");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(fstat(link.to_str().unwrap())["type"], "symlink");
        let none = fstat(dir.path().join("missing").to_str().unwrap());
        assert_eq!(none["present"], false);
        assert_eq!(none["output"], "not present");
    }
}
