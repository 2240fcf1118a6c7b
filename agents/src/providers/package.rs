//! Package providers for the package agent: dpkg/apt on Debian-like systems, rpm with dnf or
//! yum on Red Hat-like ones. This module checks names, builds argv lists (never shell
//! strings) and parses the tools' output; running them is [`crate::providers::command::run`].
//!
//! Not for policy (what may be installed) or locking: the agent does that.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Which tool family manages packages on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// dpkg for queries, apt-get and apt-cache for the rest.
    Apt,
    /// rpm for queries, dnf for the rest.
    Dnf,
    /// rpm for queries, yum for the rest.
    Yum,
}

impl Provider {
    /// Parses a provider name (`dpkg` is accepted for `apt`).
    pub fn from_name(name: &str) -> Option<Provider> {
        match name {
            "apt" | "dpkg" => Some(Provider::Apt),
            "dnf" => Some(Provider::Dnf),
            "yum" => Some(Provider::Yum),
            _ => None,
        }
    }

    /// Picks the provider from the tools the node has (`exists` answers for a program name).
    pub fn detect(exists: impl Fn(&str) -> bool) -> Option<Provider> {
        if exists("dpkg-query") && exists("apt-get") {
            Some(Provider::Apt)
        } else if exists("rpm") && exists("dnf") {
            Some(Provider::Dnf)
        } else if exists("rpm") && exists("yum") {
            Some(Provider::Yum)
        } else {
            None
        }
    }

