//! Owns the `rekey` binary's entry point: parses the command line, runs the command, and turns the
//! outcome into az's exit codes (0 success, 1 service error, 2 usage error, 3 not found) with the
//! error printed to stderr as az prints it.

mod cli;
mod client;
mod commands;
mod config;
mod context;
mod duration;
mod error;
mod output;
mod target;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome =
        context::Context::new(cli.global).and_then(|ctx| commands::run(&ctx, cli.command));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", err.report());
            ExitCode::from(err.exit_code())
        }
    }
}
