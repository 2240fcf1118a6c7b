//! Package providers for the package agent: dpkg/apt on Debian-like systems, rpm with dnf or
//! yum on Red Hat-like ones. This module builds argv lists (never shell strings) and parses
//! the tools' output; running them is [`crate::providers::command::run`].

use serde::Serialize;

/// Which tool family manages packages on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// dpkg for queries, apt-get for changes.
    Apt,
    /// rpm for queries, dnf for changes.
    Dnf,
    /// rpm for queries, yum for changes.
    Yum,
}

impl Provider {
    /// Parses a configured provider name.
    pub fn from_name(name: &str) -> Option<Provider> {
        match name {
            "apt" | "dpkg" => Some(Provider::Apt),
            "dnf" => Some(Provider::Dnf),
            "yum" => Some(Provider::Yum),
            _ => None,
        }
    }

    /// Picks the provider from the tools found on `PATH`-like `exists` checks.
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

    /// The name reported in outputs.
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

    /// The argv that installs `package`, optionally at `version`.
    pub fn install_argv(self, package: &str, version: Option<&str>) -> Vec<String> {
        match self {
            Provider::Apt => {
                let target = match version {
                    Some(v) => format!("{package}={v}"),
                    None => package.to_string(),
                };
                apt(&["install", &target])
            }
            Provider::Dnf | Provider::Yum => {
                let target = match version {
                    Some(v) => format!("{package}-{v}"),
                    None => package.to_string(),
                };
                argv(&[self.name(), "-y", "-q", "install", &target])
            }
        }
    }

    /// The argv that upgrades `package` if it is installed.
    pub fn update_argv(self, package: &str) -> Vec<String> {
        match self {
            Provider::Apt => apt(&["install", "--only-upgrade", package]),
            Provider::Dnf | Provider::Yum => argv(&[self.name(), "-y", "-q", "upgrade", package]),
        }
    }

    /// The argv that removes `package` (keeping configuration on Debian).
    pub fn uninstall_argv(self, package: &str) -> Vec<String> {
        match self {
            Provider::Apt => apt(&["remove", package]),
            Provider::Dnf | Provider::Yum => argv(&[self.name(), "-y", "-q", "remove", package]),
        }
    }

    /// The argv that removes `package` and its configuration.
    pub fn purge_argv(self, package: &str) -> Vec<String> {
        match self {
            Provider::Apt => apt(&["purge", package]),
            Provider::Dnf | Provider::Yum => argv(&[self.name(), "-y", "-q", "remove", package]),
        }
    }

    /// The argv that lists every installed package (for `count` and `md5`).
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
    pub fn search_argv(self, pattern: &str) -> Vec<String> {
        match self {
            Provider::Apt => argv(&["apt-cache", "search", "--names-only", pattern]),
            Provider::Dnf | Provider::Yum => {
                argv(&[self.name(), "-q", "list", "available", pattern])
            }
        }
    }

    /// The argv that lists pending updates without changing anything.
    pub fn checkupdates_argv(self) -> Vec<String> {
        match self {
            Provider::Apt => argv(&[
                "apt-get",
                "-s",
                "-q",
                "-o",
                "Debug::NoLocking=true",
                "upgrade",
            ]),
            Provider::Dnf | Provider::Yum => argv(&[self.name(), "-q", "check-update"]),
        }
    }

    /// The argv that refreshes package metadata.
    pub fn refresh_argv(self) -> Vec<String> {
        match self {
            Provider::Apt => argv(&["apt-get", "-q", "update"]),
            Provider::Dnf | Provider::Yum => argv(&[self.name(), "-q", "makecache"]),
        }
    }
}

const DPKG_FORMAT: &str = "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n";
const RPM_FORMAT: &str = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n";

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// apt-get with the options that make it non-interactive and keep local config files.
fn apt(parts: &[&str]) -> Vec<String> {
    let mut v = argv(&[
        "apt-get",
        "-y",
        "-q",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]);
    v.extend(parts.iter().map(|s| s.to_string()));
    v
}

/// A package's state as the package DDL outputs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageStatus {
    /// The package name.
    pub name: String,
    /// `absent`, or the installed version (`[epoch:]version-release` as the tool prints it).
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
    /// The status of a package that is not installed.
    pub fn absent(name: &str, provider: Provider) -> PackageStatus {
        PackageStatus {
            name: name.to_string(),
            ensure: "absent".into(),
            version: None,
            release: None,
            epoch: None,
            arch: None,
            provider: provider.name().into(),
        }
    }
}