    /// The name reported in outputs (`provider`, `package_manager`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Apt => "apt",
            Provider::Dnf => "dnf",
            Provider::Yum => "yum",
        }
    }

    /// The argv that prints one package's status line.
    pub fn status_argv(self, package: &str) -> Vec<String> {
        match self {
            Provider::Apt => argv(&["dpkg-query", "-W", "-f", DPKG_FORMAT, package]),
            Provider::Dnf | Provider::Yum => argv(&["rpm", "-q", "--qf", RPM_FORMAT, package]),
        }
    }

    /// The argv that lists what the package manager's repositories call `package`, for
    /// [`Self::knows`]. Both tools read their argument as more than a name (apt-cache as a
    /// prefix, dnf/yum as a pattern or name-version-release), so the answer is compared
    /// with the name exactly.
    pub fn known_argv(self, package: &str, extra: &[String]) -> Vec<String> {
        match self {
            Provider::Apt => {
                let mut v = argv(&["apt-cache"]);
                v.extend(extra.iter().cloned());
                v.extend(argv(&["pkgnames", package]));
                v
            }
            Provider::Dnf | Provider::Yum => {
                self.query(extra, &["list", "--showduplicates", package])
            }
        }
    }

    /// Whether [`Self::known_argv`]'s output names `package` exactly. apt-get reads a name it
    /// does not know as a pattern (`python3.+`) or with an action suffix (`zlib1g-dev-`
    /// removes, `foo+` installs), and dnf/yum read `foo-1.2` as `foo` at version 1.2 when no
    /// package is called `foo-1.2`; a name the tool knows exactly is taken as that name.
    pub fn knows(self, package: &str, stdout: &str) -> bool {
        match self {
            Provider::Apt => stdout.lines().any(|line| line.trim() == package),
            Provider::Dnf | Provider::Yum => parse_yum_list_names(stdout).any(|n| n == package),
        }
    }

    /// The argv that installs `package`, at `version` when given.
    pub fn install_argv(
        self,
        package: &str,
        version: Option<&str>,
        extra: &[String],
    ) -> Vec<String> {
        let target = match (self, version) {
            (_, None) => package.to_string(),
            (Provider::Apt, Some(v)) => format!("{package}={v}"),
            (Provider::Dnf | Provider::Yum, Some(v)) => format!("{package}-{v}"),
        };
        self.change(extra, &["install", &target])
    }

    /// The argv that upgrades an installed `package` to the newest available version.
    pub fn update_argv(self, package: &str, extra: &[String]) -> Vec<String> {
        match self {
            Provider::Apt => self.change(extra, &["install", "--only-upgrade", package]),
            Provider::Dnf | Provider::Yum => self.change(extra, &["upgrade", package]),
        }
    }

    /// The argv that removes `package`, keeping its configuration files on Debian.
    pub fn uninstall_argv(self, package: &str, extra: &[String]) -> Vec<String> {
        self.change(extra, &["remove", package])
    }

    /// The argv that removes `package` and its configuration files (rpm keeps none apart).
    pub fn purge_argv(self, package: &str, extra: &[String]) -> Vec<String> {
        match self {
            Provider::Apt => self.change(extra, &["purge", package]),
            Provider::Dnf | Provider::Yum => self.change(extra, &["remove", package]),
        }
    }

    /// The argv that lists every installed package, for `count` and `md5`
    /// (see [`parse_installed_list`]).
    pub fn list_argv(self) -> Vec<String> {
        match self {
            Provider::Apt => argv(&[
                "dpkg-query",
                "-W",
                "-f",
                "${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n",
            ]),
            Provider::Dnf | Provider::Yum => argv(&[
                "rpm",
                "-qa",
                "--qf",
                "ii \\t%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n",
            ]),
        }
    }

    /// The argv that lists available packages whose names match `pattern`.
    pub fn search_argv(self, pattern: &str, extra: &[String]) -> Vec<String> {
        match self {
            Provider::Apt => {
                let mut v = argv(&["apt-cache"]);
                v.extend(extra.iter().cloned());
                v.extend(argv(&["search", "--names-only", pattern]));
                v
            }
            Provider::Dnf | Provider::Yum => self.query(extra, &["list", "available", pattern]),
        }
    }

    /// The argv that lists pending updates without changing anything.
    pub fn checkupdates_argv(self, extra: &[String]) -> Vec<String> {
        match self {
            Provider::Apt => {
                let mut v = argv(&["apt-get", "-s", "-q", "-o", "Debug::NoLocking=true"]);
                v.extend(extra.iter().cloned());
                v.push("dist-upgrade".into());
                v
            }
            Provider::Dnf | Provider::Yum => self.query(extra, &["check-update"]),
        }
    }

    /// Whether the [`Self::checkupdates_argv`] exit code means it worked: yum and dnf exit
    /// 100 when updates are available.
    pub fn checkupdates_succeeded(self, code: Option<i32>) -> bool {
        match self {
            Provider::Apt => code == Some(0),
            Provider::Dnf | Provider::Yum => matches!(code, Some(0) | Some(100)),
        }
    }

    /// The argv that refreshes the package metadata.
    pub fn refresh_argv(self, extra: &[String]) -> Vec<String> {
        match self {
            Provider::Apt => {
                let mut v = argv(&["apt-get", "-q"]);
                v.extend(extra.iter().cloned());
                v.push("update".into());
                v
            }
            Provider::Dnf | Provider::Yum => self.query(extra, &["makecache"]),
        }
    }

    /// The argv that cleans yum's or dnf's cache in `mode`; `None` for apt, which has no
    /// such modes.
    pub fn clean_argv(self, mode: &str, extra: &[String]) -> Option<Vec<String>> {
        match self {
            Provider::Apt => None,
            Provider::Dnf | Provider::Yum => Some(self.query(extra, &["clean", mode])),
        }
    }

    /// A command that changes the system: never prompts, keeps local configuration files,
    /// and waits a while for another package manager to finish rather than failing at once.
    fn change(self, extra: &[String], parts: &[&str]) -> Vec<String> {
        let mut v = match self {
            Provider::Apt => argv(&[
                "apt-get",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                "-o",
                "DPkg::Lock::Timeout=60",
                "-o",
                "Dpkg::Use-Pty=0",
            ]),
            Provider::Dnf | Provider::Yum => argv(&[self.name(), "-y", "-q"]),
        };
        v.extend(extra.iter().cloned());
        v.extend(parts.iter().map(|s| s.to_string()));
        v
    }

    /// A yum/dnf command that only reads or refreshes metadata.
    fn query(self, extra: &[String], parts: &[&str]) -> Vec<String> {
        let mut v = argv(&[self.name(), "-q"]);
        v.extend(extra.iter().cloned());
        v.extend(parts.iter().map(|s| s.to_string()));
        v
    }
}

