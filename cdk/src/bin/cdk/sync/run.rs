//! One job: check both connectors, build the catalogs, run `read` into `write`, watch for
//! exits and signals, and write the job record.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cdk::protocol::*;
use chrono::Utc;

use super::catalog;
use super::connection::{Endpoint, NamespaceRule, StreamSettings};
use super::connector::{Connector, STOP_GRACE};
use super::job::{
    History, Job, JobFailure, JobStatus, PeakRss, StreamJob, iso_duration, peak_rss_mib,
};
use super::pump::{Forwarded, Forwarder, Route, Shared, acknowledge};
use super::report::Reporter;
use super::state::{SavedState, assign_generations};

/// Which streams a job syncs.
pub enum Streams {
    /// Discovered, then set as the connection says.
    Settings {
        streams: Option<Vec<StreamSettings>>,
        namespace: NamespaceRule,
        prefix: String,
    },
    /// A configured catalog file, used as it is.
    CatalogFile(PathBuf),
}

/// Everything a job needs.
pub struct Plan {
    pub name: String,
    pub source: Endpoint,
    pub destination: Endpoint,
    pub streams: Streams,
    pub state_dir: PathBuf,
    pub verbosity: u8,
}

/// A failure before the connectors run, with its type.
struct Stop(JobFailure);

/// Runs one job to its end and records it; `cancel` is set by SIGINT / SIGTERM.
pub fn run_job(plan: &Plan, cancel: &AtomicBool) -> Result<Job> {
    std::fs::create_dir_all(&plan.state_dir)
        .with_context(|| format!("cannot create {}", plan.state_dir.display()))?;
    let history = History::new(&plan.state_dir);
    let id = history.next_id();
    let started_at = Utc::now();
    let clock = Instant::now();
    eprintln!("job {id} of {} running", plan.name);
    let (status, streams, failure, peak_rss) = match execute(plan, id, cancel) {
        Ok(done) => done,
        Err(Stop(failure)) => (JobStatus::Failed, Vec::new(), Some(failure), None),
    };
    let sum = |f: fn(&StreamJob) -> u64| streams.iter().map(f).sum::<u64>();
    let job = Job {
        id,
        connection: plan.name.clone(),
        job_type: "sync".into(),
        status,
        started_at,
        ended_at: Utc::now(),
        duration: iso_duration(clock.elapsed()),
        records_synced: sum(|s| s.records_synced),
        bytes_synced: sum(|s| s.bytes_synced),
        records_emitted: sum(|s| s.records_emitted),
        bytes_emitted: sum(|s| s.bytes_emitted),
        streams,
        failure,
        peak_rss_mib: peak_rss,
    };
    history.append(&job)?;
    Ok(job)
}

type Done = (
    JobStatus,
    Vec<StreamJob>,
    Option<JobFailure>,
    Option<PeakRss>,
);

