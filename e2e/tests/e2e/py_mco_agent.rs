//! External agents written for both versions of PyPI's py-mco-agent, through real mcod and
//! mco: 0.3 (`from mco_agent import dispatch`) and 0.4 (dispatch from py-choria-external),
//! each run by the Python of its own venv (scripts/install-deps.sh makes them), as on a node
//! where two agents pin different versions. Each answers, reads its plugin configuration
//! where it looks for it (0.4: `CHORIA_EXTERNAL_CONFIG`, `<plugin_config_dir>/<agent>` or
//! with `.cfg`, Choria's `plugin.d` form; 0.3 reads only its fixed
//! `/etc/puppetlabs/mcollective/plugin.d/<agent>.cfg`, which the test leaves alone), and a
//! failure the agent reports keeps its own status code and message.

use std::path::{Path, PathBuf};

use mco_testsupport::{Fleet, NodeSpec};
use serde_json::json;

/// The Python of the venv with py-mco-agent `version`.
fn python(version: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    let python = base
        .join("mco/py-mco-agent")
        .join(version)
        .join("bin/python3");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh --agents (a venv with py-mco-agent {version})",
        python.display()
    );
    python
}

fn ddl(name: &str) -> serde_json::Value {
    json!({
        "$schema": "https://choria.io/schemas/mcorpc/ddl/v1/agent.json",
        "metadata": {
            "name": name, "description": "A parrot for the py-mco-agent versions test",
            "author": "mco", "license": "Apache-2.0", "version": "1.0.0",
            "url": "https://example.invalid/mco", "timeout": 10, "provider": "external"
        },
        "actions": [
            {
                "action": "echo", "description": "Repeats", "display": "always",
                "input": {"message": {"prompt": "Message", "description": "What to say", "type": "string", "optional": false, "validation": "^\\w+$", "maxlength": 40}},
                "output": {
                    "message": {"description": "What was said", "display_as": "Message"},
                    "library": {"description": "py-mco-agent's version", "display_as": "Library"},
                    "greeting": {"description": "From the plugin configuration", "display_as": "Greeting"}
                }
            },
            {
                "action": "refuse", "description": "Fails as the agent decides", "display": "always",
                "input": {}, "output": {}
            }
        ]
    })
}

/// An agent in py-mco-agent `version`'s API.
fn agent_source(python: &Path, class: &str, version: &str) -> String {
    let (imports, main) = if version.starts_with("0.3") {
        (
            "from mco_agent import Agent, action, dispatch, register_actions\n",
            format!("dispatch({class})"),
        )
    } else {
        (
            "from choria_external.dispatcher import dispatch\nfrom mco_agent import Agent, action, register_actions\n",
            format!("dispatch({class})"),
        )
    };
    format!(
        "#!{python}\n# Written for py-mco-agent {version}, as its users write agents.\n{imports}import mco_agent\n\n\n@register_actions\nclass {class}(Agent):\n    @action\n    def echo(self):\n        self.reply.data = {{\n            \"message\": self.request.data[\"message\"],\n            \"library\": mco_agent.__version__,\n            \"greeting\": self.config.get(\"greeting\", \"\"),\n        }}\n\n    @action\n    def refuse(self):\n        self.reply.fail(4, \"parrots do not take orders\")\n\n\nif __name__ == \"__main__\":\n    {main}\n",
        python = python.display()
    )
}

#[test]
fn agents_for_py_mco_agent_0_3_and_0_4_both_run() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    let plugin_d = dir.path().join("plugin.d");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::create_dir_all(&plugin_d).unwrap();
    for (name, class, version) in [
        ("parrot03", "Parrot03", "0.3.3"),
        ("parrot04", "Parrot04", "0.4.0"),
    ] {
        let executable = agents.join(name);
        std::fs::write(&executable, agent_source(&python(version), class, version)).unwrap();
        let mut perms = std::fs::metadata(&executable).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&executable, perms).unwrap();
        std::fs::write(
            agents.join(format!("{name}.json")),
            serde_json::to_string_pretty(&ddl(name)).unwrap(),
        )
        .unwrap();
    }
    // Choria's plugin configuration form, where py-choria-external looks for it.
    std::fs::write(
        plugin_d.join("parrot04.cfg"),
        "# parrot\ngreeting = squawk\n",
    )
    .unwrap();

    let mut spec = NodeSpec::new("py1", json!({}), &[]);
    spec.extra_config = format!(
        "agent_dirs = [{:?}]\nplugin_config_dir = {:?}\ndisabled_agents = [\"package\", \"service\", \"puppet\"]\n",
        agents.display().to_string(),
        plugin_d.display().to_string()
    );
    let fleet = Fleet::start_with_client_config(
        vec![spec],
        &format!("ddl_dirs = [{:?}]", agents.display().to_string()),
    );

    for (name, library, greeting) in [("parrot03", "0.3.3", ""), ("parrot04", "0.4.0", "squawk")] {
        let run = fleet.mco(&["rpc", name, "echo", "message=hello", "-j"]);
        assert_eq!(
            run.code,
            Some(0),
            "{name}: {run:?}\n{}",
            fleet.nodes[0].log()
        );
        let reply = &run.json()[0];
        assert_eq!(reply["statuscode"], 0, "{name}: {reply}");
        assert_eq!(reply["data"]["message"], "hello", "{name}: {reply}");
        assert_eq!(reply["data"]["library"], library, "{name}: {reply}");
        assert_eq!(reply["data"]["greeting"], greeting, "{name}: {reply}");

        // The agent's own failure, as the library writes it.
        let refused = fleet.mco(&["rpc", name, "refuse", "-j"]);
        assert_eq!(refused.code, Some(2), "{name}: {refused:?}");
        let reply = &refused.json()[0];
        assert_eq!(reply["statuscode"], 4, "{name}: {reply}");
        assert_eq!(
            reply["statusmsg"], "parrots do not take orders",
            "{name}: {reply}"
        );
    }
}