const DPKG_FORMAT: &str = "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n";
const RPM_FORMAT: &str = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n";

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Checks a package name beyond the DDL's `shellsafe`: the tools would read a leading `-` as
/// an option (`-oDpkg::Pre-Invoke::=...` runs a command), and whitespace or globs make one
/// argument mean several packages.
pub fn check_package_name(name: &str) -> Result<(), String> {
    check_word(name, "package name", false, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '_' | ':' | '-')
    })
}

/// Checks a version for `install`, like [`check_package_name`].
pub fn check_version(version: &str) -> Result<(), String> {
    check_word(version, "version", false, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | ':' | '_' | '-')
    })
}

/// Checks a `search` pattern: a name, a glob or a simple pattern, never an option.
pub fn check_search_pattern(pattern: &str) -> Result<(), String> {
    check_word(pattern, "search pattern", true, |c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '.' | '+' | '_' | ':' | '-' | '*' | '?' | '[' | ']' | '^' | '~'
            )
    })
}

/// `pattern_start` lets a pattern begin with `*`, `^` or `[`; nothing may begin with `-`.
fn check_word(
    value: &str,
    what: &str,
    pattern_start: bool,
    allowed: impl Fn(char) -> bool,
) -> Result<(), String> {
    match value.chars().next() {
        None => Err(format!("an empty {what} is not allowed")),
        Some(first)
            if !(first.is_ascii_alphanumeric()
                || pattern_start && matches!(first, '*' | '^' | '[')) =>
        {
            Err(format!(
                "{value:?} is not a valid {what}: it must start with a letter or digit"
            ))
        }
        Some(_) => match value.chars().find(|c| !allowed(*c)) {
            Some(c) => Err(format!(
                "{value:?} is not a valid {what}: {c:?} is not allowed"
            )),
            None => Ok(()),
        },
    }
}

/// A package's state, with the outputs the package DDL declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageStatus {
    /// The package name.
    pub name: String,
    /// The installed version (`[epoch:]version-release` as the tool prints it), `absent`
    /// (removed, configuration files left) or `purged` (nothing left), as Puppet reports it.
    pub ensure: String,
    /// The upstream version, if installed.
    pub version: Option<String>,
    /// The packaging release, if installed.
    pub release: Option<String>,
    /// The epoch, if installed (`0` when none).
    pub epoch: Option<String>,
    /// The architecture, if installed.
    pub arch: Option<String>,
    /// The provider name.
    pub provider: String,
}

impl PackageStatus {
    /// The status of a package that is not installed: `ensure` is `absent` or `purged`.
    pub fn not_installed(name: &str, provider: Provider, ensure: &str) -> PackageStatus {
        PackageStatus {
            name: name.to_string(),
            ensure: ensure.into(),
            version: None,
            release: None,
            epoch: None,
            arch: None,
            provider: provider.name().into(),
        }
    }

    /// Whether the package is installed.
    pub fn installed(&self) -> bool {
        !matches!(self.ensure.as_str(), "absent" | "purged")
    }

    /// Whether nothing of the package is left: `purge` has nothing to do. rpm keeps no
    /// configuration apart from the package, so absent is purged there.
    pub fn purged(&self) -> bool {
        self.ensure == "purged" || (self.provider != Provider::Apt.name() && !self.installed())
    }

    /// The DDL outputs (`name`, `ensure`, `version`, `release`, `epoch`, `arch`, `provider`).
    pub fn outputs(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("ensure".into(), json!(self.ensure));
        out.insert("version".into(), json!(self.version));
        out.insert("release".into(), json!(self.release));
        out.insert("epoch".into(), json!(self.epoch));
        out.insert("arch".into(), json!(self.arch));
        out.insert("provider".into(), json!(self.provider));
        out
    }
}

/// Splits a Debian version `[epoch:]upstream[-revision]` into (epoch, upstream, revision).
pub fn split_debian_version(full: &str) -> (String, String, String) {
    let (epoch, rest) = match full.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()) => {
            (e.to_string(), r)
        }
        _ => ("0".to_string(), full),
    };
    let (version, release) = match rest.rsplit_once('-') {
        Some((v, r)) => (v.to_string(), r.to_string()),
        None => (rest.to_string(), String::new()),
    };
    (epoch, version, release)
}

