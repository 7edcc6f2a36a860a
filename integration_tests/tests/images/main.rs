//! Connector images, built and run for real through the `docker` client: every connector's
//! image answers `spec` and carries Airbyte's metadata; images run the way Airbyte's launcher
//! runs them read from and write to the test servers; a generated connector becomes an image;
//! PyAirbyte runs our source-postgres image.
//!
//! Needs a container engine behind `docker` (`.ci/run` starts podman and sets `DOCKER_HOST`);
//! without one every test fails, saying how to start it.

mod launcher;
mod pyairbyte;
mod scaffold;
mod spec;
mod sync;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The connectors and examples that ship as images, with their folders.
pub const CONNECTORS: [&str; 7] = [
    "connectors/source-postgres",
    "connectors/source-csv",
    "connectors/source-rest-api",
    "connectors/destination-postgres",
    "connectors/destination-s3",
    "examples/source-generator",
    "examples/destination-jsonl",
];

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration_tests is in the workspace")
        .to_path_buf()
}

/// The workspace's target profile folder (this executable is `target/debug/deps/images-…`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    exe.ancestors()
        .nth(2)
        .expect("the test executable is not in target/<profile>/deps")
        .to_path_buf()
}

/// A binary the workspace build made (`target/debug/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let path = target_profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run the image tests with `cargo test --workspace` (or `cargo build \
         --workspace --bins` first)",
        path.display()
    );
    path
}

/// Runs `docker ARGS`, returning its output (whatever the status).
pub fn docker(args: &[&str]) -> Output {
    engine();
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}"))
}

/// Runs `docker ARGS` and returns its stdout, panicking with everything when it fails.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics, saying how to start one, unless a container engine answers the `docker` client.
pub fn engine() {
    static ANSWERED: OnceLock<Result<(), String>> = OnceLock::new();
    let answer = ANSWERED.get_or_init(|| {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map_err(|e| format!("cannot run the docker client: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(why) = answer {
        panic!(
            "the image tests need a container engine behind `docker` and none answers: {why}\n\
             `.ci/run` starts one (podman serving the Docker API, DOCKER_HOST exported); by \
             hand: `source .ci/engine.sh && engine_start`"
        );
    }
}

/// The image name and tag `metadata.yaml` gives a connector folder.
pub fn metadata(dir: &str) -> (String, String) {
    let text = std::fs::read_to_string(root().join(dir).join("metadata.yaml"))
        .unwrap_or_else(|e| panic!("{dir}/metadata.yaml: {e}"));
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{dir}/metadata.yaml has no {key}"))
    };
    (field("dockerRepository"), field("dockerImageTag"))
}

/// The image of a connector folder, built once per test process by `cdk image build` from the
/// binary the workspace build made; returns its tag (`<dockerRepository>:dev`).
pub fn image(dir: &str) -> String {
    static BUILT: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(tag) = built.get(dir) {
        return tag.clone();
    }
    engine();
    // The previous build of this tag would be left dangling: remove it first.
    let _ = docker(&[
        "image",
        "rm",
        "--force",
        &format!("{}:dev", metadata(dir).0),
    ]);
    let name = Path::new(dir).file_name().unwrap().to_string_lossy();
    let started = std::time::Instant::now();
    let out = Command::new(bin("cdk"))
        .args(["image", "build"])
        .arg(root().join(dir))
        .arg("--prebuilt")
        .arg(bin(&name))
        .output()
        .expect("cannot run cdk");
    assert!(
        out.status.success(),
        "cdk image build {dir} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(tag, format!("{}:dev", metadata(dir).0));
    eprintln!("built {tag} in {} ms", started.elapsed().as_millis());
    built.insert(dir.to_string(), tag.clone());
    tag
}

/// The paths the engine itself changes in any container (e.g. /etc/hosts), which a
/// connector's changes are not blamed for.
pub fn engine_changes(image: &str) -> BTreeSet<String> {
    static BASELINE: OnceLock<BTreeSet<String>> = OnceLock::new();
    BASELINE
        .get_or_init(|| {
            let name = format!("cdk-baseline-{}", std::process::id());
            docker_ok(&["run", "--name", &name, "--entrypoint", "true", image]);
            let changes = changed_paths(&name);
            docker_ok(&["rm", "-f", &name]);
            changes
        })
        .clone()
}

/// What `docker diff` says changed in a container.
pub fn changed_paths(container: &str) -> BTreeSet<String> {
    docker_ok(&["diff", container])
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, path)| path.to_string()))
        .collect()
}
