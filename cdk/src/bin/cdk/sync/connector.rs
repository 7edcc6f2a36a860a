//! Running a connector: a binary (by name beside `cdk` or on PATH, or by path), or a container
//! image through the docker CLI as Airbyte runs images (the run's files mounted read-only under
//! `/config`, stdin and stdout piped, `--network host` when asked).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Where a connector comes from.
#[derive(Debug, Clone)]
pub enum Connector {
    Binary(PathBuf),
    Image { image: String, network_host: bool },
}

/// Where the run's files are mounted inside a container.
const MOUNT: &str = "/config";

/// How long a connector asked to stop may take before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

impl Connector {
    /// A binary: `name` beside `cdk` or on PATH, or a path (relative to `dir` when it has a `/`).
    pub fn binary(name: &str, dir: &Path) -> Result<Self> {
        if name.contains('/') {
            let path = dir.join(name);
            if !path.is_file() {
                bail!("connector '{}' not found", path.display());
            }
            return Ok(Self::Binary(path));
        }
        locate(name).map(Self::Binary)
    }

    /// The connector's name in messages.
    pub fn label(&self) -> String {
        match self {
            Self::Binary(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Self::Image { image, .. } => image.clone(),
        }
    }

    /// `verb --config … [--catalog …] [--state …]` with files that all live in `work`.
    /// `container` names the container so it can be stopped.
    pub fn command(&self, verb: &str, files: &[(&str, &Path)], container: &str) -> Command {
        match self {
            Self::Binary(path) => {
                let mut cmd = Command::new(path);
                cmd.arg(verb);
                for (flag, file) in files {
                    cmd.arg(format!("--{flag}")).arg(file);
                }
                cmd
            }
            Self::Image {
                image,
                network_host,
            } => {
                let mut cmd = Command::new("docker");
                cmd.args(["run", "--rm", "-i", "--init", "--name", container]);
                if *network_host {
                    cmd.args(["--network", "host"]);
                }
                for (_, file) in files {
                    let name = file.file_name().unwrap_or_default().to_string_lossy();
                    cmd.arg("-v")
                        .arg(format!("{}:{MOUNT}/{name}:ro", file.display()));
                }
                cmd.arg(image).arg(verb);
                for (flag, file) in files {
                    let name = file.file_name().unwrap_or_default().to_string_lossy();
                    cmd.arg(format!("--{flag}")).arg(format!("{MOUNT}/{name}"));
                }
                cmd
            }
        }
    }

    /// Runs a command to completion and returns its stdout (stderr goes to ours).
    pub fn output(&self, verb: &str, files: &[(&str, &Path)], container: &str) -> Result<Vec<u8>> {
        let out = self
            .command(verb, files, container)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {} {verb}", self.label()))?;
        Ok(out.stdout)
    }

    /// Asks a running connector to stop (SIGTERM; `docker stop` for an image). A destination
    /// built with the kit finishes the commit it is in, acknowledges it and rolls back the rest;
    /// [`Self::stop`] follows after [`STOP_GRACE`].
    pub fn terminate(&self, child: &Child, container: &str) {
        match self {
            Self::Image { .. } => {
                let mut stop = Command::new("docker");
                stop.args(["stop", "-t", &STOP_GRACE.as_secs().to_string(), container])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                std::thread::spawn(move || stop.status());
            }
            Self::Binary(_) => {
                // SAFETY: signalling a child process this run started and has not reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
    }

    /// Stops a running connector at once (and its container).
    pub fn stop(&self, child: &mut Child, container: &str) {
        if let Self::Image { .. } = self {
            let _ = Command::new("docker")
                .args(["rm", "-f", container])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.kill();
    }
}

/// A connector binary: a name beside this executable or on PATH.
pub fn locate(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
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
