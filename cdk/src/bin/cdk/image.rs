//! `cdk image build DIR`: builds a connector's Airbyte image with the `docker` CLI, from source
//! (the multi-stage recipe) or from a binary built beforehand (`--prebuilt`), with the name,
//! tag and labels of the connector's `metadata.yaml`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

/// The image recipe every connector shares (also written into standalone connectors).
pub const DOCKERFILE: &str = include_str!("../../../../connectors/Dockerfile");
/// What `docker build` leaves out of a source build's context.
pub const DOCKERIGNORE: &str = include_str!("../../../../.dockerignore");

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// Build a connector's image (default tag `<dockerRepository>:dev` from metadata.yaml).
    Build(BuildArgs),
}

#[derive(clap::Args)]
struct BuildArgs {
    /// The connector folder (holding metadata.yaml and Cargo.toml).
    dir: PathBuf,
    /// The image tag (default: `<dockerRepository>:dev`).
    #[arg(long)]
    tag: Option<String>,
    /// Put this binary in the image instead of compiling in a builder stage (offline, CI).
    #[arg(long)]
    prebuilt: Option<PathBuf>,
}

/// What `metadata.yaml` says about the image.
#[derive(Debug)]
struct Metadata {
    repository: String,
    version: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        ImageCommand::Build(args) => build(args),
    }
}

fn build(args: BuildArgs) -> Result<ExitCode> {
    let meta = read_metadata(&args.dir)?;
    let name = package_name(&args.dir)?;
    let tag = args
        .tag
        .unwrap_or_else(|| format!("{}:dev", meta.repository));
    check_engine()?;
    let build_args = [
        format!("CONNECTOR={name}"),
        format!("AIRBYTE_NAME={}", meta.repository),
        format!("AIRBYTE_VERSION={}", meta.version),
    ];
    let context = tempfile::tempdir()?;
    let mut docker = Command::new("docker");
    docker.arg("build").arg("--tag").arg(&tag);
    for arg in &build_args {
        docker.arg("--build-arg").arg(arg);
    }
    let dockerfile = context.path().join("Dockerfile");
    std::fs::write(&dockerfile, DOCKERFILE)?;
    docker.arg("--file").arg(&dockerfile);
    match &args.prebuilt {
        Some(binary) => {
            copy_stripped(binary, &context.path().join(&name))?;
            docker.args(["--target", "prebuilt"]).arg(context.path());
        }
        None => {
            let root = source_root(&args.dir)?;
            if !root.join(".dockerignore").exists() {
                bail!(
                    "{} has no .dockerignore: add one (target/, .git/) so the build does not send \
                     the build outputs",
                    root.display()
                );
            }
            docker.arg(&root);
        }
    }
    eprintln!("building {tag} ({name} {})", meta.version);
    // The build's progress goes to stderr: stdout is the tag alone, for scripts.
    let status = docker
        .stdout(std::io::stderr())
        .status()
        .context("cannot run docker")?;
    if !status.success() {
        bail!("docker build failed ({status})");
    }
    println!("{tag}");
    eprintln!("next: docker run --rm {tag} spec");
    Ok(ExitCode::SUCCESS)
}

/// `dockerRepository` and `dockerImageTag` of `DIR/metadata.yaml`.
fn read_metadata(dir: &Path) -> Result<Metadata> {
    let path = dir.join("metadata.yaml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?;
    let field = |key: &str| {
        doc.get("data")
            .and_then(|d| d.get(key))
            .and_then(|v| match v {
                serde_yaml::Value::String(s) => Some(s.clone()),
                serde_yaml::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .with_context(|| format!("{} has no data.{key}", path.display()))
    };
    Ok(Metadata {
        repository: field("dockerRepository")?,
        version: field("dockerImageTag")?,
    })
}

/// The package (and binary) name in `DIR/Cargo.toml`.
fn package_name(dir: &Path) -> Result<String> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: images are built for Rust connectors (a declarative manifest runs \
             in the source-rest-api image)",
            path.display()
        )
    })?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().trim_start_matches('=').trim();
            return Ok(value.trim_matches('"').to_string());
        }
    }
    bail!("{} has no [package] name", path.display())
}

/// The workspace root holding `dir` (a Cargo.toml with `[workspace]`), else `dir` itself.
fn source_root(dir: &Path) -> Result<PathBuf> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{} not found", dir.display()))?;
    let root = dir.ancestors().find(|d| {
        std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
    });
    Ok(root.unwrap_or(&dir).to_path_buf())
}

/// Copies the binary into the build context without its debug symbols (smaller images).
fn copy_stripped(binary: &Path, to: &Path) -> Result<()> {
    std::fs::copy(binary, to).with_context(|| format!("cannot copy {}", binary.display()))?;
    let stripped = Command::new("strip")
        .arg(to)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        eprintln!("note: `strip` unavailable; the image keeps the binary's symbols");
    }
    Ok(())
}

/// Fails with how to start an engine when `docker` has none to talk to.
fn check_engine() -> Result<()> {
    let answer = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match answer {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!(
            "no container engine answers the docker client ({}).\nstart one: Docker's daemon \
             (`sudo systemctl start docker`), or podman serving the Docker API:\n  podman system \
             service --time=0 unix:///tmp/podman.sock &\n  export DOCKER_HOST=unix:///tmp/podman.sock\n\
             (on hosts where crun fails or ulimits cannot be raised: export \
             CONTAINERS_CONF=<this repository>/containers.conf before starting podman)",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!(
            "cannot run the docker client ({e}): install it (Debian: apt-get install docker.io, \
             or podman-docker) and start an engine"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_image_name_of_every_connector() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let meta = read_metadata(&root.join("connectors/source-postgres")).unwrap();
        assert_eq!(meta.repository, "airbyte/source-postgres");
        assert_eq!(meta.version, "0.1.0");
        let dir = root.join("examples/source-generator");
        assert_eq!(package_name(&dir).unwrap(), "source-generator");
        assert!(source_root(&dir).unwrap().join("cdk").is_dir());
    }
}