/// Splits a Debian version `[epoch:]upstream[-revision]`.
pub fn split_debian_version(full: &str) -> (String, String, String) {
    let (epoch, rest) = match full.split_once(':') {
        Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) && !e.is_empty() => {
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

/// Parses `dpkg-query` status output for `name` (see [`Provider::status_argv`]).
pub fn parse_dpkg_status(name: &str, stdout: &str) -> PackageStatus {
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [package, full, arch, status] = fields[..] else {
            continue;
        };
        if package != name {
            continue;
        }
        // `ii` is installed; anything else (`rc`: removed with config left, `un`) is absent.
        if !status.starts_with("ii") {
            return PackageStatus::absent(name, Provider::Apt);
        }
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
    PackageStatus::absent(name, Provider::Apt)
}

/// Parses `rpm -q` status output for `name`.
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
    PackageStatus::absent(name, provider)
}

/// An installed package from the list output: (name, version, arch).
pub fn parse_installed_list(stdout: &str) -> Vec<(String, String, String)> {
    let mut packages: Vec<(String, String, String)> = stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[..] {
                [status, name, version, arch] if status.starts_with("ii") => {
                    Some((name.to_string(), version.to_string(), arch.to_string()))
                }
                _ => None,
            }
        })
        .collect();
    packages.sort();
    packages
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

/// Parses `apt-get -s upgrade`: `Inst name [old] (new repo [arch])`.
pub fn parse_apt_simulation(stdout: &str) -> Vec<OutdatedPackage> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(' ')?;
            let open = rest.find('(')?;
            let inner = rest[open + 1..].split(')').next()?;
            let mut words = inner.split_whitespace();
            let version = words.next()?.to_string();
            let repo = words
                .next()
                .unwrap_or_default()
                .trim_end_matches(',')
                .to_string();
            Some(OutdatedPackage {
                package: name.to_string(),
                version,
                repo,
            })
        })
        .collect()
}

/// Parses `yum/dnf check-update`: `name.arch version repo` lines after a blank line.
pub fn parse_yum_check_update(stdout: &str) -> Vec<OutdatedPackage> {
    stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name_arch, version, repo] = fields[..] else {
                return None;
            };
            if line.starts_with(' ') || name_arch.starts_with("Obsoleting") {
                return None;
            }
            let name = name_arch
                .rsplit_once('.')
                .map(|(n, _)| n)
                .unwrap_or(name_arch);
            Some(OutdatedPackage {
                package: name.to_string(),
                version: version.to_string(),
                repo: repo.to_string(),
            })
        })
        .collect()
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
        Provider::Dnf | Provider::Yum => stdout
            .lines()
            .filter(|l| !l.starts_with("Available") && !l.starts_with(' '))
            .filter_map(|l| l.split_whitespace().next())
            .map(|n| n.rsplit_once('.').map(|(a, _)| a).unwrap_or(n).to_string())
            .collect(),
    };
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_lists_never_join_arguments() {
        let install = Provider::Apt.install_argv("foo", Some("1.2-3"));
        assert_eq!(install.first().unwrap(), "apt-get");
        assert!(install.contains(&"-y".to_string()));
        assert_eq!(install.last().unwrap(), "foo=1.2-3");
        assert_eq!(
            Provider::Dnf.install_argv("foo", None),
            ["dnf", "-y", "-q", "install", "foo"]
        );
        assert_eq!(Provider::Apt.status_argv("foo").last().unwrap(), "foo");
        assert_eq!(Provider::Yum.purge_argv("x")[0], "yum");
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
        assert_eq!(
            parse_dpkg_status("foo", "foo\t1.0-1\tall\trc \n").ensure,
            "absent"
        );
        assert_eq!(parse_dpkg_status("foo", "").ensure, "absent");
        let r = parse_rpm_status("bash", "bash\t0\t5.1.8\t6.el9\tx86_64\n", Provider::Dnf);
        assert_eq!(r.ensure, "5.1.8-6.el9");
        assert_eq!(r.provider, "dnf");
    }

    #[test]
    fn updates_and_searches_parse() {
        let apt = "Reading package lists...\nInst libssl3 [3.0.11-1~deb12u1] (3.0.13-1~deb12u1 Debian-Security:12/stable-security [amd64])\nConf libssl3 (3.0.13-1~deb12u1 Debian-Security:12/stable-security [amd64])\nInst newpkg (1.0 local [all])\n";
        let outdated = parse_apt_simulation(apt);
        assert_eq!(outdated.len(), 2);
        assert_eq!(outdated[0].package, "libssl3");
        assert_eq!(outdated[0].version, "3.0.13-1~deb12u1");
        assert_eq!(outdated[0].repo, "Debian-Security:12/stable-security");
        assert_eq!(outdated[1].package, "newpkg");
        let yum = "\nbash.x86_64    5.1.8-9.el9    baseos\nkernel.x86_64  5.14.0-1.el9   baseos\nObsoleting Packages\n";
        let outdated = parse_yum_check_update(yum);
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
    }

    #[test]
    fn providers_are_detected_from_tools() {
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
    }
}
