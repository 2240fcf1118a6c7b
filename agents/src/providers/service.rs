//! Service providers for the service agent: systemd (`systemctl`) and SysV init scripts
//! (`<init_dir>/<name>`, or `service <name>` where the directory has no such script). This
//! module checks names, builds argv lists and interprets results; running them is
//! [`crate::providers::command`].
//!
//! Not for locking or deciding whether an action makes sense (starting a running service):
//! the agent does that.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A provider as named in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    /// systemd units through `systemctl`.
    Systemd,
    /// SysV init scripts.
    Sysv,
}

/// How services are managed on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceProvider {
    /// `systemctl`.
    Systemd,
    /// Init scripts in a directory (normally `/etc/init.d`).
    Sysv {
        /// Where the scripts are.
        init_dir: PathBuf,
    },
}

/// A service action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
    /// Ask whether it runs.
    Status,
}

impl ServiceAction {
    /// The verb the tools use, and the action's name in the DDL.
    pub fn verb(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Status => "status",
        }
    }

    /// The action called `name` in the DDL.
    pub fn from_name(name: &str) -> Option<ServiceAction> {
        match name {
            "start" => Some(ServiceAction::Start),
            "stop" => Some(ServiceAction::Stop),
            "restart" => Some(ServiceAction::Restart),
            "status" => Some(ServiceAction::Status),
            _ => None,
        }
    }
}

/// A service's state as the service DDL outputs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    /// Running.
    Running,
    /// Not running.
    Stopped,
}

impl ServiceStatus {
    /// `running` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Running => "running",
            ServiceStatus::Stopped => "stopped",
        }
    }
}

/// Checks a service name beyond the DDL's `service_name` pattern (`^[a-zA-Z.\-_\d:@]+$`):
/// a leading `-` would be read as an option (`service --status-all`), and `.` or `..` name
/// a directory, not a script.
pub fn check_service_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '@');
    match name.chars().next() {
        None => Err("an empty service name is not allowed".into()),
        Some('-' | '.') => Err(format!(
            "{name:?} is not a valid service name: it must not start with '-' or '.'"
        )),
        Some(_) => match name.chars().find(|c| !allowed(*c)) {
            Some(c) => Err(format!(
                "{name:?} is not a valid service name: {c:?} is not allowed"
            )),
            None => Ok(()),
        },
    }
}

/// systemd's unit types other than services: a name with one of these suffixes names a
/// target, socket, mount... (`reboot.target` reboots when started), never a service.
pub const NON_SERVICE_UNIT_TYPES: [&str; 10] = [
    "target",
    "socket",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
    "device",
];

/// Names that are never services to start or stop, with either provider: systemd's units
/// that power off, reboot, suspend, kexec or isolate the machine, and the SysV scripts that
/// are steps of booting or shutting down (Debian's `initscripts`, `sysvinit`, `cryptsetup`,
/// `lvm2`, `kmod`, `console-setup`; Red Hat's `initscripts`), whose `start` or `stop`
/// halts, reboots, kills every process, unmounts or closes disks. Debian also masks most of
/// them as systemd units of the same name, which this list covers too.
pub const NEVER_SERVICES: [&str; 49] = [
    // systemd
    "systemd-reboot",
    "systemd-poweroff",
    "systemd-halt",
    "systemd-kexec",
    "systemd-soft-reboot",
    "systemd-suspend",
    "systemd-hibernate",
    "systemd-hybrid-sleep",
    "systemd-suspend-then-hibernate",
    "systemd-exit",
    "rescue",
    "emergency",
    "poweroff",
    "kexec",
    // SysV shutdown and runlevel steps
    "halt",
    "reboot",
    "sendsigs",
    "killprocs",
    "killall",
    "single",
    "rc",
    "rcS",
    "rc.local",
    "halt.local",
    "umountfs",
    "umountnfs.sh",
    "umountroot",
    "netfs",
    // SysV boot steps
    "bootlogs",
    "bootmisc.sh",
    "brightness",
    "checkfs.sh",
    "checkroot.sh",
    "checkroot-bootclean.sh",
    "hostname.sh",
    "hwclock.sh",
    "motd",
    "mountall.sh",
    "mountall-bootclean.sh",
    "mountdevsubfs.sh",
    "mountkernfs.sh",
    "mountnfs.sh",
    "mountnfs-bootclean.sh",
    "rmnologin",
    "urandom",
    "cryptdisks",
    "cryptdisks-early",
    "lvm2",
    // Not scripts at all: the template of an init script, and Red Hat's shell library.
    "skeleton",
];

/// A service name the agent accepted, in the two forms it is used in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    /// The name without a `.service` suffix: what allow and deny patterns match, and what
    /// the agent locks on.
    pub name: String,
    /// What the provider is given: `NAME.service` for systemd, `NAME` for SysV.
    pub unit: String,
}

