//! `cdk`: the kit's command line.
//! - `cdk sync`: run connections (source → destination), keeping state and job records.
//! - `cdk jobs`: list a connection's past jobs and when it is next due.
//! - `cdk test`: run the acceptance suite against a connector binary and its fixtures.
//! - `cdk new`: scaffold a connector from the templates.
//! - `cdk image build`: build a connector's Airbyte image.

mod image;
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
    /// Run connections (or a one-off source → destination pipe), keeping state and jobs.
    Sync(sync::Args),
    /// List a connection's past jobs and when it is next due.
    Jobs(sync::JobsArgs),
    /// Run the acceptance suite against a connector binary and its fixtures.
    Test(test::Args),
    /// Scaffold a connector (Rust source, Rust destination or declarative manifest).
    New(new::Args),
    /// Build a connector's Airbyte image (needs a container engine behind `docker`).
    Image(image::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Sync(args) => sync::run(args),
        Command::Jobs(args) => sync::jobs(args),
        Command::Test(args) => test::run(args),
        Command::New(args) => new::run(args),
        Command::Image(args) => image::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
