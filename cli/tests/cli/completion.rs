//! `mco completion`: the scripts the real binary writes, and the bash one driven in a real
//! bash the way bash drives it on Tab (COMP_WORDS/COMP_CWORD, then the `_mco` function).

use std::ffi::OsStr;
use std::process::Command;

use crate::mco_ok;

fn script(shell: &str) -> String {
    // An empty configuration: the built-in DDLs give the names, whatever this machine has.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    std::fs::write(&config, "").unwrap();
    mco_ok([
        OsStr::new("completion"),
        OsStr::new(shell),
        OsStr::new("-c"),
        config.as_os_str(),
    ])
}

/// What bash offers for the words typed so far (the last one being completed).
fn bash_completes(script_path: &std::path::Path, words: &[&str]) -> Vec<String> {
    let driver = format!(
        "source {}\ncomplete -p mco >/dev/null || exit 9\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n_mco mco \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script_path.display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &driver])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn scripts_name_the_commands_flags_and_ddl_agents() {
    for shell in ["bash", "zsh", "fish"] {
        let text = script(shell);
        for word in [
            "rpc",
            "inventory",
            "config",
            "completion",
            "batch-sleep",
            "rpcutil",
            "get_fact",
        ] {
            assert!(text.contains(word), "{shell} script lacks {word}");
        }
    }
}

#[test]
fn bash_completes_agents_actions_commands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mco.bash");
    std::fs::write(&path, script("bash")).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(bash_completes(&path, &["mco", "rpc", "rpc"]), ["rpcutil"]);
    assert_eq!(
        bash_completes(&path, &["mco", "rpc", "rpcutil", "get_f"]),
        ["get_fact", "get_facts"]
    );
    assert_eq!(bash_completes(&path, &["mco", "compl"]), ["completion"]);
    assert_eq!(
        bash_completes(&path, &["mco", "rpc", "--batch-s"]),
        ["--batch-sleep"]
    );
}