/// Parses `dpkg-query` status output for `name` (see [`Provider::status_argv`]). dpkg-query
/// prints nothing (and exits 1) for a package it has never seen: that is `purged`.
pub fn parse_dpkg_status(name: &str, stdout: &str) -> PackageStatus {
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [package, full, arch, abbrev] = fields[..] else {
            continue;
        };
        if package != name {
            continue;
        }
        // The second letter of the abbreviation is the state: installed (i), installed with
        // triggers pending (W, t), not installed (n), or in between (config-files c,
        // half-installed H, unpacked U, half-configured F), which Puppet calls absent.
        match abbrev.chars().nth(1) {
            Some('i' | 'W' | 't') => {
                let (epoch, version, release) = split_debian_version(full);
                return PackageStatus {
                    name: name.to_string(),
                    ensure: full.to_string(),
                    version: Some(version),
                    release: Some(release),
                    epoch: Some(epoch),
                    arch: Some(arch.to_string()),
                    provider: Provider::Apt.name().into(),
                };
            }
            Some('n') | None => {}
            Some(_) => return PackageStatus::not_installed(name, Provider::Apt, "absent"),
        }
    }
    PackageStatus::not_installed(name, Provider::Apt, "purged")
}

/// Parses `rpm -q` status output for `name`; `rpm` prints "package X is not installed"
/// (which does not match the format) for an absent one.
pub fn parse_rpm_status(name: &str, stdout: &str, provider: Provider) -> PackageStatus {
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [package, epoch, version, release, arch] = fields[..] else {
            continue;
        };
        if package != name {
            continue;
        }
        return PackageStatus {
            name: name.to_string(),
            ensure: format!("{version}-{release}"),
            version: Some(version.to_string()),
            release: Some(release.to_string()),
            epoch: Some(epoch.to_string()),
            arch: Some(arch.to_string()),
            provider: provider.name().into(),
        };
    }
    PackageStatus::not_installed(name, provider, "absent")
}

/// Parses a status command's output for `provider`.
pub fn parse_status(provider: Provider, name: &str, stdout: &str) -> PackageStatus {
    match provider {
        Provider::Apt => parse_dpkg_status(name, stdout),
        Provider::Dnf | Provider::Yum => parse_rpm_status(name, stdout, provider),
    }
}

/// The installed packages from [`Provider::list_argv`] output as `(name, version, arch)`,
/// sorted, so that the same set gives the same list on every node.
pub fn parse_installed_list(stdout: &str) -> Vec<(String, String, String)> {
    let mut packages: Vec<(String, String, String)> = stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[..] {
                [status, name, version, arch]
                    if matches!(status.chars().nth(1), Some('i' | 'W' | 't')) =>
                {
                    Some((name.to_string(), version.to_string(), arch.to_string()))
                }
                _ => None,
            }
        })
        .collect();
    packages.sort();
    packages
}

/// The text `md5` digests: one `name version arch` line per installed package, sorted, so
/// nodes with the same packages give the same digest whatever order their database keeps.
pub fn installed_list_text(packages: &[(String, String, String)]) -> String {
    packages
        .iter()
        .map(|(name, version, arch)| format!("{name}\t{version}\t{arch}\n"))
        .collect()
}

/// One pending update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutdatedPackage {
    /// The package name.
    pub package: String,
    /// The version that would be installed.
    pub version: String,
    /// Where it comes from.
    pub repo: String,
}

/// Parses `apt-get -s dist-upgrade`: `Inst name [old] (new origin[, origin...] [arch])`.
/// Lines without `[old]` install a new package (a dependency) and are not outdated ones.
pub fn parse_apt_simulation(stdout: &str) -> Vec<OutdatedPackage> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(' ')?;
            let rest = rest.strip_prefix('[')?;
            let (_, rest) = rest.split_once("] (")?;
            let inner = rest.rsplit_once(')').map(|(i, _)| i)?;
            let (version, origin) = inner.split_once(' ').unwrap_or((inner, ""));
            // The origin ends with the architecture in brackets.
            let repo = match origin.rsplit_once(" [") {
                Some((repo, _)) => repo,
                None => origin.trim_start_matches('[').trim_end_matches(']'),
            };
            Some(OutdatedPackage {
                package: name.to_string(),
                version: version.to_string(),
                repo: repo.trim().to_string(),
            })
        })
        .collect()
}

