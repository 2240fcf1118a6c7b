//! Counters for `rpcutil daemon_stats`: every stage of the pipeline that drops or refuses a
//! message counts it here, so an operator can see why a node did not answer.

use std::sync::atomic::{AtomicU64, Ordering};

/// The daemon's counters.
///
/// The five every answered request bumps come first, in one cache line of their own
/// (`repr(C)` keeps the order, the alignment starts the line): a node the fleet broadcasts to
/// touches one line of counters per request, not two.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct Stats {
    /// Messages received.
    pub total: AtomicU64,
    /// Messages that decoded (and, with security, verified).
    pub validated: AtomicU64,
    /// Requests whose filter matched this node.
    pub passed: AtomicU64,
    /// Replies sent.
    pub replies: AtomicU64,
    /// Replies with a status other than OK.
    pub failed: AtomicU64,
    /// Messages refused as malformed, oversized, for another collective or unverifiable.
    pub unvalidated: AtomicU64,
    /// Broadcast requests whose filter did not match (ignored silently).
    pub filtered: AtomicU64,
    /// Requests dropped because their TTL had passed.
    pub ttlexpired: AtomicU64,
    /// Requests refused because their id was seen before.
    pub replayed: AtomicU64,
    /// Requests refused by an action policy.
    pub denied: AtomicU64,
    /// Requests refused because the replay memory had no room for them (the caller's share
    /// of it, or all of it).
    pub throttled: AtomicU64,
    /// Requests refused because their time and this node's clock differ by more than
    /// `clock_skew_seconds` allows (from the future, or a broadcast already past its TTL).
    pub clockskew: AtomicU64,
    /// Requests refused because their agent was running all the actions it may and had no
    /// room (or time) left for them to wait (`[concurrency]`).
    pub busy: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters by name.
    pub fn snapshot(&self) -> [(&'static str, u64); 13] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("total", get(&self.total)),
            ("validated", get(&self.validated)),
            ("unvalidated", get(&self.unvalidated)),
            ("passed", get(&self.passed)),
            ("filtered", get(&self.filtered)),
            ("ttlexpired", get(&self.ttlexpired)),
            ("replies", get(&self.replies)),
            ("failed", get(&self.failed)),
            ("replayed", get(&self.replayed)),
            ("denied", get(&self.denied)),
            ("throttled", get(&self.throttled)),
            ("clockskew", get(&self.clockskew)),
            ("busy", get(&self.busy)),
        ]
    }
}

/// User and system CPU seconds of this process, all threads (`rpcutil daemon_stats` reports
/// them; the benchmark measures what a round costs with them).
pub fn process_cpu_times() -> (f64, f64) {
    // SAFETY: getrusage(2) fills the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return (0.0, 0.0);
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}
