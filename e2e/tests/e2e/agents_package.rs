//! The package agent through real mcod and mco on this machine's dpkg and apt: status and
//! md5 of installed packages over two nodes; then a tiny package that the test builds with
//! dpkg-deb (1.0, then 1.1) and serves from a flat apt repository in a temporary directory:
//! refresh, search, install (two at once: one installs, the other is told it is installed),
//! checkupdates, update, uninstall and purge, each seen by status.
//!
//! apt is pointed at the temporary repository through the agent's `extra_args` (its own
//! sources list, lists, cache and extended states), so apt's view of the machine is left
//! alone; the package itself really is installed with dpkg and is purged afterwards, even
//! when the test fails. A machine-wide lock keeps such tests from running at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mco_client::Call;
use mco_spec::StatusCode;
use mco_testsupport::{require_program, Fleet, MachineLock, NodeSpec};
use serde_json::{json, Value};

use crate::{single_reply, twice_at_once};

const PKG: &str = "mco-test-pkg";
const CONFFILE: &str = "/etc/mco-test-pkg.conf";

/// A flat apt repository and apt's state for it, in a temporary directory.
struct LocalRepo {
    dir: tempfile::TempDir,
}

impl LocalRepo {
    fn new() -> LocalRepo {
        let dir = tempfile::tempdir().unwrap();
        for sub in [
            "repo",
            "lists/partial",
            "cache/archives/partial",
            "sources.list.d",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("sources.list"),
            format!(
                "deb [trusted=yes] file:{} ./\n",
                dir.path().join("repo").display()
            ),
        )
        .unwrap();
        LocalRepo { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Builds package `name` at `version` with `files` (paths under the package root, and
    /// their text), of which `conffiles` are configuration files, and rewrites the index.
    fn publish_package(
        &self,
        name: &str,
        version: &str,
        files: &[(&str, &str)],
        conffiles: &[&str],
    ) {
        let root = self.path(&format!("build-{name}-{version}"));
        let mut control = vec![(
            "DEBIAN/control".to_string(),
            format!(
                "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: mco tests <mco@example.invalid>\nDescription: tiny package for mco's end-to-end tests\n"
            ),
        )];
        if !conffiles.is_empty() {
            control.push((
                "DEBIAN/conffiles".into(),
                format!("{}\n", conffiles.join("\n")),
            ));
        }
        let files = files.iter().map(|(p, t)| (p.to_string(), t.to_string()));
        for (path, text) in control.into_iter().chain(files) {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let deb = self.path(&format!("repo/{name}_{version}_all.deb"));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(&deb));
        let index = run(Command::new("dpkg-scanpackages")
            .args(["--multiversion", "."])
            .current_dir(self.path("repo")));
        std::fs::write(self.path("repo/Packages"), index).unwrap();
    }

    /// Builds `PKG` at `version` (with a conffile, so uninstall and purge differ).
    fn publish(&self, version: &str) {
        let files = [
            ("etc/mco-test-pkg.conf", "setting = 1\n"),
            ("usr/share/mco-test-pkg/version", version),
        ];
        self.publish_package(PKG, version, &files, &[CONFFILE]);
    }

    /// Builds package `name` 1.0 with one file of its own.
    fn publish_plain(&self, name: &str) {
        let file = format!("usr/share/{name}/name");
        self.publish_package(name, "1.0", &[(file.as_str(), name)], &[]);
    }

    /// The agent's `extra_args`: apt reads this repository only, and keeps its state here.
    fn apt_args(&self) -> Vec<String> {
        let set = |key: &str, sub: &str| format!("{key}={}", self.path(sub).display());
        let options = [
            set("Dir::Etc::sourcelist", "sources.list"),
            set("Dir::Etc::sourceparts", "sources.list.d"),
            set("Dir::State::Lists", "lists"),
            set("Dir::Cache", "cache"),
            set("Dir::State::extended_states", "extended_states"),
            // The temporary directory is private to root; apt need not drop privileges.
            "APT::Sandbox::User=root".to_string(),
        ];
        options
            .into_iter()
            .flat_map(|o| ["-o".to_string(), o])
            .collect()
    }
}

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the test packages when created and when dropped, so no run leaves them behind.
struct Purged(&'static [&'static str]);

impl Purged {
    fn new(packages: &'static [&'static str]) -> Purged {
        let purged = Purged(packages);
        purged.purge();
        purged
    }

    fn purge(&self) {
        let _ = Command::new("dpkg").arg("--purge").args(self.0).output();
    }
}

impl Drop for Purged {
    fn drop(&mut self) {
        self.purge();
    }
}

/// What dpkg says about a package, as the test sees it without mco.
fn dpkg_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev} ${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, version) = text.split_once(' ')?;
    status.starts_with("ii").then(|| version.trim().to_string())
}

