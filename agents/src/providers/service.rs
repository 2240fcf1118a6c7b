//! Service providers for the service agent: systemd (`systemctl`) and SysV init scripts
//! (`/etc/init.d/<name>`, or `service <name>` where no script is found). This module builds
//! argv lists and interprets results; running them is [`crate::providers::command::run`].

use std::path::{Path, PathBuf};

use serde::Serialize;

/// How services are managed on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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
    /// The verb the tools use.
    pub fn verb(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Status => "status",
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

impl ServiceProvider {
    /// Parses a configured provider (`systemd`, `sysv`), with the init directory for SysV.
    pub fn from_name(name: &str, init_dir: &Path) -> Option<ServiceProvider> {
        match name {
            "systemd" => Some(ServiceProvider::Systemd),
            "sysv" | "init" => Some(ServiceProvider::Sysv {
                init_dir: init_dir.to_path_buf(),
            }),
            _ => None,
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

    /// The provider's name as reported.
    pub fn name(&self) -> &'static str {
        match self {
            ServiceProvider::Systemd => "systemd",
            ServiceProvider::Sysv { .. } => "sysv",
        }
    }

    /// The argv for `action` on `service`. `service` has been validated by the DDL
    /// (`service_name`), so it holds no path separators or shell syntax.
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

    /// Interprets a status command's result. systemd's `is-active` prints `active` and exits 0
    /// only for a running unit; LSB init scripts exit 0 when running and 1–4 otherwise.
    pub fn parse_status(&self, exit_code: Option<i32>, stdout: &str) -> ServiceStatus {
        let running = match self {
            ServiceProvider::Systemd => exit_code == Some(0) && stdout.trim() == "active",
            ServiceProvider::Sysv { .. } => exit_code == Some(0),
        };
        if running {
            ServiceStatus::Running
        } else {
            ServiceStatus::Stopped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_commands_and_status() {
        let p = ServiceProvider::Systemd;
        assert_eq!(
            p.argv(ServiceAction::Restart, "nginx"),
            ["systemctl", "restart", "--", "nginx"]
        );
        assert_eq!(
            p.argv(ServiceAction::Status, "nginx"),
            ["systemctl", "is-active", "--", "nginx"]
        );
        assert_eq!(p.parse_status(Some(0), "active\n"), ServiceStatus::Running);
        assert_eq!(
            p.parse_status(Some(3), "inactive\n"),
            ServiceStatus::Stopped
        );
        assert_eq!(p.parse_status(Some(3), "failed\n"), ServiceStatus::Stopped);
        assert_eq!(
            p.parse_status(Some(0), "activating\n"),
            ServiceStatus::Stopped
        );
        assert_eq!(p.parse_status(None, ""), ServiceStatus::Stopped);
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
        assert_eq!(p.parse_status(Some(0), ""), ServiceStatus::Running);
        assert_eq!(p.parse_status(Some(3), ""), ServiceStatus::Stopped);
        assert_eq!(ServiceProvider::detect(true, dir.path()).name(), "systemd");
        assert_eq!(ServiceProvider::detect(false, dir.path()).name(), "sysv");
        assert_eq!(
            ServiceProvider::from_name("sysv", dir.path())
                .unwrap()
                .name(),
            "sysv"
        );
        assert!(ServiceProvider::from_name("upstart", dir.path()).is_none());
    }
}
