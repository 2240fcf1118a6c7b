//! The tool layer under the package, service and puppet agents: a safe command runner
//! ([`command`]: argv only, never a shell; a time limit that kills the process group; no
//! stdin; a non-interactive environment; capped output) and, per tool family, the argv
//! builders and output parsers ([`package`]: dpkg/apt, rpm with dnf or yum; [`service`]:
//! systemd, SysV init scripts; [`puppet`]: last_run_summary, the disable lock, runonce).
//!
//! These are pure or nearly so and unit-tested on the commands they build and the output
//! they parse. The agents that expose them over the fleet are [`crate::package`],
//! [`crate::service`] and [`crate::puppet`]; nothing here touches the broker.

pub mod command;
pub mod package;
pub mod puppet;
pub mod service;
