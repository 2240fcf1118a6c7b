//! The man pages committed under docs/man/ are the ones the current flags generate: the real
//! binary writes them to a scratch directory and every page must match, with none missing
//! and none left over.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use crate::mco_ok;

const REGENERATE: &str = "rm docs/man/*.1 && cargo run -p mco-cli -- man docs/man";

fn pages(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn committed_man_pages_match_the_flags() {
    let scratch = tempfile::tempdir().unwrap();
    mco_ok([OsStr::new("man"), scratch.path().as_os_str()]);
    let fresh = pages(scratch.path());
    assert!(
        fresh.contains_key("mco.1") && fresh.contains_key("mco-rpc.1"),
        "{:?}",
        fresh.keys()
    );
    assert!(fresh["mco-rpc.1"].contains("AGENT"));
    let committed = pages(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man"));
    let differ: std::collections::BTreeSet<&String> = fresh
        .keys()
        .chain(committed.keys())
        .filter(|name| fresh.get(*name) != committed.get(*name))
        .collect();
    assert!(
        differ.is_empty(),
        "docs/man is stale for {differ:?}: regenerate with `{REGENERATE}` (from the workspace root)"
    );
}
