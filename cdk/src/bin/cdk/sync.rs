//! `cdk sync`: runs `source read` into `destination write`, keeps the states the destination
//! acknowledges in a state file, and passes that file to the next run (so incremental streams
//! pick up where they stopped; a full refresh resumes only a sync that failed, and starts
//! over after one that succeeded). Defaults sync the bundled generator into ./output.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cdk::protocol::*;
use serde_json::{Value, json};

/// Pipe a source into a destination, Airbyte style, keeping state between runs.
#[derive(clap::Args)]
pub struct Args {
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
    /// Where the run keeps its state and default output.
    #[arg(long, default_value = "output")]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let source = locate(&args.source)?;
    let destination = locate(&args.destination)?;
    let work = tempfile::tempdir()?;
    let source_config = match &args.source_config {
        Some(p) => p.clone(),
        None => write_json(work.path(), "source.json", &json!({}))?,
    };
    let destination_config = match &args.destination_config {
        Some(p) => p.clone(),
        None => write_json(
            work.path(),
            "destination.json",
            &json!({"destination_path": args.output}),
        )?,
    };
    let catalog = match &args.catalog {
        Some(p) => p.clone(),
        None => write_json(
            work.path(),
            "catalog.json",
            &default_catalog(&source, &source_config)?,
        )?,
    };
    let state_path = args.output.join("state.json");
    let mut state = SavedState::load(&state_path)?;
    let catalog = with_generations(
        &catalog,
        &args.output.join("generations.json"),
        &state,
        work.path(),
    )?;

    let mut read = Command::new(&source);
    read.arg("read")
        .arg("--config")
        .arg(&source_config)
        .arg("--catalog")
        .arg(&catalog);
    if state_path.is_file() {
        read.arg("--state").arg(&state_path);
        eprintln!("resuming from {}", state_path.display());
    }
    let mut source_proc = read
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the source")?;
    let mut destination_proc = Command::new(&destination)
        .arg("write")
        .arg("--config")
        .arg(&destination_config)
        .arg("--catalog")
        .arg(&catalog)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the destination")?;

    // Forward the source's lines, reporting its logs and errors on the way.
    let source_out = source_proc.stdout.take().context("no source stdout")?;
    let dest_in = destination_proc
        .stdin
        .take()
        .context("no destination stdin")?;
    let forward = std::thread::spawn(move || forward(source_out, dest_in));

    // Keep every acknowledged state.
    let dest_out = BufReader::new(
        destination_proc
            .stdout
            .take()
            .context("no destination stdout")?,
    );
    let mut acknowledged = 0.0;
    for line in dest_out.lines() {
        let line = line?;
        match serde_json::from_str::<AirbyteMessage>(&line) {
            Ok(AirbyteMessage::State { state: s }) => {
                acknowledged += s
                    .destination_stats
                    .and_then(|d| d.record_count)
                    .unwrap_or(0.0);
                state.apply(s);
                state.save(&state_path)?;
            }
            Ok(other) => report("destination", &other),
            Err(_) => eprintln!("destination: {line}"),
        }
    }
    let forwarded = forward
        .join()
        .map_err(|_| anyhow::anyhow!("the forwarding thread panicked"))??;
    let source_status = source_proc.wait()?;
    let destination_status = destination_proc.wait()?;
    eprintln!(
        "synced {forwarded} records ({acknowledged} acknowledged) from {} to {}; state in {}",
        args.source,
        args.destination,
        state_path.display()
    );
    if !source_status.success() || !destination_status.success() {
        bail!("the sync failed (source: {source_status}, destination: {destination_status})");
    }
    // A full refresh that completed starts from the beginning next time (as the platform
    // clears its state); its states only serve to resume a sync that failed part way.
    let configured: ConfiguredAirbyteCatalog = serde_json::from_slice(&std::fs::read(&catalog)?)
        .with_context(|| format!("cannot read the catalog {}", catalog.display()))?;
    for stream in configured
        .streams
        .iter()
        .filter(|s| s.sync_mode == SyncMode::FullRefresh)
    {
        state.forget(&stream.descriptor());
    }
    state.save(&state_path)?;
    Ok(ExitCode::SUCCESS)
}

/// Copies source lines to the destination; shows LOG and TRACE lines; counts records.
fn forward(from: impl std::io::Read, to: impl Write) -> Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, from);
    let mut writer = BufWriter::with_capacity(1 << 20, to);
    let mut line = Vec::new();
    let (mut records, started, mut last_report) = (0u64, Instant::now(), Instant::now());
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.starts_with(br#"{"type":"RECORD""#) {
            records += 1;
            if records % 65_536 == 0 && last_report.elapsed().as_secs() >= 1 {
                last_report = Instant::now();
                let rate = records as f64 / started.elapsed().as_secs_f64();
                eprintln!("… {records} records ({rate:.0}/s)");
            }
        } else if let Ok(message) = serde_json::from_slice::<AirbyteMessage>(&line) {
            report("source", &message);
        }
        if writer.write_all(&line).is_err() {
            break; // the destination stopped reading; its exit status tells why
        }
    }
    writer.flush().ok();
    Ok(records)
}