/// `mco rpc package ACTION package=mco-test-pkg -I pkg1`, and what it printed.
fn text_on_pkg1(fleet: &Fleet, action: &str) -> mco_testsupport::Run {
    let package = format!("package={PKG}");
    fleet.mco(&["rpc", "package", action, &package, "-I", "pkg1"])
}

/// The same with `-j`: its one reply.
fn on_pkg1(fleet: &Fleet, action: &str) -> Value {
    let package = format!("package={PKG}");
    single_reply(
        fleet,
        &["rpc", "package", action, &package, "-I", "pkg1", "-j"],
    )
}

fn require_apt_tools() {
    for (program, install) in [
        ("dpkg-deb", "apt-get install dpkg"),
        ("dpkg-scanpackages", "apt-get install dpkg-dev"),
        ("apt-get", "this test needs a Debian-like machine with apt"),
    ] {
        require_program(program, install);
    }
}

/// Nodes whose apt reads `repo` only.
fn fleet_on(repo: &LocalRepo, names: &[&str]) -> Fleet {
    let extra: Vec<String> = repo.apt_args().iter().map(|a| format!("{a:?}")).collect();
    let node = |id: &str| {
        let mut spec = NodeSpec::new(id, json!({"os": {"family": "debian"}}), &[]);
        spec.extra_config = format!(
            "[agents.package]\nprovider = \"apt\"\nextra_args = [{}]\n",
            extra.join(", ")
        );
        spec
    };
    Fleet::start(names.iter().map(|n| node(n)).collect())
}

#[test]
fn packages_are_queried_installed_updated_and_removed_through_mco() {
    require_apt_tools();
    let _machine = MachineLock::acquire("dpkg");
    let _purged = Purged::new(&[PKG]);
    let repo = LocalRepo::new();
    let fleet = fleet_on(&repo, &["pkg1", "pkg2"]);

    // An installed package, over the fleet: per node and summarised.
    let bash = dpkg_version("bash").expect("bash is installed");
    let status = fleet.mco(&["rpc", "package", "status", "package=bash"]);
    assert_eq!(status.code, Some(0), "{status:?}");
    assert_eq!(
        status.stdout.matches(&format!("Ensure: {bash}")).count(),
        2,
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains(&format!("Summary of Ensure:\n\n   {bash} = 2")),
        "{}",
        status.stdout
    );
    let md5 = fleet.mco(&["rpc", "package", "md5", "-j"]).json();
    let digests: Vec<&str> = md5
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["output"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 2);
    assert_eq!(digests[0], digests[1], "same machine, same packages");
    assert!(digests[0].len() == 32 && digests[0].chars().all(|c| c.is_ascii_hexdigit()));
    let before_md5 = digests[0].to_string();
    let installed = run(Command::new("dpkg-query").args(["-W", "-f", "${db:Status-Abbrev}\n"]))
        .lines()
        .filter(|l| matches!(l.chars().nth(1), Some('i' | 'W' | 't')))
        .count();
    let count = single_reply(&fleet, &["rpc", "package", "count", "-I", "pkg1", "-j"]);
    assert_eq!(count["data"]["output"], installed.to_string(), "{count}");

    // The local repository, 1.0.
    repo.publish("1.0");
    let refresh = single_reply(&fleet, &["rpc", "package", "refresh", "-I", "pkg1", "-j"]);
    assert_eq!(refresh["statuscode"], 0, "{refresh}");
    let absent = on_pkg1(&fleet, "status");
    assert_eq!(absent["data"]["ensure"], "purged", "{absent}");
    let search = single_reply(
        &fleet,
        &[
            "rpc",
            "package",
            "search",
            "package=mco-test",
            "-I",
            "pkg1",
            "-j",
        ],
    );
    assert_eq!(
        search["data"]["available_packages"],
        json!([PKG]),
        "{search}"
    );
    assert_eq!(search["data"]["package_count"], 1);

    // Two installs at once on one node: one installs, the other waits and is told.
    let (ok, refused) = twice_at_once(
        &fleet,
        Call::new("package", "install")
            .arg("package", PKG)
            .nodes(["pkg1"])
            .timeout(Duration::from_secs(180)),
    );
    assert_eq!(ok.statuscode, StatusCode::Ok, "{ok:?}");
    assert_eq!(ok.data["ensure"], "1.0");
    assert_eq!(ok.data["version"], "1.0");
    assert_eq!(ok.data["arch"], "all");
    assert_eq!(refused.statuscode, StatusCode::Aborted, "{refused:?}");
    assert_eq!(refused.statusmsg, "Package is already installed");
    assert_eq!(refused.data["ensure"], "1.0");
    assert_eq!(dpkg_version(PKG).as_deref(), Some("1.0"));
    let after_md5 = single_reply(&fleet, &["rpc", "package", "md5", "-I", "pkg2", "-j"]);
    assert_ne!(
        after_md5["data"]["output"],
        before_md5.as_str(),
        "the package list changed"
    );

    // 1.1 appears: checkupdates sees it, update installs it.
    repo.publish("1.1");
    single_reply(&fleet, &["rpc", "package", "refresh", "-I", "pkg1", "-j"]);
    let updates = single_reply(
        &fleet,
        &["rpc", "package", "checkupdates", "-I", "pkg1", "-j"],
    );
    assert_eq!(updates["statuscode"], 0, "{updates}");
    assert_eq!(updates["data"]["package_manager"], "apt");
    let outdated = updates["data"]["outdated_packages"].as_array().unwrap();
    assert!(
        outdated
            .iter()
            .any(|o| o["package"] == PKG && o["version"] == "1.1"),
        "{updates}"
    );
    let update = text_on_pkg1(&fleet, "update");
    assert_eq!(update.code, Some(0), "{update:?}");
    assert!(
        update.stdout.contains("Summary of Ensure:\n\n   1.1 = 1"),
        "{}",
        update.stdout
    );
    assert_eq!(dpkg_version(PKG).as_deref(), Some("1.1"));

    // Uninstall keeps the conffile (absent), purge removes it (purged).
    let uninstall = on_pkg1(&fleet, "uninstall");
    assert_eq!(uninstall["statuscode"], 0, "{uninstall}");
    assert_eq!(uninstall["data"]["ensure"], "absent");
    assert!(Path::new(CONFFILE).exists());
    let purge = on_pkg1(&fleet, "purge");
    assert_eq!(purge["data"]["ensure"], "purged", "{purge}");
    assert!(!Path::new(CONFFILE).exists());
    assert_eq!(dpkg_version(PKG), None);
    let again = text_on_pkg1(&fleet, "purge");
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(
        again
            .stdout
            .contains("Package is not present on the system"),
        "{}",
        again.stdout
    );
}

