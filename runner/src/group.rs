//! A child's process group: signalled only while its leader is unreaped, killed when dropped.
//!
//! Not for: spawning (see `command.rs`) or deciding when to signal.

use std::io;

/// The process group a child leads (it was spawned with `process_group(0)`).
///
/// While armed, the leader has not been reaped: it is alive or a zombie, and either way its
/// pid (the group id) cannot be given to another process, so signalling the group reaches
/// only what the child started. [`ProcessGroup::release`] must be called before the leader
/// is reaped; dropping an armed group SIGKILLs it, which is what makes a cancelled run take
/// its children with it.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    pgid: Option<libc::pid_t>,
}

impl ProcessGroup {
    /// The group led by the child with this pid (`None` when the child has no pid, which
    /// happens only once it was reaped).
    pub(crate) fn led_by(pid: Option<u32>) -> ProcessGroup {
        ProcessGroup {
            pgid: pid.and_then(|p| libc::pid_t::try_from(p).ok()),
        }
    }

    /// Sends `signal` to every process in the group.
    pub(crate) fn signal(&self, signal: libc::c_int) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) with a negative pid signals a process group; it touches no
            // memory of ours. The group id is ours: the leader is unreaped while armed, so
            // the id cannot have been reused.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }

    /// SIGKILLs every process in the group.
    pub(crate) fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// The leader's pid (and the group id), while armed.
    pub(crate) fn leader(&self) -> Option<libc::pid_t> {
        self.pgid
    }

    /// Stops signalling the group: called right before the leader is reaped.
    pub(crate) fn release(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the child `pid` has exited, without reaping it (so its group id stays reserved).
pub(crate) fn leader_exited(pid: libc::pid_t) -> io::Result<bool> {
    let id = libc::id_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid(2) writes only into `info`, which lives for the call; WNOWAIT leaves the
    // child waitable, so its tokio/std handle still reaps it later.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info`, or left it zeroed while the child runs (si_pid reads 0).
    Ok(unsafe { info.si_pid() } != 0)
}
