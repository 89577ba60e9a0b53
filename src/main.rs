//! The `doorman` binary: parse the command line, run one subcommand, turn
//! any error into one line on stderr and a meaningful exit code.

use std::process::ExitCode;

use clap::Parser;
use doorman::cli::{Cli, Command};
use doorman::commands::{dispatch, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    doorman::logging::init(doorman::logging::Verbosity {
        verbose: cli.verbose,
        running: matches!(cli.command, Command::Run { .. }),
    });
    match dispatch(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SomeInputsFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("doorman: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