/// Parses `yum/dnf check-update`: `name.arch version repo` lines, up to the obsoletes list.
pub fn parse_yum_check_update(stdout: &str) -> Vec<OutdatedPackage> {
    let mut outdated = Vec::new();
    for line in stdout.lines() {
        if line.to_ascii_lowercase().starts_with("obsoleting packages") {
            break;
        }
        if line.starts_with(' ') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name_arch, version, repo] = fields[..] else {
            continue;
        };
        let name = name_arch
            .rsplit_once('.')
            .map(|(n, _)| n)
            .unwrap_or(name_arch);
        outdated.push(OutdatedPackage {
            package: name.to_string(),
            version: version.to_string(),
            repo: repo.to_string(),
        });
    }
    outdated
}

/// Parses the outdated packages of a [`Provider::checkupdates_argv`] run.
pub fn parse_checkupdates(provider: Provider, stdout: &str) -> Vec<OutdatedPackage> {
    match provider {
        Provider::Apt => parse_apt_simulation(stdout),
        Provider::Dnf | Provider::Yum => parse_yum_check_update(stdout),
    }
}

/// The package names of `yum/dnf list` output (`name.arch  version  repo` lines, headers
/// and continuation lines skipped).
fn parse_yum_list_names(stdout: &str) -> impl Iterator<Item = &str> {
    stdout
        .lines()
        .filter(|l| {
            !l.starts_with(' ') && !l.ends_with("Packages") && !l.starts_with("Last metadata")
        })
        .filter(|l| l.split_whitespace().count() >= 2)
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.rsplit_once('.').map(|(name, _arch)| name).unwrap_or(n))
}

