//! Shared helpers: finding the workspace's binaries, writing config files, running `cdk sync`
//! and connector commands with everything printed when they fail.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A binary of the workspace, built beside this test's target directory by the workspace build
/// (`target/debug/<name>`; this executable is `target/debug/deps/pipelines-…`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    let dir = exe
        .ancestors()
        .nth(2)
        .expect("the test executable is not in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: the pipeline tests run the workspace's binaries; run them with \
         `cargo test --workspace` (or `cargo build --workspace --bins` first)",
        path.display()
    );
    path
}

/// Writes `value` as pretty JSON to `dir/name` and returns the path.
pub fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// Runs a command to completion, panicking with the command, status, stdout and stderr unless
/// it succeeds.
pub async fn run_ok(mut cmd: tokio::process::Command) -> Output {
    let shown = format!("{:?}", cmd.as_std());
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "command failed: {shown}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One `cdk sync` between two connectors of the workspace; runs can be repeated with the same
/// output directory, which keeps the acknowledged state between them.
pub struct Sync {
    pub source: &'static str,
    pub source_config: PathBuf,
    pub destination: &'static str,
    pub destination_config: PathBuf,
    pub catalog: Option<PathBuf>,
    pub output: PathBuf,
}

/// What a successful `cdk sync` reported.
pub struct Synced {
    /// Records the sync forwarded from the source to the destination.
    pub records: u64,
    /// Records the destination acknowledged (the `recordCount`s of the states it echoed).
    pub acknowledged: f64,
    pub stderr: String,
}

impl Sync {
    pub async fn run(&self) -> Synced {
        let mut cmd = tokio::process::Command::new(bin("cdk"));
        cmd.arg("sync")
            .arg("--source")
            .arg(bin(self.source))
            .arg("--source-config")
            .arg(&self.source_config)
            .arg("--destination")
            .arg(bin(self.destination))
            .arg("--destination-config")
            .arg(&self.destination_config)
            .arg("--output")
            .arg(&self.output);
        if let Some(catalog) = &self.catalog {
            cmd.arg("--catalog").arg(catalog);
        }
        let out = run_ok(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // `cdk sync` prints the job record on stdout and appends it to jobs.jsonl.
        let job = last_job(&self.output);
        assert_eq!(job["status"], "succeeded", "{job}\n{stderr}");
        Synced {
            records: job["recordsEmitted"].as_u64().unwrap(),
            acknowledged: job["recordsSynced"].as_f64().unwrap(),
            stderr,
        }
    }

    /// The state file `cdk sync` keeps in the output directory.
    pub fn state(&self) -> Value {
        let path = self.output.join("state.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }
}

/// The last job record in `state_dir/jobs.jsonl`.
pub fn last_job(state_dir: &Path) -> Value {
    jobs(state_dir)
        .pop()
        .unwrap_or_else(|| panic!("no job in {}/jobs.jsonl", state_dir.display()))
}

/// Every job record in `state_dir/jobs.jsonl`.
pub fn jobs(state_dir: &Path) -> Vec<Value> {
    let path = state_dir.join("jobs.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// `cdk sync FILE…` with extra arguments and environment; returns its output (whatever the
/// exit status).
pub async fn cdk_sync(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(bin("cdk"));
    cmd.arg("sync").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("cannot run cdk sync")
}

/// Files under `dir` (recursively) whose name ends with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