fn report(who: &str, message: &AirbyteMessage) {
    match message {
        AirbyteMessage::Log { log } if !matches!(log.level, LogLevel::Debug | LogLevel::Trace) => {
            let level = serde_json::to_value(log.level).unwrap_or_default();
            eprintln!("{who}: {} {}", level.as_str().unwrap_or("LOG"), log.message)
        }
        AirbyteMessage::Trace { trace } => {
            if let TracePayload::Error { error } = &trace.payload {
                eprintln!("{who}: ERROR {}", error.message);
            }
        }
        _ => {}
    }
}

/// The latest acknowledged state per stream (and the global one), as a `--state` file.
struct SavedState {
    streams: std::collections::BTreeMap<String, AirbyteStateMessage>,
    global: Option<AirbyteStateMessage>,
}

impl SavedState {
    fn load(path: &Path) -> Result<Self> {
        let mut saved = Self {
            streams: Default::default(),
            global: None,
        };
        if path.is_file() {
            let text = std::fs::read_to_string(path)?;
            let input =
                InputState::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            input.messages.into_iter().for_each(|m| saved.apply(m));
        }
        Ok(saved)
    }

    fn apply(&mut self, mut state: AirbyteStateMessage) {
        state.source_stats = None;
        state.destination_stats = None;
        match state.kind() {
            AirbyteStateType::Stream => {
                if let Some(s) = &state.stream {
                    self.streams.insert(s.stream_descriptor.to_string(), state);
                }
            }
            _ => self.global = Some(state),
        }
    }

    fn forget(&mut self, stream: &StreamDescriptor) {
        self.streams.remove(&stream.to_string());
    }

    fn save(&self, path: &Path) -> Result<()> {
        let all: Vec<&AirbyteStateMessage> = self.streams.values().chain(&self.global).collect();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&all)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Generation and sync ids across runs, kept beside the state as the platform keeps them.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Generations {
    sync_id: i64,
    streams: std::collections::BTreeMap<String, i64>,
}

/// The catalog of this run with `sync_id`, `generation_id` and `minimum_generation_id` filled
/// in where it leaves them out: an overwrite stream starts a new generation (and asks for older
/// ones to be replaced) unless it is resuming a sync that failed, whose generation it keeps so
/// the destination keeps what that attempt wrote; other streams keep theirs, minimum 0.
fn with_generations(
    catalog: &Path,
    path: &Path,
    state: &SavedState,
    work: &Path,
) -> Result<PathBuf> {
    let mut configured: ConfiguredAirbyteCatalog = serde_json::from_slice(&std::fs::read(catalog)?)
        .with_context(|| format!("cannot read the catalog {}", catalog.display()))?;
    let mut ids: Generations = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("cannot read {}", path.display()))?,
        Err(_) => Generations::default(),
    };
    ids.sync_id += 1;
    for stream in &mut configured.streams {
        let key = stream.descriptor().to_string();
        let replaces = stream.destination_sync_mode == DestinationSyncMode::Overwrite;
        let resuming = state.streams.contains_key(&key);
        let current = ids.streams.get(&key).copied().unwrap_or(0);
        let generation = stream.generation_id.unwrap_or(if replaces && !resuming {
            current + 1
        } else {
            current
        });
        stream.generation_id = Some(generation);
        stream
            .minimum_generation_id
            .get_or_insert(if replaces { generation } else { 0 });
        stream.sync_id.get_or_insert(ids.sync_id);
        ids.streams.insert(key, generation);
    }
    std::fs::write(path, serde_json::to_vec_pretty(&ids)?)?;
    write_json(
        work,
        "run-catalog.json",
        &serde_json::to_value(&configured)?,
    )
}

/// Every discovered stream: incremental + append when it can, else full refresh + overwrite.
fn default_catalog(source: &Path, config: &Path) -> Result<Value> {
    let out = Command::new(source)
        .arg("discover")
        .arg("--config")
        .arg(config)
        .output()?;
    let catalog =
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| match serde_json::from_str(l) {
                Ok(AirbyteMessage::Catalog { catalog }) => Some(catalog),
                _ => None,
            });
    let Some(catalog) = catalog else {
        bail!(
            "discover gave no catalog:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    let streams: Vec<ConfiguredAirbyteStream> = catalog
        .streams
        .into_iter()
        .map(|s| {
            let incremental = s.supported_sync_modes.contains(&SyncMode::Incremental)
                && s.default_cursor_field.is_some();
            let cursor = s.default_cursor_field.clone();
            let mut c = if incremental {
                ConfiguredAirbyteStream::new(s, SyncMode::Incremental, DestinationSyncMode::Append)
            } else {
                ConfiguredAirbyteStream::new(
                    s,
                    SyncMode::FullRefresh,
                    DestinationSyncMode::Overwrite,
                )
            };
            c.cursor_field = cursor.filter(|_| incremental);
            c
        })
        .collect();
    Ok(serde_json::to_value(ConfiguredAirbyteCatalog { streams })?)
}

fn write_json(dir: &Path, name: &str, value: &Value) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value)?)?;
    Ok(path)
}

/// A connector binary: a path, or a name beside this executable or on PATH.
pub fn locate(name: &str) -> Result<PathBuf> {
    let as_path = Path::new(name);
    if name.contains('/') {
        return Ok(as_path.to_path_buf());
    }
    let beside = std::env::current_exe()?.parent().map(|d| d.join(name));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        return Ok(p);
    }
    bail!(
        "connector '{name}' not found beside cdk or on PATH (build it: cargo build --release -p {name})"
    )
}
