//! The `stormglass` binary: parse, run, report errors.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let opts = stormglass::cli::Opts::parse();
    match stormglass::cli::run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(2)
        }
    }
}
