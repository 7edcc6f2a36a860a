//! The command line every connector binary shares, Airbyte style:
//! `spec`, `check --config`, `discover --config`, `read --config --catalog [--state]`,
//! `write --config --catalog` (messages on stdin), and `--debug` anywhere.
//!
//! The entrypoint owns the runtime, the output, logging, panics and exit codes, so a
//! connector's `main` is one call.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::destination::{Destination, Input};
use crate::output::{self, Output};
use crate::protocol::*;
use crate::source::Source;
use crate::{Error, Result, config, logging};

#[derive(Parser)]
#[command(about = "An Airbyte protocol connector")]
struct Cli {
    /// Log at DEBUG level.
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the connector's specification.
    Spec {
        #[command(flatten)]
        extra: Extra,
    },
    /// Check the config can connect.
    Check {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        extra: Extra,
    },
    /// Print the catalog of streams.
    Discover {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        extra: Extra,
    },
    /// Read the configured streams (source).
    Read {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long)]
        state: Option<PathBuf>,
        #[command(flatten)]
        extra: Extra,
    },
    /// Write messages from stdin (destination).
    Write {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
    },
}

#[derive(clap::Args, Default)]
struct Extra {
    /// A declarative manifest (declarative sources only).
    #[arg(long)]
    manifest_path: Option<PathBuf>,
    /// Custom components (accepted for compatibility; unused).
    #[arg(long, hide = true)]
    components_path: Option<PathBuf>,
}

/// Command-line options a connector may use beyond the standard ones.
#[derive(Debug, Clone, Default)]
pub struct CliOptions {
    /// `--debug`: DEBUG logs.
    pub debug: bool,
    /// `--manifest-path`: a low-code manifest to run (source-rest-api).
    pub manifest_path: Option<PathBuf>,
    /// `--config` of `check`, `discover` and `read`: a connector may migrate the file before the
    /// kit reads it (source-rest-api's `config_migrations`).
    pub config_path: Option<PathBuf>,
}

/// Runs a source binary; returns the process exit code.
pub fn run_source<S: Source>(source: S) -> ExitCode {
    run(|cli, out| source_command(source, cli, out))
}

/// Runs a destination binary; returns the process exit code.
pub fn run_destination<D: Destination>(destination: D) -> ExitCode {
    run(|cli, out| destination_command(destination, cli, out))
}

/// Parses the command line; `--version` prints the binary's name and the kit's version.
fn parse_cli() -> std::result::Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    // Images name the binary /airbyte/bin/connector and say which one in CONNECTOR_NAME.
    let name = std::env::var("CONNECTOR_NAME").ok().unwrap_or_else(|| {
        std::env::args_os()
            .next()
            .and_then(|a| {
                Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "connector".into())
    });
    // Once per process: clap keeps names as `&'static str` without its `string` feature.
    let name: &'static str = Box::leak(name.into_boxed_str());
    let command =
        Cli::command()
            .name(name)
            .version(concat!("(cdk ", env!("CARGO_PKG_VERSION"), ")"));
    Cli::from_arg_matches(&command.try_get_matches()?)
}

fn run<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce(Cli, Output) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<ExitCode>> + Send + 'static,
{
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let out = Output::stdout().install().clone();
    logging::init(cli.debug);
    install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                &out,
                Error::system(format!("cannot start the runtime: {e}")),
            );
        }
    };
    let task_out = out.clone();
    let joined = runtime.block_on(async move { tokio::spawn(command(cli, task_out)).await });
    let code = match joined {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => fail(&out, e),
        Err(e) => {
            let message = match e.try_into_panic() {
                Ok(payload) => panic_message(&*payload),
                Err(e) => e.to_string(),
            };
            let mut error = Error::system(format!("the connector crashed: {message}"));
            error.internal = take_panic_details();
            fail(&out, error)
        }
    };
    out.flush();
    // Do not wait for stray tasks (a stdin reader, a slow connection) at exit.
    runtime.shutdown_background();
    code
}

fn fail(out: &Output, error: Error) -> ExitCode {
    out.error(&error);
    out.flush();
    ExitCode::FAILURE
}

