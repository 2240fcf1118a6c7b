//! `mco`: the fleet's command line. All logic is in [`mco_client::cli`]; `main` only maps the
//! result to the process exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(mco_client::cli::run())
}
