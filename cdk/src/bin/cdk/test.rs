//! `cdk test BINARY [FIXTURES]`: the acceptance suite from the command line, against any
//! connector binary and a fixture folder in Airbyte's layout (`integration_tests/`:
//! `configured_catalog.json`, `invalid_config.json`, `abnormal_state.json`, and `config.json`
//! there or in `secrets/`). Prints a table of checks; exits non-zero on any failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cdk::testing::Run;
use cdk::testing::acceptance::{Report, SourceSuite, Verdict};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// The connector executable (a path, or a name beside cdk or on PATH).
    binary: String,
    /// The fixture folder (default: ./integration_tests).
    #[arg(default_value = "integration_tests")]
    fixtures: PathBuf,
    /// Extra arguments for every connector command (e.g. --manifest-path m.yaml).
    #[arg(last = true)]
    extra: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let bin = super::sync::locate(&args.binary)?;
    let dir = &args.fixtures;
    let config = first_of(
        dir,
        &[
            "config.json",
            "../secrets/config.json",
            "secrets/config.json",
            "sample_config.json",
        ],
    )?;
    let spec = Run::new(&bin).spec();
    let is_destination = spec
        .messages
        .iter()
        .any(|m| matches!(m, cdk::protocol::AirbyteMessage::Spec { spec } if spec.supported_destination_sync_modes.is_some()));
    let report = if is_destination {
        destination_report(&bin, &config)
    } else {
        SourceSuite {
            bin,
            config,
            invalid_config: first_of(dir, &["invalid_config.json"])?,
            catalog: first_of(dir, &["configured_catalog.json"])?,
            future_state: first_of(dir, &["abnormal_state.json", "future_state.json"]).ok(),
            extra_args: args.extra.clone(),
            ..SourceSuite::default()
        }
        .run()
    };
    print!("{}", report.table());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Without a reader of its storage, a destination gets its spec and check checks here; the
/// write checks need `DestinationSuite` with a `DestinationReader`, from Rust tests.
fn destination_report(bin: &Path, config: &Value) -> Report {
    let mut report = Report::default();
    let spec = Run::new(bin).spec();
    report.push(
        "spec",
        cdk::testing::acceptance::checks::spec(&spec, config),
        Some(spec.describe()),
    );
    let check = Run::new(bin).check(config);
    report.push(
        "check: valid config",
        cdk::testing::acceptance::checks::connection_status(
            &check,
            cdk::protocol::ConnectionStatus::Succeeded,
        ),
        Some(check.describe()),
    );
    report.push(
        "destination: write checks",
        Verdict::Skip(
            "need a reader of the destination: run DestinationSuite from the connector's tests"
                .into(),
        ),
        None,
    );
    report
}

fn first_of(dir: &Path, names: &[&str]) -> Result<Value> {
    for name in names {
        let path = dir.join(name);
        if path.is_file() {
            let text = std::fs::read_to_string(&path)?;
            return serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()));
        }
    }
    bail!("none of {names:?} found in {}", dir.display())
}
