//! Tests of the real `mco` binary that need no fleet: help, completion scripts, man pages,
//! DDL conversion.
//! (Those that talk to nodes are end-to-end tests, in e2e/tests/e2e/.)

mod completion;
mod convert;
mod help;
mod man;

use std::ffi::OsStr;
use std::process::Command;

/// Runs the real `mco` with `args` and returns its stdout, failing the test when it fails.
pub fn mco_ok<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let args: Vec<S> = args.into_iter().collect();
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_mco"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mco {shown:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
