//! `cdk`: the kit's command line.
//! - `cdk sync`: pipe a source into a destination and keep the state between runs.
//! - `cdk test`: run the acceptance suite against a connector binary and its fixtures.
//! - `cdk new`: scaffold a connector from the templates.

mod new;
mod sync;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cdk",
    about = "Build, test and run Airbyte protocol connectors",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Sync(sync::Args),
    Test(test::Args),
    New(new::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Sync(args) => sync::run(args),
        Command::Test(args) => test::run(args),
        Command::New(args) => new::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
