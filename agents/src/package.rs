//! The `package` agent: the actions, inputs and outputs of Choria's package agent DDL
//! (shipped by `mco_ddl::builtin`) on the node's own package tools: dpkg and apt on
//! Debian-like systems, rpm with dnf or yum on Red Hat-like ones, found on the node or named
//! in the `[agents.package]` configuration.
//!
//! Changes (install, update, uninstall, purge, refresh, apt_update, yum_clean) are
//! serialised: a second one waits for the first, and gives up with a clear message when the
//! first outlasts its own time. Queries run at once. Every command is an argv built from
//! inputs checked twice (the DDL's `shellsafe` on client and node, then
//! [`check_package_name`] here, which refuses what a tool would read as an option), run
//! without a shell, with a time limit and never interactively.
//!
//! Not here: argv building and output parsing ([`crate::providers::package`]), running
//! commands ([`crate::providers::command`]).

use std::sync::Mutex as StdMutex;
use std::time::Instant;

use async_trait::async_trait;
use mco_ddl::AgentDdl;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::agent::{outputs, shipped_ddl, ActionContext, Agent, Outcome};
use crate::providers::command::{find_program, run_until, CommandOutput, Deadline};
use crate::providers::package::{
    check_package_name, check_search_pattern, check_version, installed_list_text,
    parse_checkupdates, parse_installed_list, parse_search, parse_status, PackageStatus, Provider,
};
use crate::registry::{InvalidSetting, Unavailable};

/// The `[agents.package]` table of mcod's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSettings {
    /// `apt`, `dnf` or `yum`; found from the node's tools when not given.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Extra arguments for the package manager (apt-get and apt-cache, or dnf/yum), placed
    /// before its command: `["-o", "Dir::Etc::sourcelist=/etc/mco/sources.list"]`.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// What `yum_clean` cleans when the request names no mode (default `all`).
    #[serde(default)]
    pub yum_clean_mode: Option<String>,
}

/// The modes `yum_clean` accepts, as its DDL lists them.
pub const YUM_CLEAN_MODES: [&str; 7] = [
    "all",
    "headers",
    "packages",
    "metadata",
    "dbcache",
    "plugins",
    "expire-cache",
];

impl PackageSettings {
    /// Checks values a type cannot: the clean mode.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        match &self.yum_clean_mode {
            Some(mode) if !YUM_CLEAN_MODES.contains(&mode.as_str()) => Err(InvalidSetting::new(
                "agents.package.yum_clean_mode",
                format!("{mode:?} is not one of {}", YUM_CLEAN_MODES.join(", ")),
            )),
            _ => Ok(()),
        }
    }
}

/// The package agent.
pub struct PackageAgent {
    ddl: AgentDdl,
    provider: Provider,
    extra_args: Vec<String>,
    yum_clean_mode: String,
    /// Held by the change in progress; package managers take a global lock of their own, and
    /// two changes interleaved would fail on it or leave the second one's view stale.
    changes: tokio::sync::Mutex<()>,
    /// What holds `changes` and since when, for the message of a call that gives up waiting.
    holder: StdMutex<Option<(String, Instant)>>,
}

impl PackageAgent {
    /// The agent with the configured provider, or the one the node's tools suggest; `Err`
    /// says why the node has none (the agent is then not served).
    pub fn activate(settings: &PackageSettings) -> Result<PackageAgent, Unavailable> {
        let provider = match settings.provider {
            Some(p) => p,
            None => Provider::detect(|tool| find_program(tool).is_some()).ok_or_else(|| {
                Unavailable(
                    "no package manager found (dpkg-query with apt-get, or rpm with dnf or yum)"
                        .into(),
                )
            })?,
        };
        Ok(PackageAgent {
            ddl: shipped_ddl("package"),
            provider,
            extra_args: settings.extra_args.clone(),
            yum_clean_mode: settings
                .yum_clean_mode
                .clone()
                .unwrap_or_else(|| "all".into()),
            changes: tokio::sync::Mutex::new(()),
            holder: StdMutex::new(None),
        })
    }

