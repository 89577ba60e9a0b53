//! The `doorman` binary: parse the command line, run one subcommand, turn
//! any error into one line on stderr and a meaningful exit code.

use std::process::ExitCode;

use clap::Parser;
use doorman::cli::{Cli, Command};
use doorman::commands::{dispatch, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match dispatch(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SomeInputsFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("doorman: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One-shot commands stay quiet unless asked; `run` reports its state
/// changes. `RUST_LOG` overrides both.
fn init_logging(cli: &Cli) {
    let base = match cli.command {
        Command::Run { .. } => log::LevelFilter::Info,
        _ => log::LevelFilter::Warn,
    };
    let level = match cli.verbose {
        0 => base,
        1 => base.max(log::LevelFilter::Info),
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new()
        .filter_level(level)
        // The inference library narrates every graph rewrite at debug level.
        .filter_module("tract_core", log::LevelFilter::Warn)
        .filter_module("tract_hir", log::LevelFilter::Warn)
        .filter_module("tract_onnx", log::LevelFilter::Warn)
        .filter_module("tract_linalg", log::LevelFilter::Warn)
        .parse_env("RUST_LOG")
        .format_target(false)
        .init();
}
