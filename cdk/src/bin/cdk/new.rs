//! `cdk new`: scaffold a connector from `templates/`.

use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The connector name, e.g. `source-weather`.
    name: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    anyhow::bail!("scaffolding '{}' is not available yet", args.name)
}