impl ServiceProvider {
    /// Takes a requested name as a service, or says why it is not one: a name that
    /// [`check_service_name`] refuses, one with another unit type's suffix (`.target`,
    /// `.socket`, ...), or one of [`NEVER_SERVICES`]. `nginx` and `nginx.service` are the
    /// same service; systemd is always given the full `nginx.service`, so it never reads a
    /// name as another kind of unit or as a pattern.
    pub fn service_name(&self, requested: &str) -> Result<ServiceName, String> {
        check_service_name(requested)?;
        let name = requested.strip_suffix(".service").unwrap_or(requested);
        if name.is_empty() {
            return Err(format!("{requested:?} is not a valid service name"));
        }
        if let Some((_, suffix)) = name.rsplit_once('.') {
            if NON_SERVICE_UNIT_TYPES.contains(&suffix) {
                return Err(format!(
                    "{requested:?} is not a service: the service agent manages .service units only, not .{suffix} units"
                ));
            }
        }
        if NEVER_SERVICES.contains(&name) {
            return Err(format!(
                "{requested:?} is not a service the service agent manages: it halts, reboots or is a step of booting or shutting down"
            ));
        }
        let unit = match self {
            ServiceProvider::Systemd => format!("{name}.service"),
            ServiceProvider::Sysv { .. } => name.to_string(),
        };
        Ok(ServiceName {
            name: name.to_string(),
            unit,
        })
    }

    /// The provider called `name`, with the init directory for SysV.
    pub fn named(name: ProviderName, init_dir: &Path) -> ServiceProvider {
        match name {
            ProviderName::Systemd => ServiceProvider::Systemd,
            ProviderName::Sysv => ServiceProvider::Sysv {
                init_dir: init_dir.to_path_buf(),
            },
        }
    }

    /// systemd when it is the running init (`/run/systemd/system` exists), SysV otherwise.
    pub fn detect(systemd_running: bool, init_dir: &Path) -> ServiceProvider {
        if systemd_running {
            ServiceProvider::Systemd
        } else {
            ServiceProvider::Sysv {
                init_dir: init_dir.to_path_buf(),
            }
        }
    }

    /// Whether systemd is this machine's init, as systemd itself tells (sd_booted(3)).
    pub fn systemd_running() -> bool {
        Path::new("/run/systemd/system").is_dir()
    }

    /// The provider's name as reported.
    pub fn name(&self) -> &'static str {
        match self {
            ServiceProvider::Systemd => "systemd",
            ServiceProvider::Sysv { .. } => "sysv",
        }
    }

    /// The argv for `action` on `service`, the `unit` of a [`Self::service_name`].
    pub fn argv(&self, action: ServiceAction, service: &str) -> Vec<String> {
        match self {
            ServiceProvider::Systemd => {
                let verb = if action == ServiceAction::Status {
                    "is-active"
                } else {
                    action.verb()
                };
                vec!["systemctl".into(), verb.into(), "--".into(), service.into()]
            }
            ServiceProvider::Sysv { init_dir } => {
                let script = init_dir.join(service);
                if script.is_file() {
                    vec![script.display().to_string(), action.verb().into()]
                } else {
                    vec!["service".into(), service.into(), action.verb().into()]
                }
            }
        }
    }

    /// Interprets a status command's exit code and output (stdout and stderr). systemd's
    /// `is-active` exits 0 only for an active unit and otherwise prints the unit's state; LSB
    /// init scripts exit 0 when running, 1–3 when not, 4 when they cannot tell. Anything
    /// else is an error with the tool's words, never a guess.
    pub fn parse_status(
        &self,
        exit_code: Option<i32>,
        output: &str,
    ) -> Result<ServiceStatus, String> {
        let first = output.lines().next().unwrap_or_default().trim();
        match self {
            ServiceProvider::Systemd => match exit_code {
                Some(0) => Ok(ServiceStatus::Running),
                Some(_)
                    if matches!(
                        first,
                        "inactive"
                            | "failed"
                            | "activating"
                            | "deactivating"
                            | "maintenance"
                            | "unknown"
                    ) =>
                {
                    Ok(ServiceStatus::Stopped)
                }
                _ => Err(status_error(exit_code, output)),
            },
            ServiceProvider::Sysv { .. } => {
                if output.contains("unrecognized service") {
                    return Err(format!("unknown service: {}", output.trim()));
                }
                match exit_code {
                    Some(0) => Ok(ServiceStatus::Running),
                    Some(1..=3) => Ok(ServiceStatus::Stopped),
                    _ => Err(status_error(exit_code, output)),
                }
            }
        }
    }
}

