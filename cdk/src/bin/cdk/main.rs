//! `cdk`: the kit's command line.
//! - `cdk sync`: run connections (source → destination), keeping state and job records.
//! - `cdk jobs`: list a connection's past jobs and when it is next due.
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
    Jobs(sync::JobsArgs),
    Test(test::Args),
    New(new::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Sync(args) => sync::run(args),
        Command::Jobs(args) => sync::jobs(args),
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