/// Parses `apt-cache search` / `dnf list available` into package names.
pub fn parse_search(provider: Provider, stdout: &str) -> Vec<String> {
    let mut names: Vec<String> = match provider {
        Provider::Apt => stdout
            .lines()
            .filter_map(|l| l.split(" - ").next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        Provider::Dnf | Provider::Yum => parse_yum_list_names(stdout).map(str::to_string).collect(),
    };
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_lists_keep_every_argument_separate() {
        let extra = vec![
            "-o".to_string(),
            "Dir::Etc::sourcelist=/tmp/s.list".to_string(),
        ];
        let install = Provider::Apt.install_argv("foo", Some("1.2-3"), &extra);
        assert_eq!(install[0], "apt-get");
        assert!(install.contains(&"-y".to_string()));
        assert!(install.contains(&"Dir::Etc::sourcelist=/tmp/s.list".to_string()));
        assert_eq!(install[install.len() - 2..], ["install", "foo=1.2-3"]);
        assert_eq!(
            Provider::Dnf.install_argv("foo", None, &[]),
            ["dnf", "-y", "-q", "install", "foo"]
        );
        assert_eq!(
            Provider::Yum.install_argv("foo", Some("1.0-1"), &[]),
            ["yum", "-y", "-q", "install", "foo-1.0-1"]
        );
        assert_eq!(
            Provider::Apt.update_argv("foo", &[])[11..],
            ["install", "--only-upgrade", "foo"]
        );
        assert_eq!(Provider::Apt.status_argv("foo").last().unwrap(), "foo");
        assert_eq!(Provider::Yum.purge_argv("x", &[])[..2], ["yum", "-y"]);
        assert_eq!(
            Provider::Apt.search_argv("foo*", &extra),
            [
                "apt-cache",
                "-o",
                "Dir::Etc::sourcelist=/tmp/s.list",
                "search",
                "--names-only",
                "foo*"
            ]
        );
        assert_eq!(
            Provider::Apt.checkupdates_argv(&[]),
            [
                "apt-get",
                "-s",
                "-q",
                "-o",
                "Debug::NoLocking=true",
                "dist-upgrade"
            ]
        );
        assert_eq!(Provider::Apt.refresh_argv(&[]), ["apt-get", "-q", "update"]);
        assert_eq!(
            Provider::Dnf.clean_argv("metadata", &[]).unwrap(),
            ["dnf", "-q", "clean", "metadata"]
        );
        assert!(Provider::Apt.clean_argv("all", &[]).is_none());
        assert!(Provider::Dnf.checkupdates_succeeded(Some(100)));
        assert!(!Provider::Apt.checkupdates_succeeded(Some(100)));
    }

    #[test]
    fn names_that_tools_would_read_as_options_are_refused() {
        let table: &[(&str, bool)] = &[
            ("bash", true),
            ("libstdc++6", true),
            ("python3.11", true),
            ("libc6:amd64", true),
            ("-oDpkg::Pre-Invoke::=touch /tmp/x", false),
            ("--allow-unauthenticated", false),
            ("two words", false),
            ("a*", false),
            ("a?", false),
            ("[ab]c", false),
            ("foo=1.0", false),
            ("foo/bookworm", false),
            ("@development", false),
            ("perl(Foo)", false),
            ("/usr/bin/foo", false),
            ("", false),
            ("foo\nbar", false),
        ];
        for (name, ok) in table {
            assert_eq!(check_package_name(name).is_ok(), *ok, "{name:?}");
        }
        assert!(check_version("1:2.3-4~deb12u1").is_ok());
        assert!(check_version("-1").is_err());
        assert!(check_version("1 2").is_err());
        assert!(check_search_pattern("mco-*").is_ok());
        assert!(check_search_pattern("^lib.*").is_ok());
        assert!(check_search_pattern("--names-only").is_err());
        assert!(check_search_pattern("a b").is_err());
    }

    #[test]
    fn only_names_the_tool_knows_exactly_are_known() {
        let extra = vec!["-o".to_string(), "Dir::Cache=/tmp/c".to_string()];
        assert_eq!(
            Provider::Apt.known_argv("g++", &extra),
            ["apt-cache", "-o", "Dir::Cache=/tmp/c", "pkgnames", "g++"]
        );
        assert_eq!(
            Provider::Dnf.known_argv("foo-1.2", &[]),
            ["dnf", "-q", "list", "--showduplicates", "foo-1.2"]
        );
        assert_eq!(
            Provider::Yum.known_argv("bash", &extra),
            [
                "yum",
                "-q",
                "-o",
                "Dir::Cache=/tmp/c",
                "list",
                "--showduplicates",
                "bash"
            ]
        );
        // apt-cache pkgnames lists every name that starts with its argument.
        let pkgnames = "g++-12\ng++\ng++-multilib\n";
        let table: &[(&str, bool)] = &[
            ("g++", true),
            ("g+", false),
            ("g++-1", false),
            ("g++-12", true),
            ("zlib1g-dev-", false),
        ];
        for (name, known) in table {
            assert_eq!(Provider::Apt.knows(name, pkgnames), *known, "{name}");
        }
        assert!(!Provider::Apt.knows("python3.+", ""));
        // dnf list prints name.arch: `foo-1.2` read as foo at 1.2 lists foo, which is not it.
        let dnf = "Installed Packages\nfoo.x86_64    1.2-1.el9    @baseos\nAvailable Packages\nfoo.x86_64    1.2-1.el9    baseos\nfoo.i686      1.2-1.el9    baseos\npython3.11.x86_64 3.11.5-1.el9 appstream\n";
        for provider in [Provider::Dnf, Provider::Yum] {
            assert!(provider.knows("foo", dnf));
            assert!(!provider.knows("foo-1.2", dnf));
            assert!(!provider.knows("foo.x86_64", dnf));
            assert!(provider.knows("python3.11", dnf));
            assert!(!provider.knows("python3", dnf));
            assert!(!provider.knows("Installed", dnf));
        }
    }

    #[test]
    fn debian_versions_split() {
        let table = [
            ("1:2.3-4", ("1", "2.3", "4")),
            ("2.3-4ubuntu1", ("0", "2.3", "4ubuntu1")),
            ("1.0", ("0", "1.0", "")),
            ("2:1.2-3-4", ("2", "1.2-3", "4")),
        ];
        for (full, (e, v, r)) in table {
            assert_eq!(
                split_debian_version(full),
                (e.to_string(), v.to_string(), r.to_string()),
                "{full}"
            );
        }
    }

    #[test]
    fn dpkg_and_rpm_status() {
        let s = parse_dpkg_status("bash", "bash\t5.2.15-2+b2\tamd64\tii \n");
        assert_eq!(s.ensure, "5.2.15-2+b2");
        assert_eq!(s.version.as_deref(), Some("5.2.15"));
        assert_eq!(s.release.as_deref(), Some("2+b2"));
        assert_eq!(s.arch.as_deref(), Some("amd64"));
        assert!(s.installed() && !s.purged());
        assert_eq!(s.outputs()["provider"], "apt");
        let removed = parse_dpkg_status("foo", "foo\t1.0-1\tall\trc \n");
        assert_eq!(removed.ensure, "absent");
        assert!(!removed.installed() && !removed.purged());
        let gone = parse_dpkg_status("foo", "");
        assert_eq!(gone.ensure, "purged");
        assert!(gone.purged());
        assert_eq!(gone.outputs()["version"], Value::Null);
        assert_eq!(parse_dpkg_status("foo", "foo\t\t\tun \n").ensure, "purged");
        assert_eq!(
            parse_dpkg_status("foo", "foo\t1.0\tall\tiW \n").ensure,
            "1.0"
        );
        let r = parse_rpm_status("bash", "bash\t0\t5.1.8\t6.el9\tx86_64\n", Provider::Dnf);
        assert_eq!(r.ensure, "5.1.8-6.el9");
        assert_eq!(r.provider, "dnf");
        let absent = parse_status(Provider::Yum, "x", "package x is not installed\n");
        assert_eq!(absent.ensure, "absent");
        assert!(absent.purged(), "rpm keeps nothing after removal");
    }

    #[test]
    fn updates_and_searches_parse() {
        let apt = "Reading package lists...\n\
            Inst libssl3 [3.0.11-1~deb12u1] (3.0.13-1~deb12u1 Debian-Security:12/stable-security [amd64])\n\
            Conf libssl3 (3.0.13-1~deb12u1 Debian-Security:12/stable-security [amd64])\n\
            Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian:12.5/stable, Debian-Security:12/stable-security [amd64]) []\n\
            Inst newdep (1.0 local [all])\n";
        let outdated = parse_apt_simulation(apt);
        assert_eq!(outdated.len(), 2, "{outdated:?}");
        assert_eq!(outdated[0].package, "libssl3");
        assert_eq!(outdated[0].version, "3.0.13-1~deb12u1");
        assert_eq!(outdated[0].repo, "Debian-Security:12/stable-security");
        assert_eq!(outdated[1].package, "libc6");
        assert_eq!(
            outdated[1].repo,
            "Debian:12.5/stable, Debian-Security:12/stable-security"
        );
        let local = parse_apt_simulation("Inst mco-test-pkg [1.0] (1.1 . [all])\n");
        assert_eq!(local[0].version, "1.1");
        let yum = "\nbash.x86_64    5.1.8-9.el9    baseos\nkernel.x86_64  5.14.0-1.el9   baseos\nObsoleting Packages\nnew.x86_64 1 baseos\n    old.x86_64 0 @System\n";
        let outdated = parse_checkupdates(Provider::Dnf, yum);
        assert_eq!(
            outdated
                .iter()
                .map(|o| o.package.as_str())
                .collect::<Vec<_>>(),
            ["bash", "kernel"]
        );
        assert_eq!(
            parse_search(Provider::Apt, "foo - a thing\nfoo-doc - docs\n"),
            ["foo", "foo-doc"]
        );
        assert_eq!(
            parse_search(Provider::Dnf, "Available Packages\nfoo.x86_64  1.0  repo\n"),
            ["foo"]
        );
        let list = parse_installed_list("ii \tb\t1\tall\nrc \tc\t1\tall\nii \ta\t2\tamd64\n");
        assert_eq!(
            list.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(installed_list_text(&list), "a\t2\tamd64\nb\t1\tall\n");
    }

    #[test]
    fn providers_are_detected_from_tools_or_named() {
        assert_eq!(
            Provider::detect(|t| ["dpkg-query", "apt-get"].contains(&t)),
            Some(Provider::Apt)
        );
        assert_eq!(
            Provider::detect(|t| ["rpm", "dnf", "yum"].contains(&t)),
            Some(Provider::Dnf)
        );
        assert_eq!(
            Provider::detect(|t| ["rpm", "yum"].contains(&t)),
            Some(Provider::Yum)
        );
        assert_eq!(Provider::detect(|_| false), None);
        assert_eq!(Provider::from_name("dpkg"), Some(Provider::Apt));
        assert_eq!(Provider::from_name("zypper"), None);
    }
}