    /// The provider in use.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Waits for the change lock until `deadline`.
    async fn lock(&self, what: String, deadline: Deadline) -> Result<ChangeGuard<'_>, String> {
        match tokio::time::timeout(deadline.remaining(), self.changes.lock()).await {
            Ok(guard) => {
                *self.holder.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((what, Instant::now()));
                Ok(ChangeGuard {
                    _guard: guard,
                    holder: &self.holder,
                })
            }
            Err(_) => {
                let holder = self.holder.lock().unwrap_or_else(|p| p.into_inner());
                Err(match holder.as_ref() {
                    Some((other, since)) => format!(
                        "another package operation ({other}, running for {} s) did not finish in time; try again later",
                        since.elapsed().as_secs()
                    ),
                    None => "another package operation did not finish in time; try again later"
                        .into(),
                })
            }
        }
    }

    async fn status_of(&self, package: &str, deadline: Deadline) -> Result<PackageStatus, String> {
        let out = self
            .tool(self.provider.status_argv(package), deadline)
            .await?;
        // Both dpkg-query and rpm exit 1 for a package they do not know: that is a status.
        if !matches!(out.code, Some(0) | Some(1)) {
            return Err(failure("the status query", &out));
        }
        Ok(parse_status(self.provider, package, &out.stdout))
    }

    /// Refuses a name the package manager does not know exactly as a package (see
    /// [`Provider::knows`]): it would read it as a pattern, a version or an action suffix.
    async fn known_exactly(&self, package: &str, deadline: Deadline) -> Result<(), Outcome> {
        let argv = self.provider.known_argv(package, &self.extra_args);
        let out = self.tool(argv, deadline).await.map_err(Outcome::aborted)?;
        if self.provider.knows(package, &out.stdout) {
            return Ok(());
        }
        Err(Outcome::invalid(format!(
            "{package:?} is not a package {} knows: package names are taken literally, never as patterns, versions or with a trailing + or -",
            self.provider.name()
        )))
    }

    async fn tool(&self, argv: Vec<String>, deadline: Deadline) -> Result<CommandOutput, String> {
        run_until(&argv, deadline).await.map_err(|e| e.to_string())
    }

    /// install, update, uninstall and purge: Choria's rules for when each makes sense, then
    /// the tool, then the package's state afterwards.
    async fn change(
        &self,
        action: &str,
        package: &str,
        version: Option<&str>,
        deadline: Deadline,
    ) -> Outcome {
        let _guard = match self.lock(format!("{action} {package}"), deadline).await {
            Ok(guard) => guard,
            Err(message) => return Outcome::aborted(message),
        };
        let before = match self.status_of(package, deadline).await {
            Ok(status) => status,
            Err(e) => return Outcome::aborted(e),
        };
        let refusal = match action {
            "install" if before.installed() && version.is_none() => {
                Some("Package is already installed")
            }
            "update" | "uninstall" if !before.installed() => {
                Some("Package is not present on the system")
            }
            "purge" if before.purged() => Some("Package is not present on the system"),
            _ => None,
        };
        if let Some(message) = refusal {
            return Outcome::aborted(message).with_data(before.outputs());
        }
        // The other changes act only on a package the status query found installed under
        // exactly this name; an install must name exactly a package the repositories have.
        if action == "install" {
            if let Err(outcome) = self.known_exactly(package, deadline).await {
                return outcome;
            }
        }
        let argv = match action {
            "install" => self
                .provider
                .install_argv(package, version, &self.extra_args),
            "update" => self.provider.update_argv(package, &self.extra_args),
            "uninstall" => self.provider.uninstall_argv(package, &self.extra_args),
            _ => self.provider.purge_argv(package, &self.extra_args),
        };
        let tool = argv.first().cloned().unwrap_or_default();
        let out = match self.tool(argv, deadline).await {
            Ok(out) => out,
            Err(e) => return Outcome::aborted(e).with_data(before.outputs()),
        };
        let after = match self.status_of(package, deadline).await {
            Ok(status) => status,
            Err(e) => return Outcome::aborted(e),
        };
        let mut data = after.outputs();
        data.insert("output".into(), json!(out.combined()));
        if !out.success() {
            return Outcome::aborted(failure(&format!("{tool} {action}"), &out)).with_data(data);
        }
        let done = match action {
            "install" | "update" => after.installed(),
            "uninstall" => !after.installed(),
            _ => after.purged(),
        };
        if done {
            Outcome::ok(data)
        } else {
            Outcome::aborted(format!(
                "{tool} reported success but {package} is {} afterwards",
                after.ensure
            ))
            .with_data(data)
        }
    }

    /// count and md5 of the installed packages.
    async fn inventory(&self, action: &str, deadline: Deadline) -> Outcome {
        let out = match self.tool(self.provider.list_argv(), deadline).await {
            Ok(out) => out,
            Err(e) => return Outcome::aborted(e),
        };
        if !out.success() {
            return Outcome::aborted(failure("listing the installed packages", &out))
                .with_data(outputs([("exitcode", json!(out.code))]));
        }
        let packages = parse_installed_list(&out.stdout);
        let output = if action == "count" {
            packages.len().to_string()
        } else {
            hex::encode(Md5::digest(installed_list_text(&packages).as_bytes()))
        };
        Outcome::ok(outputs([
            ("output", json!(output)),
            ("exitcode", json!(out.code)),
        ]))
    }

    async fn search(&self, pattern: &str, deadline: Deadline) -> Outcome {
        if let Err(e) = check_search_pattern(pattern) {
            return Outcome::invalid(e);
        }
        let out = match self
            .tool(
                self.provider.search_argv(pattern, &self.extra_args),
                deadline,
            )
            .await
        {
            Ok(out) => out,
            Err(e) => return Outcome::aborted(e),
        };
        // dnf and yum exit 1 when nothing matches, which is an answer.
        let nothing = self.provider != Provider::Apt
            && out.code == Some(1)
            && out.combined().contains("No matching Packages");
        if !out.success() && !nothing {
            return Outcome::aborted(failure("the search", &out));
        }
        let names = parse_search(self.provider, &out.stdout);
        Outcome::ok(outputs([
            ("package_count", json!(names.len())),
            ("available_packages", json!(names)),
        ]))
    }

    async fn checkupdates(&self, deadline: Deadline) -> Outcome {
        let out = match self
            .tool(self.provider.checkupdates_argv(&self.extra_args), deadline)
            .await
        {
            Ok(out) => out,
            Err(e) => return Outcome::aborted(e),
        };
        let mut data = outputs([
            ("package_manager", json!(self.provider.name())),
            ("output", json!(out.stdout.trim_end())),
            ("exitcode", json!(out.code)),
        ]);
        if !self.provider.checkupdates_succeeded(out.code) {
            return Outcome::aborted(failure("checking for updates", &out)).with_data(data);
        }
        data.insert(
            "outdated_packages".into(),
            json!(parse_checkupdates(self.provider, &out.stdout)),
        );
        Outcome::ok(data)
    }

    /// refresh, apt_update (refresh, then the pending updates, as Choria does) and yum_clean.
    async fn maintain(&self, action: &str, mode: Option<&str>, deadline: Deadline) -> Outcome {
        let argv = match action {
            "yum_clean" => {
                let mode = mode.unwrap_or(&self.yum_clean_mode);
                match self.provider.clean_argv(mode, &self.extra_args) {
                    Some(argv) => argv,
                    None => return self.wrong_provider(action),
                }
            }
            _ => self.provider.refresh_argv(&self.extra_args),
        };
        let _guard = match self.lock(action.to_string(), deadline).await {
            Ok(guard) => guard,
            Err(message) => return Outcome::aborted(message),
        };
        let tool = argv.first().cloned().unwrap_or_default();
        let out = match self.tool(argv, deadline).await {
            Ok(out) => out,
            Err(e) => return Outcome::aborted(e),
        };
        let data = outputs([
            ("output", json!(out.combined())),
            ("exitcode", json!(out.code)),
        ]);
        if !out.success() {
            return Outcome::aborted(failure(&format!("{tool} {action}"), &out)).with_data(data);
        }
        if action == "apt_update" {
            return self.checkupdates(deadline).await;
        }
        Outcome::ok(data)
    }

    fn wrong_provider(&self, action: &str) -> Outcome {
        Outcome::aborted(format!(
            "{action} is not available with the {} package provider of this node",
            self.provider.name()
        ))
    }
}

