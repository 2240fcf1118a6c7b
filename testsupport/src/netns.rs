//! [`Netns`]: a network namespace joined to the host by a veth pair, whose link a test can
//! cut and restore: a real network partition, where packets are lost and no connection is
//! closed, unlike a killed process.
//!
//! Each namespace has its own names (from the test process's id and a counter) and its own
//! private /30 in 10.201.0.0/16: the host end is `.1` of it, the namespace end `.2`. A
//! broker that the namespace must reach listens on the host end
//! ([`crate::NatsServer::start_listening_on_all_addresses`]); programs run inside it through
//! [`Netns::prefix`] (`ip netns exec NAME`), e.g. [`crate::NodeSpec::command_prefix`].
//! Dropping it deletes the namespace and the veth pair, also when the test panics.
//!
//! Making namespaces needs root and `ip`: without them [`Netns::create`] panics saying so, so a
//! partition test never passes without a partition.
//!
//! Not for: delay or loss on a working link (see [`crate::RecordingProxy`]).

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::die_with_parent;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth link to the host; see the [module docs](self).
pub struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

/// Runs `ip args`, panicking with what it said when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip {}`: {e} (install iproute2)", args.join(" ")));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Netns {
    /// Makes a namespace and its link, up. Panics with the reason (not root, no `ip`) when
    /// it cannot.
    pub fn create() -> Netns {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "this test cuts a real network link with `ip netns` and veth pairs, which needs root (running as uid {euid})"
        );
        crate::require_program("ip", "apt-get install iproute2");
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // 16,384 /30s: distinct for each namespace of this process, and for other test
        // processes unless their ids collide modulo 1024.
        let slot = ((pid % 1024) * 16 + n % 16) % (256 * 64);
        let (third, fourth) = (slot / 64, (slot % 64) * 4);
        let netns = Netns {
            name: format!("mco-{pid}-{n}"),
            // Interface names have at most 15 characters.
            host_if: format!("mh{}", slot),
            host_ip: format!("10.201.{third}.{}", fourth + 1),
            ns_ip: format!("10.201.{third}.{}", fourth + 2),
        };
        let ns_if = format!("mn{slot}");
        // Leftovers of a test process that was killed before it could clean up.
        let _ = Command::new("ip")
            .args(["link", "del", &netns.host_if])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &netns.name]);
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &netns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", netns.host_ip),
            "dev",
            &netns.host_if,
        ]);
        ip(&["link", "set", &netns.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{}/30", netns.ns_ip), "dev", &ns_if]);
        inside(&["link", "set", &ns_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host end's address: what programs inside reach the host on.
    pub fn host_ip(&self) -> &str {
        &self.host_ip
    }

    /// The namespace end's address.
    pub fn ns_ip(&self) -> &str {
        &self.ns_ip
    }

    /// The command prefix that runs a program inside: `ip netns exec NAME`.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .map(String::from)
            .to_vec()
    }

    /// A command running `program` inside the namespace, dying with the test.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        die_with_parent(&mut command);
        command
    }

    /// Cuts the link (the host end goes down): packets are lost both ways, and nothing is
    /// told to either side.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    /// Restores the link after [`Self::cut`].
    pub fn restore(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and so the pair; the host end
        // is deleted too in case a process inside still holds the namespace.
        for args in [
            vec!["netns", "del", self.name.as_str()],
            vec!["link", "del", self.host_if.as_str()],
        ] {
            let _ = Command::new("ip")
                .args(&args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
