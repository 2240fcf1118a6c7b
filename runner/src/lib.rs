//! Running child programs for mco: the one place that starts a process for an agent, an
//! external agent, an external discovery program or a validator/aggregate plugin.
//!
//! A [`Command`] is an argv (never a shell) with an explicit environment; [`Command::run`]
//! runs it with a deadline and returns its captured, size-capped output ([`Output`]) or a
//! [`RunError`]; [`Command::run_blocking`] does the same on the calling thread for the few
//! answers that must be synchronous; [`Command::spawn_detached`] starts one that may outlive
//! its caller. [`external::Exchange`] is Choria's external protocol's file handling (request
//! and reply files in a private directory, `CHORIA_EXTERNAL_*` variables).
//!
//! ```no_run
//! # async fn example() -> Result<(), mco_runner::RunError> {
//! use std::time::Duration;
//! let output = mco_runner::Command::new("/usr/bin/systemctl")
//!     .arg("is-active")
//!     .arg("sshd")
//!     .deadline(Duration::from_secs(3))
//!     .run()
//!     .await?;
//! println!("{}", String::from_utf8_lossy(&output.stdout));
//! # Ok(())
//! # }
//! ```
//!
//! # The rules it enforces, and why
//!
//! These were three drifted copies (the tool runner, external agents, external discovery);
//! each rule here is the strictest the copies had, or stricter where all of them had a gap.
//!
//! - **Own process group.** Every child leads a new process group, so the group is
//!   everything it started (`apt-get` → `dpkg` → maintainer scripts) and one `kill(-pgid)`
//!   reaches all of it.
//! - **Cleared environment.** The child sees only `PATH` (the daemon's, or the system
//!   directories when it has none) and what the caller names with [`Command::env`]. A
//!   daemon's environment (credentials, `LD_PRELOAD`, proxies) is never handed down by
//!   accident.
//! - **No stdin unless given.** stdin is `/dev/null`, or exactly the bytes of
//!   [`Command::stdin`], then closed; a child can never wait for a terminal.
//! - **Output capped.** stdout and stderr are each kept up to a byte cap
//!   ([`Command::stdout_limit`], [`Command::stderr_limit`]); beyond it, with
//!   [`Overflow::Truncate`] the rest is read and dropped, with [`Overflow::Fail`] the group is
//!   killed at once and the run is [`RunError::OutputTooLarge`]. Memory never grows with
//!   what a child writes. After the child exits, output is read for at most
//!   [`DRAIN_AFTER_EXIT`], because a daemon it started may hold the pipes open forever.
//! - **Deadline.** At [`Command::deadline`] the whole group gets SIGTERM, then SIGKILL after
//!   [`Command::grace`] (default [`DEFAULT_GRACE`]), and the run is [`RunError::Timeout`].
//! - **Cancellation kills.** Dropping the future of [`Command::run`] (an action abandoned at
//!   its timeout) SIGKILLs the group at once: nothing is left to wait for a graceful end.
//! - **Leftovers die with the leader.** When the child exits, what remains of its group is
//!   SIGKILLed, unless the caller says [`Command::leave_group_after_exit`] (an init script
//!   whose daemon must keep running is the one such caller).
//! - **No signal to a stranger.** The group is signalled only while its leader is not yet
//!   reaped (it is a zombie at worst, which keeps the group id from being reused), so a
//!   signal can never reach an unrelated group that happens to get the same id.
//! - **Protocol files are private.** [`external::Exchange`] puts the request and reply in a
//!   fresh 0700 directory, writes the request 0600, and reads the reply only if it is a
//!   regular file (not a symlink, not a FIFO that would block the reader) within a cap.
//!
//! Not for: deciding what to run (callers build argv lists from validated inputs and choose
//! executables from their configured directories), parsing what a child answers, or
//! anything about DDLs, requests or the wire protocol: this crate depends on none of them.

#![warn(missing_docs)]

mod command;
pub mod external;
mod group;

pub use command::{
    Command, Output, Overflow, RunError, Stream, DEFAULT_GRACE, DEFAULT_OUTPUT_LIMIT,
    DRAIN_AFTER_EXIT,
};

/// Where programs are looked for when the daemon has no `PATH`: the system directories.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