fn execute(plan: &Plan, id: u64, cancel: &AtomicBool) -> Result<Done, Stop> {
    let stop = |origin: &str, failure_type: &str| {
        let origin = origin.to_string();
        let failure_type = failure_type.to_string();
        move |e: anyhow::Error| {
            Stop(JobFailure {
                origin,
                message: format!("{e:#}"),
                failure_type,
            })
        }
    };
    let work = tempfile::tempdir().map_err(|e| stop("cdk", "system_error")(e.into()))?;
    // A connector in a container may run as another user: it must reach the mounted files.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711));
    }
    let slug: String = plan
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let container = |side: &str| format!("cdk-{slug}-{}-{id}-{side}", std::process::id());
    let src_config = write_json(work.path(), "source_config.json", &plan.source.config)
        .map_err(stop("cdk", "system_error"))?;
    let dst_config = write_json(
        work.path(),
        "destination_config.json",
        &plan.destination.config,
    )
    .map_err(stop("cdk", "system_error"))?;

    // Both checks at once, and discover beside them (its answer is used only when both checks
    // pass): either check failing stops the job with the connector's message.
    let (src_check, dst_check, discovered) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            check(
                &plan.source.connector,
                &src_config,
                &container("check-source"),
            )
        });
        let b = s.spawn(|| {
            check(
                &plan.destination.connector,
                &dst_config,
                &container("check-destination"),
            )
        });
        let c = s.spawn(|| catalogs(plan, &src_config, &container("discover")));
        (a.join(), b.join(), c.join())
    });
    let joined =
        |r: std::thread::Result<Result<()>>| r.unwrap_or_else(|_| Err(anyhow!("panicked")));
    joined(src_check).map_err(stop("source", "config_error"))?;
    joined(dst_check).map_err(stop("destination", "config_error"))?;

    let state = SavedState::load(&plan.state_dir.join("state.json"))
        .map_err(stop("cdk", "system_error"))?;
    let (mut source_catalog, routes) = discovered
        .unwrap_or_else(|_| Err(anyhow!("discover panicked")))
        .map_err(stop("source", "config_error"))?;
    assign_generations(
        &mut source_catalog,
        &plan.state_dir.join("generations.json"),
        &state,
    )
    .map_err(stop("cdk", "system_error"))?;
    let destination_catalog = renamed(&source_catalog, &routes);
    let files = (|| -> Result<_> {
        let src_cat = write_json(
            work.path(),
            "source_catalog.json",
            &serde_json::to_value(&source_catalog)?,
        )?;
        let dst_cat = write_json(
            work.path(),
            "destination_catalog.json",
            &serde_json::to_value(&destination_catalog)?,
        )?;
        let state_file = work.path().join("input_state.json");
        let has_state = !state.is_empty();
        if has_state {
            state.save_to(&state_file)?;
        }
        Ok((src_cat, dst_cat, has_state.then_some(state_file)))
    })()
    .map_err(stop("cdk", "system_error"))?;
    if files.2.is_some() {
        eprintln!(
            "resuming from {}",
            plan.state_dir.join("state.json").display()
        );
    }
    let names: Vec<String> = routes.iter().map(|r| r.from.to_string()).collect();
    let reporter = Arc::new(Reporter::new(names, plan.verbosity));
    let full_refresh: Vec<StreamDescriptor> = source_catalog
        .streams
        .iter()
        .filter(|s| s.sync_mode == SyncMode::FullRefresh)
        .map(|s| s.descriptor())
        .collect();
    let stream_count = routes.len();
    let descriptors: Vec<StreamDescriptor> = routes.iter().map(|r| r.from.clone()).collect();
    state.save().map_err(stop("cdk", "system_error"))?;
    let shared = Shared::new(stream_count, state);
    let ends = Ends {
        source: &plan.source.connector,
        destination: &plan.destination.connector,
        source_container: container("source"),
        destination_container: container("destination"),
    };
    let outcome = ends
        .pump(
            &src_config,
            &dst_config,
            &files,
            routes,
            &shared,
            &reporter,
            cancel,
        )
        .map_err(stop("cdk", "system_error"))?;
    reporter.clear();

    let mut shared = shared
        .lock()
        .map_err(|_| stop("cdk", "system_error")(anyhow!("poisoned")))?;
    let failure = shared.failure.clone();
    let status = if outcome.cancelled || cancel.load(Ordering::SeqCst) {
        JobStatus::Cancelled
    } else if outcome.failure.is_some() || failure.is_some() {
        JobStatus::Failed
    } else {
        JobStatus::Succeeded
    };
    if status == JobStatus::Succeeded {
        // A completed full refresh starts over next time (the platform clears its state);
        // its states only serve to resume a sync that failed part way.
        full_refresh.iter().for_each(|d| shared.state.forget(d));
        shared.state.save().map_err(stop("cdk", "system_error"))?;
    }
    let streams = descriptors
        .iter()
        .zip(&shared.streams)
        .map(|(d, s)| StreamJob {
            name: d.name.clone(),
            namespace: d.namespace.clone(),
            status: s
                .status
                .map_or("unknown".into(), |st| format!("{st:?}").to_lowercase()),
            records_emitted: s.emitted,
            bytes_emitted: s.bytes_emitted,
            records_synced: s.synced,
            bytes_synced: s.bytes_synced,
        })
        .collect();
    let failure = match status {
        JobStatus::Failed => Some(match failure {
            Some(f) => JobFailure {
                origin: f.origin,
                message: f.message,
                failure_type: f
                    .failure_type
                    .and_then(|t| serde_json::to_value(t).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "system_error".into()),
            },
            None => outcome.failure.unwrap_or_else(|| JobFailure {
                origin: "cdk".into(),
                message: "the sync failed".into(),
                failure_type: "system_error".into(),
            }),
        }),
        _ => None,
    };
    Ok((status, streams, failure, Some(outcome.peak_rss)))
}