fn status_error(exit_code: Option<i32>, output: &str) -> String {
    let code = exit_code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
    let said = output.trim();
    if said.is_empty() {
        format!("the status command ended with {code}")
    } else {
        format!("the status command ended with {code}: {said}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_commands_and_status() {
        let p = ServiceProvider::Systemd;
        let unit = |name: &str| p.service_name(name).unwrap().unit;
        assert_eq!(
            p.argv(ServiceAction::Restart, &unit("nginx")),
            ["systemctl", "restart", "--", "nginx.service"]
        );
        assert_eq!(
            p.argv(ServiceAction::Start, &unit("nginx.service")),
            ["systemctl", "start", "--", "nginx.service"]
        );
        assert_eq!(
            p.argv(ServiceAction::Status, &unit("getty@tty1")),
            ["systemctl", "is-active", "--", "getty@tty1.service"]
        );
        assert_eq!(unit("php7.4-fpm"), "php7.4-fpm.service");
        let table: &[(Option<i32>, &str, Result<ServiceStatus, ()>)] = &[
            (Some(0), "active\n", Ok(ServiceStatus::Running)),
            (Some(0), "reloading\n", Ok(ServiceStatus::Running)),
            (Some(3), "inactive\n", Ok(ServiceStatus::Stopped)),
            (Some(3), "failed\n", Ok(ServiceStatus::Stopped)),
            (Some(3), "activating\n", Ok(ServiceStatus::Stopped)),
            (Some(4), "unknown\n", Ok(ServiceStatus::Stopped)),
            (
                Some(1),
                "System has not been booted with systemd as init system (PID 1). Can't operate.\n",
                Err(()),
            ),
            (None, "", Err(())),
        ];
        for (code, out, want) in table {
            assert_eq!(
                p.parse_status(*code, out).map_err(|_| ()),
                *want,
                "{code:?} {out:?}"
            );
        }
        let err = p
            .parse_status(Some(1), "Failed to connect to bus\n")
            .unwrap_err();
        assert!(
            err.contains("exit code 1: Failed to connect to bus"),
            "{err}"
        );
    }

    #[test]
    fn sysv_prefers_the_init_script_then_service() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mydaemon"), "#!/bin/sh\n").unwrap();
        let p = ServiceProvider::Sysv {
            init_dir: dir.path().to_path_buf(),
        };
        let script = dir.path().join("mydaemon").display().to_string();
        assert_eq!(
            p.argv(ServiceAction::Start, "mydaemon"),
            [script.as_str(), "start"]
        );
        assert_eq!(
            p.argv(ServiceAction::Stop, "other"),
            ["service", "other", "stop"]
        );
        assert_eq!(p.parse_status(Some(0), ""), Ok(ServiceStatus::Running));
        assert_eq!(p.parse_status(Some(3), ""), Ok(ServiceStatus::Stopped));
        assert_eq!(
            p.parse_status(Some(1), "dead, pid file exists"),
            Ok(ServiceStatus::Stopped)
        );
        assert!(p.parse_status(Some(4), "").is_err());
        assert!(p
            .parse_status(Some(1), "other: unrecognized service\n")
            .unwrap_err()
            .contains("unknown service"));
        assert_eq!(ServiceProvider::detect(true, dir.path()).name(), "systemd");
        assert_eq!(ServiceProvider::detect(false, dir.path()).name(), "sysv");
        assert_eq!(
            ServiceProvider::named(ProviderName::Sysv, dir.path()),
            ServiceProvider::Sysv {
                init_dir: dir.path().to_path_buf()
            }
        );
    }

    #[test]
    fn only_services_are_services() {
        let dir = tempfile::tempdir().unwrap();
        let sysv = ServiceProvider::Sysv {
            init_dir: dir.path().to_path_buf(),
        };
        for p in [&ServiceProvider::Systemd, &sysv] {
            for unit_type in NON_SERVICE_UNIT_TYPES {
                let name = format!("reboot.{unit_type}");
                let err = p.service_name(&name).unwrap_err();
                assert!(err.contains("manages .service units only"), "{name}: {err}");
            }
            for never in [
                "halt",
                "reboot",
                "sendsigs",
                "umountfs",
                "umountnfs.sh",
                "killprocs",
                "rcS",
                "systemd-reboot",
                "systemd-reboot.service",
                "halt.service",
                "rescue.service",
            ] {
                let err = p.service_name(never).unwrap_err();
                assert!(err.contains("halts, reboots"), "{never}: {err}");
            }
            for bad in [".service", "*.service", "nginx*", "ng?nx", "[n]ginx", "-h"] {
                assert!(p.service_name(bad).is_err(), "{bad}");
            }
            assert_eq!(p.service_name("nginx.service").unwrap().name, "nginx");
        }
        assert_eq!(
            sysv.service_name("nginx.service").unwrap(),
            ServiceName {
                name: "nginx".into(),
                unit: "nginx".into()
            }
        );
        assert_eq!(sysv.service_name("umountnfs").unwrap().unit, "umountnfs");
    }

    #[test]
    fn names_that_are_options_or_directories_are_refused() {
        for ok in ["httpd", "getty@tty1", "a.service", "nginx-1_2:x"] {
            assert!(check_service_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-h",
            "--status-all",
            ".",
            "..",
            "a/b",
            "a b",
            "a;b",
            "a\nb",
        ] {
            assert!(check_service_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ServiceAction::from_name("restart"),
            Some(ServiceAction::Restart)
        );
        assert_eq!(ServiceAction::from_name("reload"), None);
    }
}