async fn source_command<S: Source>(mut source: S, cli: Cli, out: Output) -> Result<ExitCode> {
    let options = |extra: &Extra| CliOptions {
        debug: cli.debug,
        manifest_path: extra.manifest_path.clone(),
        config_path: None,
    };
    let with_config = |extra: &Extra, config: &PathBuf| CliOptions {
        config_path: Some(config.clone()),
        ..options(extra)
    };
    match &cli.command {
        Command::Spec { extra } => {
            source.configure(&options(extra))?;
            out.send(AirbyteMessage::Spec {
                spec: source.spec(),
            });
        }
        Command::Check { config, extra } => {
            source.configure(&with_config(extra, config))?;
            let spec = source.spec().connection_specification;
            let result = match config::load::<S::Config>(config, &spec) {
                Ok((config, _)) => source.check(&config).await,
                Err(e) => Err(e),
            };
            return check_result(&out, result);
        }
        Command::Discover { config, extra } => {
            source.configure(&with_config(extra, config))?;
            let (config, _) =
                config::load::<S::Config>(config, &source.spec().connection_specification)?;
            let catalog = source.discover(&config).await?;
            out.send(AirbyteMessage::Catalog { catalog });
        }
        Command::Read {
            config,
            catalog,
            state,
            extra,
        } => {
            source.configure(&with_config(extra, config))?;
            let (config, _) =
                config::load::<S::Config>(config, &source.spec().connection_specification)?;
            let catalog = read_catalog(catalog)?;
            let state = match state {
                Some(path) => read_state(path)?,
                None => InputState::default(),
            };
            source.read(&config, &catalog, &state, &out).await?;
        }
        Command::Write { .. } => {
            return Err(Error::config(
                "`write` is a destination command; this is a source",
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn destination_command<D: Destination>(dest: D, cli: Cli, out: Output) -> Result<ExitCode> {
    let spec = dest.spec();
    match &cli.command {
        Command::Spec { .. } => out.send(AirbyteMessage::Spec { spec }),
        Command::Check { config, .. } => {
            let result = match config::load::<D::Config>(config, &spec.connection_specification) {
                Ok((config, _)) => dest.check(&config).await,
                Err(e) => Err(e),
            };
            return check_result(&out, result);
        }
        Command::Write { config, catalog } => {
            let (config, _) = config::load::<D::Config>(config, &spec.connection_specification)?;
            let catalog = read_catalog(catalog)?;
            dest.write(&config, &catalog, Input::stdin(), &out).await?;
        }
        Command::Discover { .. } | Command::Read { .. } => {
            return Err(Error::config(
                "`discover` and `read` are source commands; this is a destination",
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `check` answers with a CONNECTION_STATUS for config problems (exit 0); anything else is a
/// failure of the connector itself.
fn check_result(out: &Output, result: Result<()>) -> Result<ExitCode> {
    match result {
        Ok(()) => out.connection_status(ConnectionStatus::Succeeded, None),
        Err(e) if e.failure_type == FailureType::ConfigError => {
            out.connection_status(ConnectionStatus::Failed, Some(e.message));
        }
        Err(e) => return Err(e),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_catalog(path: &Path) -> Result<ConfiguredAirbyteCatalog> {
    let value: Value = config::read_json_file(path, "catalog")?;
    serde_json::from_value(value)
        .map_err(|e| Error::config(format!("catalog file '{}' is invalid: {e}", path.display())))
}

fn read_state(path: &Path) -> Result<InputState> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read state file '{}': {e}", path.display())))?;
    InputState::parse(&text)
        .map_err(|e| Error::config(format!("state file '{}': {e}", path.display())))
}

static PANIC_DETAILS: Mutex<Option<String>> = Mutex::new(None);

/// Panics are reported as TRACE ERRORs by whoever catches them, never printed raw to stderr
/// (where a secret in a panic message would escape the mask).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        if let Ok(mut slot) = PANIC_DETAILS.lock() {
            *slot = Some(format!("{info}\n{backtrace}"));
        }
    }));
}

fn take_panic_details() -> Option<String> {
    PANIC_DETAILS.lock().ok().and_then(|mut s| s.take())
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Logs through the global output (for code outside the tracing world).
pub fn log(level: LogLevel, message: impl Into<String>) {
    output::global().log(level, message);
}
