//! `mco help` is the same text as `--help`, for the program and for each application.

use crate::mco_ok;

fn mco(args: &[&str]) -> String {
    mco_ok(args)
}

#[test]
fn help_subcommand_prints_the_long_help() {
    assert_eq!(mco(&["help"]), mco(&["--help"]));
    for app in ["rpc", "ping", "config", "completion"] {
        let text = mco(&["help", app]);
        assert_eq!(text, mco(&[app, "--help"]), "mco help {app}");
        assert!(
            text.contains("Examples:\n  mco "),
            "mco help {app} has no examples"
        );
    }
}