/// Held while a change runs; says who holds the lock until dropped.
struct ChangeGuard<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    holder: &'a StdMutex<Option<(String, Instant)>>,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        *self.holder.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// "`what` failed with exit code N: <the tool's last words>".
fn failure(what: &str, out: &CommandOutput) -> String {
    let code = out.code.map_or("was killed by a signal".to_string(), |c| {
        format!("failed with exit code {c}")
    });
    let said = out.combined();
    match said.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => format!("{what} {code}: {}", last.trim()),
        None => format!("{what} {code}"),
    }
}

fn text<'a>(data: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    data.get(name).and_then(Value::as_str)
}

#[async_trait]
impl Agent for PackageAgent {
    fn ddl(&self) -> &AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        _ctx: &ActionContext<'_>,
        action: &str,
        data: &Map<String, Value>,
    ) -> Outcome {
        let deadline = Deadline::for_timeout(self.ddl.metadata.timeout);
        // The node validated inputs against the DDL, so required ones are present.
        let package = text(data, "package").unwrap_or_default();
        // search takes a pattern, checked by search itself.
        if data.contains_key("package") && action != "search" {
            if let Err(e) = check_package_name(package) {
                return Outcome::invalid(e);
            }
        }
        match action {
            "status" => match self.status_of(package, deadline).await {
                Ok(status) => Outcome::ok(status.outputs()),
                Err(e) => Outcome::aborted(e),
            },
            "install" => {
                let version = text(data, "version");
                if let Some(Err(e)) = version.map(check_version) {
                    return Outcome::invalid(e);
                }
                self.change(action, package, version, deadline).await
            }
            "update" | "uninstall" | "purge" => self.change(action, package, None, deadline).await,
            "count" | "md5" => self.inventory(action, deadline).await,
            "search" => self.search(package, deadline).await,
            "checkupdates" => self.checkupdates(deadline).await,
            "apt_checkupdates" if self.provider == Provider::Apt => {
                self.checkupdates(deadline).await
            }
            "yum_checkupdates" if self.provider != Provider::Apt => {
                self.checkupdates(deadline).await
            }
            "apt_checkupdates" | "yum_checkupdates" => self.wrong_provider(action),
            "apt_update" if self.provider != Provider::Apt => self.wrong_provider(action),
            "refresh" | "apt_update" => self.maintain(action, None, deadline).await,
            "yum_clean" => self.maintain(action, text(data, "mode"), deadline).await,
            other => Outcome::unknown_action("package", other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{call, TestNode};
    use mco_spec::StatusCode;

    fn agent() -> PackageAgent {
        PackageAgent::activate(&PackageSettings::default())
            .unwrap_or_else(|e| panic!("these tests need dpkg/apt or rpm: {e}"))
    }

    #[tokio::test]
    async fn status_count_and_md5_of_the_installed_packages() {
        let agent = agent();
        let node = TestNode;
        // Every Debian and Red Hat system has its shell packaged as bash.
        let shell = "bash";
        let status = call(&agent, &node, "status", json!({"package": shell})).await;
        assert_eq!(status.statuscode, StatusCode::Ok, "{status:?}");
        assert_ne!(status.data["ensure"], "absent");
        assert_ne!(status.data["ensure"], "purged");
        assert_eq!(status.data["name"], shell);
        assert_eq!(status.data["provider"], agent.provider().name());
        let missing = call(
            &agent,
            &node,
            "status",
            json!({"package": "mco-no-such-package"}),
        )
        .await;
        assert_eq!(missing.statuscode, StatusCode::Ok);
        assert!(
            missing.data["ensure"] == "purged" || missing.data["ensure"] == "absent",
            "{missing:?}"
        );
        let count = call(&agent, &node, "count", json!({})).await;
        let n: usize = count.data["output"].as_str().unwrap().parse().unwrap();
        assert!(n > 10, "{count:?}");
        let md5 = call(&agent, &node, "md5", json!({})).await;
        let digest = md5.data["output"].as_str().unwrap();
        assert_eq!(digest.len(), 32);
        assert_eq!(
            call(&agent, &node, "md5", json!({})).await.data["output"],
            digest
        );
    }

    #[tokio::test]
    async fn names_a_tool_would_read_as_options_never_reach_it() {
        let agent = agent();
        let node = TestNode;
        for action in ["status", "install", "uninstall", "purge", "update"] {
            let refused = call(
                &agent,
                &node,
                action,
                json!({"package": "-oDpkg::Pre-Invoke::=touch /tmp/mco-pwned"}),
            )
            .await;
            assert_eq!(refused.statuscode, StatusCode::InvalidData, "{action}");
            assert!(refused
                .statusmsg
                .contains("must start with a letter or digit"));
        }
        let bad_version = call(
            &agent,
            &node,
            "install",
            json!({"package": "bash", "version": "--allow-downgrades"}),
        )
        .await;
        assert_eq!(bad_version.statuscode, StatusCode::InvalidData);
        let bad_pattern = call(&agent, &node, "search", json!({"package": "--help"})).await;
        assert_eq!(bad_pattern.statuscode, StatusCode::InvalidData);
        assert!(!std::path::Path::new("/tmp/mco-pwned").exists());
    }

    #[tokio::test]
    async fn installing_what_is_installed_is_refused_without_running_anything() {
        let agent = agent();
        let node = TestNode;
        let again = call(&agent, &node, "install", json!({"package": "bash"})).await;
        assert_eq!(again.statuscode, StatusCode::Aborted);
        assert_eq!(again.statusmsg, "Package is already installed");
        assert_ne!(again.data["ensure"], "purged");
        let gone = call(
            &agent,
            &node,
            "uninstall",
            json!({"package": "mco-no-such-package"}),
        )
        .await;
        assert_eq!(gone.statusmsg, "Package is not present on the system");
        let wrong = if agent.provider() == Provider::Apt {
            "yum_clean"
        } else {
            "apt_update"
        };
        let refused = call(&agent, &node, wrong, json!({})).await;
        assert!(
            refused.statusmsg.contains("is not available with the"),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn an_install_must_name_a_package_exactly() {
        let agent = agent();
        let node = TestNode;
        // Names no machine has, so that even a tool that read them as patterns or suffixes
        // would change nothing here.
        for name in [
            "mco-no-such-package-",
            "mco-no-such-package+",
            "mco-no-such.+",
        ] {
            let refused = call(&agent, &node, "install", json!({"package": name})).await;
            assert_eq!(
                refused.statuscode,
                StatusCode::InvalidData,
                "{name}: {refused:?}"
            );
            assert!(
                refused
                    .statusmsg
                    .contains("package names are taken literally"),
                "{name}: {}",
                refused.statusmsg
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(PackageSettings::default().check().is_ok());
        let bad = PackageSettings {
            yum_clean_mode: Some("everything".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.check().unwrap_err().key,
            "agents.package.yum_clean_mode"
        );
        let named = PackageAgent::activate(&PackageSettings {
            provider: Some(Provider::Dnf),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(named.provider(), Provider::Dnf);
    }

    #[test]
    fn failures_quote_the_tools_last_words() {
        let out = CommandOutput {
            code: Some(100),
            stdout: "Reading package lists...\n".into(),
            stderr: "E: Unable to locate package nope\n\n".into(),
        };
        assert_eq!(
            failure("apt-get install", &out),
            "apt-get install failed with exit code 100: E: Unable to locate package nope"
        );
    }
}
