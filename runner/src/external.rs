//! Choria's external protocol's files, shared by external agents and external discovery: the
//! program is run as `<program> <request file> <reply file> <protocol>` in a private working
//! directory, with `CHORIA_EXTERNAL_REQUEST`, `CHORIA_EXTERNAL_REPLY` and
//! `CHORIA_EXTERNAL_PROTOCOL` naming the same, and writes its answer to the reply file.
//!
//! An [`Exchange`] owns the directory: created fresh and 0700 (so no other user reads the
//! request or plants the reply), the request written 0600, and the reply read back only when
//! it is a regular file within a byte cap. The directory and everything in it is removed
//! when the exchange is dropped.
//!
//! Not for: what the request and reply documents say (the callers' protocol versions), or
//! running the program ([`crate::Command`]).

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why an exchange's files could not be prepared or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The private directory or a file in it could not be written.
    #[error("cannot prepare the request files: {0}")]
    Prepare(#[source] std::io::Error),
    /// The program left no reply file.
    #[error("wrote no reply file")]
    NoReply,
    /// The reply is not a regular file (a symlink, a FIFO, a directory).
    #[error("the reply is not a regular file")]
    NotAFile,
    /// The reply is larger than the cap.
    #[error("the reply is larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// Reading the reply failed.
    #[error("cannot read the reply: {0}")]
    Read(#[source] std::io::Error),
}

/// The files of one run of an external program.
#[derive(Debug)]
pub struct Exchange {
    dir: tempfile::TempDir,
    request: PathBuf,
    reply: PathBuf,
    protocol: String,
}

impl Exchange {
    /// A fresh private directory holding `request` as the request file, for `protocol`.
    pub fn new(protocol: &str, request: &[u8]) -> Result<Exchange, ExchangeError> {
        let dir = tempfile::Builder::new()
            .prefix("mco-external-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(ExchangeError::Prepare)?;
        let exchange = Exchange {
            request: dir.path().join("request.json"),
            reply: dir.path().join("reply.json"),
            dir,
            protocol: protocol.to_string(),
        };
        exchange.write_file("request.json", request)?;
        Ok(exchange)
    }

    /// Writes another file the program reads (an external agent's facts), 0600, and returns
    /// its path.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, ExchangeError> {
        let path = self.dir.path().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(ExchangeError::Prepare)?;
        file.write_all(contents).map_err(ExchangeError::Prepare)?;
        Ok(path)
    }

    /// The private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The request file.
    pub fn request_file(&self) -> &Path {
        &self.request
    }

    /// The reply file.
    pub fn reply_file(&self) -> &Path {
        &self.reply
    }

    /// `command` with the protocol's three arguments, its variables and the private
    /// directory as its working directory.
    pub fn apply(&self, command: crate::Command) -> crate::Command {
        command
            .arg(&self.request)
            .arg(&self.reply)
            .arg(&self.protocol)
            .env("CHORIA_EXTERNAL_REQUEST", &self.request)
            .env("CHORIA_EXTERNAL_REPLY", &self.reply)
            .env("CHORIA_EXTERNAL_PROTOCOL", &self.protocol)
            .current_dir(self.dir.path())
    }

    /// The reply file's bytes, when it is a regular file of at most `limit` bytes.
    ///
    /// Opened without following a symlink and without blocking, then checked to be a
    /// regular file, because the program may have replaced the path with a FIFO that would
    /// hang the reader, or a link to a file it wants the daemon to read for it.
    pub fn read_reply(&self, limit: u64) -> Result<Vec<u8>, ExchangeError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.reply);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ExchangeError::NoReply)
            }
            // O_NOFOLLOW on a symlink fails with ELOOP.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(ExchangeError::NotAFile),
            Err(e) => return Err(ExchangeError::Read(e)),
        };
        let metadata = file.metadata().map_err(ExchangeError::Read)?;
        if !metadata.is_file() {
            return Err(ExchangeError::NotAFile);
        }
        if metadata.len() > limit {
            return Err(ExchangeError::TooLarge { limit });
        }
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(ExchangeError::Read)?;
        // It may have grown since the check.
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
            return Err(ExchangeError::TooLarge { limit });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_files_are_private() {
        let exchange = Exchange::new("p.v1", b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(exchange.dir()), 0o700);
        assert_eq!(mode(exchange.request_file()), 0o600);
        let facts = exchange.write_file("facts.json", b"[]").unwrap();
        assert_eq!(mode(&facts), 0o600);
        assert_eq!(std::fs::read(exchange.request_file()).unwrap(), b"{}");
        let dir = exchange.dir().to_path_buf();
        drop(exchange);
        assert!(!dir.exists(), "the directory outlived the exchange");
    }

    #[tokio::test]
    async fn a_program_gets_the_protocol_and_its_reply_is_read() {
        let exchange = Exchange::new("p.v1", b"{\"q\":1}").unwrap();
        let script = "[ \"$3\" = \"$CHORIA_EXTERNAL_PROTOCOL\" ] || exit 3\n\
                      [ \"$1\" = \"$CHORIA_EXTERNAL_REQUEST\" ] || exit 4\n\
                      [ \"$(pwd)\" = \"$(dirname \"$1\")\" ] || exit 5\n\
                      cat \"$1\" > \"$CHORIA_EXTERNAL_REPLY\"";
        let command = exchange.apply(
            crate::Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("sh")
                .deadline(Duration::from_secs(5)),
        );
        let output = command.run().await.unwrap();
        assert!(output.success(), "{:?}", output);
        assert_eq!(exchange.read_reply(100).unwrap(), b"{\"q\":1}");
        assert!(matches!(
            exchange.read_reply(3),
            Err(ExchangeError::TooLarge { limit: 3 })
        ));
    }

    #[test]
    fn replies_that_are_not_plain_files_are_refused() {
        let exchange = Exchange::new("p.v1", b"{}").unwrap();
        assert!(matches!(
            exchange.read_reply(10),
            Err(ExchangeError::NoReply)
        ));
        // A FIFO would block a plain open and read for ever.
        let fifo =
            std::ffi::CString::new(exchange.reply_file().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) reads the NUL-terminated path, which outlives the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            exchange.read_reply(10),
            Err(ExchangeError::NotAFile)
        ));
        std::fs::remove_file(exchange.reply_file()).unwrap();
        // A link would make the daemon read a file for the program.
        std::os::unix::fs::symlink("/etc/passwd", exchange.reply_file()).unwrap();
        assert!(matches!(
            exchange.read_reply(1 << 20),
            Err(ExchangeError::NotAFile)
        ));
    }
}