/// The source's configured catalog and each stream's route to the destination.
fn catalogs(
    plan: &Plan,
    src_config: &Path,
    container: &str,
) -> Result<(ConfiguredAirbyteCatalog, Vec<Route>)> {
    match &plan.streams {
        Streams::CatalogFile(path) => {
            let configured: ConfiguredAirbyteCatalog =
                serde_json::from_slice(&std::fs::read(path)?)
                    .with_context(|| format!("cannot read the catalog {}", path.display()))?;
            let routes = configured
                .streams
                .iter()
                .map(|s| Route::new(s.descriptor(), s.descriptor()))
                .collect();
            Ok((configured, routes))
        }
        Streams::Settings {
            streams,
            namespace,
            prefix,
        } => {
            let discovered = catalog::discover(&plan.source.connector, src_config, container)?;
            let configured = catalog::configure(discovered, streams.as_deref())?;
            if configured.streams.is_empty() {
                bail!("no stream is selected");
            }
            let (_, pairs) = catalog::for_destination(&configured, namespace, prefix);
            let routes = pairs.into_iter().map(|(a, b)| Route::new(a, b)).collect();
            Ok((configured, routes))
        }
    }
}

/// The source catalog with each stream renamed as the destination sees it.
fn renamed(source: &ConfiguredAirbyteCatalog, routes: &[Route]) -> ConfiguredAirbyteCatalog {
    let mut out = source.clone();
    for (stream, route) in out.streams.iter_mut().zip(routes) {
        stream.stream.name = route.to.name.clone();
        stream.stream.namespace = route.to.namespace.clone();
    }
    out
}

/// `check`: Ok, or the connector's own message.
fn check(connector: &Connector, config: &Path, container: &str) -> Result<()> {
    let stdout = connector.output("check", &[("config", config)], container)?;
    let mut error = None;
    for line in String::from_utf8_lossy(&stdout).lines() {
        match serde_json::from_str::<AirbyteMessage>(line) {
            Ok(AirbyteMessage::ConnectionStatus { connection_status }) => {
                return match connection_status.status {
                    ConnectionStatus::Succeeded => Ok(()),
                    ConnectionStatus::Failed => bail!(
                        "{} check failed: {}",
                        connector.label(),
                        connection_status.message.unwrap_or_default()
                    ),
                };
            }
            Ok(AirbyteMessage::Trace { trace }) => {
                if let TracePayload::Error { error: e } = trace.payload {
                    error = Some(e.message);
                }
            }
            _ => {}
        }
    }
    bail!(
        "{} check failed: {}",
        connector.label(),
        error.unwrap_or_else(|| "it gave no connection status".into())
    )
}

fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The two running connectors.
struct Ends<'a> {
    source: &'a Connector,
    destination: &'a Connector,
    source_container: String,
    destination_container: String,
}

/// How the connectors ended.
struct Outcome {
    cancelled: bool,
    failure: Option<JobFailure>,
    peak_rss: PeakRss,
}

type Files = (PathBuf, PathBuf, Option<PathBuf>);
type ForwardThread = std::thread::JoinHandle<Result<Forwarded<std::process::ChildStdin>>>;

