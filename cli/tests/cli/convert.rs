//! `mco plugin convert`: a Ruby DDL becomes JSON that `mco plugin lint` passes, and a DDL
//! outside the subset is one error line naming the file, line and column, exit code 1.

use std::path::PathBuf;
use std::process::Command;

use crate::mco_ok;

fn ruby_ddl(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ddl/tests/data/ruby")
        .join(name)
}

#[test]
fn a_converted_ruby_ddl_passes_lint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("servicectl.json");
    let source = ruby_ddl("servicectl.ddl");
    let printed = mco_ok([
        "plugin".as_ref(),
        "convert".as_ref(),
        source.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(printed, "", "the JSON goes to the file");
    let json = std::fs::read_to_string(&out).unwrap();
    assert!(json
        .starts_with("{\n  \"$schema\": \"https://choria.io/schemas/mcorpc/ddl/v1/agent.json\""));
    assert_eq!(
        mco_ok(["plugin".as_ref(), "convert".as_ref(), source.as_os_str()]),
        json
    );
    assert_eq!(
        mco_ok(["plugin".as_ref(), "lint".as_ref(), out.as_os_str()]),
        format!("{}: ok\n", out.display())
    );
}

#[test]
fn a_ruby_ddl_outside_the_subset_is_one_error_line_with_its_position() {
    let source = ruby_ddl("interpolated.ddl");
    let run = Command::new(env!("CARGO_BIN_EXE_mco"))
        .args(["plugin".as_ref(), "convert".as_ref(), source.as_os_str()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        format!(
            "mco: {}:13:35: string interpolation (`#{{...}}`) is outside the DDL subset mco converts\n",
            source.display()
        )
    );
}
