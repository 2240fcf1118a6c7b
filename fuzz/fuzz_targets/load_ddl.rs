//! Any DDL text: schema check, semantic check, and if it loads, validation and rendering.
//! Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_ddl::AgentDdl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ddl) = AgentDdl::from_json(text, "fuzz.json") {
        let _ = mco_ddl::doc::render_agent(&ddl);
        for action in &ddl.actions {
            let mut inputs = Default::default();
            let _ = action.validate_inputs(&mut inputs);
            let _ = action.convert_cli_args([("x", "1")]);
        }
    }
});
