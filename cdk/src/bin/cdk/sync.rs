//! `cdk sync`: runs connections as the platform does. A connection file (YAML or JSON) names a
//! source and a destination (binaries or images), the streams and the namespace rules; a job
//! checks both connectors, discovers, runs `read` into `write`, keeps the states the
//! destination acknowledges, and records itself in the connection's `jobs.jsonl`. Without a
//! file, flags describe a one-off run (by default the bundled generator into ./output).

pub mod catalog;
pub mod connection;
pub mod connector;
pub mod job;
pub mod pump;
pub mod report;
pub mod run;
pub mod schedule;
pub mod state;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use serde_json::json;

use connection::{Connection, Endpoint};
use connector::Connector;
pub use connector::locate;
use job::{History, Job, JobStatus};
use run::{Plan, Streams};

/// Run connections (or a one-off source → destination pipe), keeping state between runs.
#[derive(clap::Args)]
pub struct Args {
    /// Connection files (YAML or JSON). Without any, the flags below describe the run.
    connections: Vec<PathBuf>,
    /// Run only the connections whose schedule is due (for an OS timer or cron).
    #[arg(long)]
    due: bool,
    /// Keep each connection's state and jobs under this directory (default: `.cdk/` beside
    /// the connection file).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Show the connectors' INFO logs (twice: DEBUG too).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The time `--due` judges schedules by (RFC 3339; default: now).
    #[arg(long, hide = true)]
    now: Option<DateTime<Utc>>,
    /// Source connector: a name found beside `cdk` or on PATH, or a path.
    #[arg(long, default_value = "source-generator")]
    source: String,
    /// Source config file (default: `{}`, the source's own defaults).
    #[arg(long)]
    source_config: Option<PathBuf>,
    /// Destination connector: a name found beside `cdk` or on PATH, or a path.
    #[arg(long, default_value = "destination-jsonl")]
    destination: String,
    /// Destination config file (default: JSON-lines files in the output directory).
    #[arg(long)]
    destination_config: Option<PathBuf>,
    /// Configured catalog (default: every discovered stream, incremental where possible).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Where a one-off run keeps its state, jobs and default output.
    #[arg(long, default_value = "output")]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let cancel = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, cancel.clone())?;
    }
    let plans = if args.connections.is_empty() {
        if args.due {
            bail!("--due needs connection files: cdk sync --due connections/*.yaml");
        }
        vec![one_off(&args)?]
    } else {
        connections(&args)?
    };
    let mut worst = JobStatus::Succeeded;
    for plan in &plans {
        let job = run::run_job(plan, &cancel)?;
        println!("{}", serde_json::to_string(&job)?);
        eprintln!("{}", job.summary());
        worst = match (worst, job.status) {
            (JobStatus::Cancelled, _) | (_, JobStatus::Cancelled) => JobStatus::Cancelled,
            (JobStatus::Failed, _) | (_, JobStatus::Failed) => JobStatus::Failed,
            (w, _) => w,
        };
        if worst == JobStatus::Cancelled {
            break;
        }
    }
    Ok(match worst {
        JobStatus::Cancelled => ExitCode::from(130),
        JobStatus::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// The plans of the connection files (only the due ones with `--due`).
fn connections(args: &Args) -> Result<Vec<Plan>> {
    let now = args.now.unwrap_or_else(Utc::now);
    let mut plans = Vec::new();
    for path in &args.connections {
        let c = Connection::load(path, args.state_dir.as_deref())?;
        if args.due {
            let last = History::new(&c.state_dir).last_started();
            if !c.active || !c.schedule.is_due(last, now) {
                eprintln!("{}: not due ({})", c.name, c.schedule.describe());
                continue;
            }
        }
        plans.push(Plan {
            name: c.name,
            source: c.source,
            destination: c.destination,
            streams: Streams::Settings {
                streams: c.streams,
                namespace: c.namespace,
                prefix: c.prefix,
            },
            state_dir: c.state_dir,
            verbosity: args.verbose,
        });
    }
    Ok(plans)
}

/// The flags' run: state and jobs in `--output`.
fn one_off(args: &Args) -> Result<Plan> {
    let read = |path: &Option<PathBuf>| -> Result<Option<serde_json::Value>> {
        path.as_ref()
            .map(|p| Ok(serde_json::from_slice(&std::fs::read(p)?)?))
            .transpose()
    };
    let here = std::path::Path::new(".");
    let output = std::path::absolute(&args.output)?;
    Ok(Plan {
        name: format!("{} → {}", args.source, args.destination),
        source: Endpoint {
            connector: Connector::Binary(connector::locate(&args.source)?),
            config: read(&args.source_config)?.unwrap_or_else(|| json!({})),
        },
        destination: Endpoint {
            connector: Connector::binary(&args.destination, here)?,
            config: read(&args.destination_config)?
                .unwrap_or_else(|| json!({"destination_path": output})),
        },
        streams: match &args.catalog {
            Some(path) => Streams::CatalogFile(path.clone()),
            None => Streams::Settings {
                streams: None,
                namespace: connection::NamespaceRule::Source,
                prefix: String::new(),
            },
        },
        state_dir: output,
        verbosity: args.verbose,
    })
}

/// `cdk jobs`: each connection's past jobs and when it is next due.
pub fn list_jobs(paths: &[PathBuf], state_dir: Option<&std::path::Path>) -> Result<ExitCode> {
    let now = Utc::now();
    for path in paths {
        let c = Connection::load(path, state_dir)?;
        let jobs: Vec<Job> = History::new(&c.state_dir).jobs();
        let next = match c.schedule.next_due(jobs.last().map(|j| j.started_at), now) {
            _ if !c.active => "never (inactive)".to_string(),
            Some(t) if t <= now => "now".into(),
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => "when run by hand".into(),
        };
        println!("{} ({}; next due: {next})", c.name, c.schedule.describe());
        for j in &jobs {
            let status = serde_json::to_value(j.status)?;
            println!(
                "  {:>4}  {:<10} {}  {:>10}  {:>10} records synced  {:>10} bytes{}",
                j.id,
                status.as_str().unwrap_or_default(),
                j.started_text(),
                j.duration,
                j.records_synced,
                j.bytes_synced,
                j.failure
                    .as_ref()
                    .map(|f| format!("  {}: {}", f.failure_type, f.message))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// List a connection's past jobs and when it is next due.
#[derive(clap::Args)]
pub struct JobsArgs {
    /// Connection files (YAML or JSON).
    #[arg(required = true)]
    connections: Vec<PathBuf>,
    /// Where the connections keep their state and jobs (as given to `cdk sync`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

pub fn jobs(args: JobsArgs) -> Result<ExitCode> {
    list_jobs(&args.connections, args.state_dir.as_deref())
}