impl Ends<'_> {
    #[allow(clippy::too_many_arguments)]
    fn pump(
        &self,
        src_config: &Path,
        dst_config: &Path,
        (src_cat, dst_cat, state): &Files,
        routes: Vec<Route>,
        shared: &Arc<Mutex<Shared>>,
        reporter: &Arc<Reporter>,
        cancel: &AtomicBool,
    ) -> Result<Outcome> {
        let mut read_files = vec![("config", src_config), ("catalog", src_cat.as_path())];
        if let Some(state) = state {
            read_files.push(("state", state.as_path()));
        }
        let mut source = self
            .source
            .command("read", &read_files, &self.source_container)
            // Own process groups: a Ctrl-C at the terminal reaches `cdk` alone, which stops
            // the destination gracefully.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.source.label()))?;
        let mut destination = match self
            .destination
            .command(
                "write",
                &[("config", dst_config), ("catalog", dst_cat)],
                &self.destination_container,
            )
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(d) => d,
            Err(e) => {
                self.source.stop(&mut source, &self.source_container);
                return Err(e)
                    .with_context(|| format!("cannot start {}", self.destination.label()));
            }
        };
        let src_out = source.stdout.take().context("no source stdout")?;
        let dst_in = destination.stdin.take().context("no destination stdin")?;
        grow_pipe(&src_out);
        grow_pipe(&dst_in);
        let dst_out = destination.stdout.take().context("no destination stdout")?;
        let forwarder = Forwarder::new(routes, shared.clone(), reporter.clone());
        let mut forward = Some(std::thread::spawn(move || forwarder.run(src_out, dst_in)));
        let (ack_shared, ack_reporter) = (shared.clone(), reporter.clone());
        let ack = std::thread::spawn(move || acknowledge(dst_out, &ack_shared, &ack_reporter));
        let outcome = self.watch(&mut source, &mut destination, &mut forward, shared, cancel)?;
        let acked = ack
            .join()
            .map_err(|_| anyhow!("the acknowledging thread panicked"))?;
        if let Err(e) = acked {
            reporter.line(&format!("cannot read the destination's output: {e:#}"));
        }
        Ok(outcome)
    }

    /// Waits for both connectors; stops the other one when one fails, both on a signal. The
    /// destination sees the end of its input only when the source succeeded; otherwise it is
    /// asked to stop (its input kept open, so it cannot take the end for a finished sync) and
    /// keeps only what it acknowledged.
    fn watch(
        &self,
        source: &mut Child,
        destination: &mut Child,
        forward: &mut Option<ForwardThread>,
        shared: &Mutex<Shared>,
        cancel: &AtomicBool,
    ) -> Result<Outcome> {
        let (mut src_exit, mut dst_exit): (Option<ExitStatus>, Option<ExitStatus>) = (None, None);
        let (mut cancelled, mut src_stopped) = (false, false);
        // When the destination was asked to stop, and when it is killed if still running.
        let mut dst_kill_at: Option<Instant> = None;
        let mut open_input = None;
        let mut peak = PeakRss::default();
        let stop_destination = |destination: &Child, kill_at: &mut Option<Instant>| {
            if kill_at.is_none() {
                if let Ok(mut shared) = shared.lock() {
                    shared.destination_stopping = true;
                }
                self.destination
                    .terminate(destination, &self.destination_container);
                *kill_at = Some(Instant::now() + STOP_GRACE);
            }
        };
        loop {
            if src_exit.is_none() {
                let now = peak_rss_mib(source.id()).unwrap_or(0.0);
                peak.source = peak.source.max(now);
            }
            if dst_exit.is_none() {
                let now = peak_rss_mib(destination.id()).unwrap_or(0.0);
                peak.destination = peak.destination.max(now);
            }
            if cancel.load(Ordering::SeqCst) && !cancelled {
                (cancelled, src_stopped) = (true, true);
                self.source.stop(source, &self.source_container);
                stop_destination(destination, &mut dst_kill_at);
            }
            if src_exit.is_none() {
                src_exit = source.try_wait()?;
                if src_exit.is_some_and(|s| !s.success()) && dst_exit.is_none() {
                    stop_destination(destination, &mut dst_kill_at);
                }
            }
            if dst_exit.is_none() {
                dst_exit = destination.try_wait()?;
                if dst_exit.is_some() && src_exit.is_none() {
                    src_stopped = true;
                    self.source.stop(source, &self.source_container);
                }
                if dst_exit.is_none() && dst_kill_at.is_some_and(|at| Instant::now() >= at) {
                    self.destination
                        .stop(destination, &self.destination_container);
                }
            }
            if forward.as_ref().is_some_and(|f| f.is_finished()) && src_exit.is_some() {
                let forwarded = forward.take().map(|f| f.join());
                let succeeded = src_exit.is_some_and(|s| s.success()) && !cancelled;
                if !succeeded && dst_exit.is_none() {
                    stop_destination(destination, &mut dst_kill_at);
                }
                if let Some(Ok(Ok(forwarded))) = forwarded {
                    if succeeded {
                        // The records after the last state, then the end of the input. A
                        // destination that stopped reading tells why by its exit status.
                        let _ = forwarded.finish();
                    } else {
                        open_input = Some(forwarded);
                    }
                }
            }
            if src_exit.is_some() && dst_exit.is_some() && forward.is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(open_input);
        let dst_stopped = dst_kill_at.is_some();
        let failure = |who: &str, status: Option<ExitStatus>, stopped: bool| {
            let status = status.filter(|s| !s.success() && !stopped);
            status.map(|s| JobFailure {
                origin: who.into(),
                message: format!("{who} exited with {s}"),
                failure_type: "system_error".into(),
            })
        };
        Ok(Outcome {
            cancelled,
            peak_rss: peak,
            failure: failure("source", src_exit, src_stopped)
                .or(failure("destination", dst_exit, dst_stopped))
                .or((src_stopped && !cancelled).then(|| JobFailure {
                    origin: "destination".into(),
                    message: "the destination ended before the source".into(),
                    failure_type: "system_error".into(),
                })),
        })
    }
}

/// Pipes between the connectors hold this much: a connector keeps writing while the other
/// side is busy, and each switch between them moves more data.
const PIPE_BYTES: libc::c_int = 1 << 20;

/// Enlarges a pipe to [`PIPE_BYTES`] (up to the system's limit; left as it is if refused).
fn grow_pipe(pipe: &impl std::os::fd::AsRawFd) {
    let limit = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_int>().ok())
        .unwrap_or(PIPE_BYTES);
    // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; failure leaves the pipe unchanged.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES.min(limit)) };
}