/// apt-get reads a name it does not know as a pattern (`mco-atk.+`) or with an action
/// suffix (`mco-atk-a-` removes mco-atk-a, `mco-atk-b+` installs mco-atk-b): a caller whom a
/// policy lets install but not uninstall could remove packages, or install many at once.
/// Every such name is refused before apt runs; names with `+` in them still work.
#[test]
fn package_names_are_taken_literally_never_as_apt_patterns_or_suffixes() {
    const A: &str = "mco-atk-a";
    const B: &str = "mco-atk-b";
    const PLUS: &str = "mco-atk-c++";
    require_apt_tools();
    let _machine = MachineLock::acquire("dpkg");
    let _purged = Purged::new(&[A, B, PLUS]);
    let repo = LocalRepo::new();
    for name in [A, B, PLUS] {
        repo.publish_plain(name);
    }
    let fleet = fleet_on(&repo, &["pkg1"]);
    let on_pkg1 = |action: &str, package: &str| {
        let package = format!("package={package}");
        single_reply(
            &fleet,
            &["rpc", "package", action, &package, "-I", "pkg1", "-j"],
        )
    };
    let refresh = single_reply(&fleet, &["rpc", "package", "refresh", "-I", "pkg1", "-j"]);
    assert_eq!(refresh["statuscode"], 0, "{refresh}");
    let install = on_pkg1("install", A);
    assert_eq!(install["statuscode"], 0, "{install}");
    let plus = on_pkg1("install", PLUS);
    assert_eq!(
        plus["statuscode"], 0,
        "a name with + in it installs: {plus}"
    );
    assert_eq!(dpkg_version(PLUS).as_deref(), Some("1.0"));

    let literally = "package names are taken literally";
    for (action, package) in [
        ("install", format!("{A}-")),
        ("install", "mco-atk.+".to_string()),
        ("install", format!("{B}+")),
        ("uninstall", format!("{B}+")),
        ("purge", format!("{B}+")),
        ("update", format!("{B}+")),
    ] {
        let refused = on_pkg1(action, &package);
        assert_ne!(refused["statuscode"], 0, "{action} {package}: {refused}");
        if action == "install" {
            let message = refused["statusmsg"].as_str().unwrap_or_default();
            assert!(message.contains(literally), "{action} {package}: {refused}");
        }
        assert_eq!(
            dpkg_version(A).as_deref(),
            Some("1.0"),
            "{action} {package} removed {A}"
        );
        assert_eq!(dpkg_version(B), None, "{action} {package} installed {B}");
    }
    let uninstall = on_pkg1("uninstall", PLUS);
    assert_eq!(uninstall["statuscode"], 0, "{uninstall}");
    assert_eq!(dpkg_version(PLUS), None);
}
