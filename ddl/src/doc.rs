//! Rendering a DDL as text for `mco plugin doc AGENT`: metadata, then each action with its
//! inputs (type, whether optional, default, validation, length, list values), outputs and
//! aggregates. Pure formatting; no I/O.

use std::fmt::Write;

use crate::model::{Action, AgentDdl, Input, InputType};

/// The full documentation of an agent.
pub fn render_agent(ddl: &AgentDdl) -> String {
    let m = &ddl.metadata;
    let mut out = String::new();
    let _ = writeln!(out, "{}", m.name);
    let _ = writeln!(out, "{}", "=".repeat(m.name.chars().count()));
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", m.description);
    let _ = writeln!(out);
    for (label, value) in [
        ("Author", m.author.as_str()),
        ("Version", m.version.as_str()),
        ("License", m.license.as_str()),
        ("URL", m.url.as_str()),
    ] {
        let _ = writeln!(out, "{label:>12}: {value}");
    }
    let _ = writeln!(out, "{:>12}: {} seconds", "Timeout", m.timeout);
    if let Some(provider) = &m.provider {
        let _ = writeln!(out, "{:>12}: {provider}", "Provider");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "ACTIONS:");
    let _ = writeln!(out, "========");
    let names: Vec<&str> = ddl.action_names().collect();
    let _ = writeln!(out, "   {}", names.join(", "));
    for action in &ddl.actions {
        let _ = writeln!(out);
        out.push_str(&render_action(action));
    }
    out
}

/// The documentation of one action.
pub fn render_action(action: &Action) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "   {} action:", action.action);
    let _ = writeln!(out, "   {}", "-".repeat(action.action.chars().count() + 8));
    let _ = writeln!(out, "       {}", action.description);
    let _ = writeln!(out);
    let _ = writeln!(out, "       INPUT:");
    if action.input.is_empty() {
        let _ = writeln!(out, "           This action does not have any inputs");
    }
    for (name, input) in &action.input {
        let _ = writeln!(out, "           {name}:");
        let _ = writeln!(out, "              Description: {}", input.description);
        let _ = writeln!(out, "                   Prompt: {}", input.prompt);
        let _ = writeln!(out, "                     Type: {}", input.kind.as_str());
        let _ = writeln!(
            out,
            "                 Optional: {}",
            if input.optional { "yes" } else { "no" }
        );
        for line in input_constraints(input) {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "       OUTPUT:");
    if action.output.is_empty() {
        let _ = writeln!(out, "           This action does not have any outputs");
    }
    for (name, output) in &action.output {
        let _ = writeln!(out, "           {name}:");
        let _ = writeln!(out, "              Description: {}", output.description);
        let _ = writeln!(out, "               Display As: {}", output.display_as);
        if let Some(kind) = output.kind {
            let _ = writeln!(out, "                     Type: {}", kind.as_str());
        }
        if let Some(default) = output.default.as_ref().filter(|d| !d.is_null()) {
            let _ = writeln!(out, "            Default Value: {default}");
        }
        let _ = writeln!(out);
    }
    if !action.aggregate.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "       SUMMARY:");
        for aggregate in &action.aggregate {
            let args: Vec<String> = aggregate.args.iter().map(|a| a.to_string()).collect();
            let _ = writeln!(
                out,
                "           {}({})",
                aggregate.function,
                args.join(", ")
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "       Display: {}",
        match action.display {
            crate::model::Display::Ok => "ok (successful replies)",
            crate::model::Display::Failed => "failed (unsuccessful replies)",
            crate::model::Display::Always => "always (every reply)",
        }
    );
    out
}

fn input_constraints(input: &Input) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(default) = input.default.as_ref().filter(|d| !d.is_null()) {
        lines.push(format!("            Default Value: {default}"));
    }
    match input.kind {
        InputType::String => {
            if let Some(v) = &input.validation {
                lines.push(format!("               Validation: {v}"));
            }
            match input.maxlength {
                Some(0) | None => lines.push("                   Length: unlimited".into()),
                Some(n) => lines.push(format!("                   Length: {n}")),
            }
        }
        InputType::List => {
            let values = input.list.as_deref().unwrap_or_default().join(", ");
            lines.push(format!("             Valid Values: {values}"));
        }
        _ => {}
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_doc_shows_actions_inputs_outputs_and_summaries() {
        let ddl = AgentDdl::from_json(include_str!("../tests/data/service.json"), "service.json")
            .unwrap();
        let doc = render_agent(&ddl);
        for needle in [
            "service\n=======",
            "Manages Operating System Services",
            "Timeout: 60 seconds",
            "restart, start, status, stop",
            "   restart action:",
            "Validation: service_name",
            "Length: 90",
            "Optional: no",
            "Display As: Service Status",
            "Default Value: \"unknown\"",
            "summary(\"status\")",
            "Display: always",
        ] {
            assert!(doc.contains(needle), "{needle:?} missing from:\n{doc}");
        }
    }

    #[test]
    fn list_inputs_show_their_values() {
        let ddl = AgentDdl::from_json(include_str!("../tests/data/package.json"), "package.json")
            .unwrap();
        let doc = render_action(ddl.action("yum_clean").unwrap());
        assert!(
            doc.contains("Valid Values: all, headers, packages"),
            "{doc}"
        );
        let none = render_action(ddl.action("apt_update").unwrap());
        assert!(none.contains("does not have any inputs"), "{none}");
    }
}
