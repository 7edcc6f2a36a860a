//! The benchmark harness: runs release connector binaries with stdout to /dev/null, measures
//! wall time and peak RSS of the child, and prints figures beside a physical reference.
//!
//! Each connector has its own module with a `run(&Bench) -> anyhow::Result<()>`.

pub mod destination_postgres;
pub mod destination_s3;
pub mod generator;
pub mod loader;
pub mod source_csv;
pub mod source_postgres;
pub mod source_postgres_cdc;
pub mod source_rest_api;
pub mod sync;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Shared settings of one bench run.
pub struct Bench {
    /// Where the release binaries are (the directory of the `bench` executable).
    pub bin_dir: PathBuf,
    /// Scratch space for generated data.
    pub scratch: tempfile::TempDir,
    /// Records for the main measurement (default 1,000,000).
    pub records: u64,
}

impl Bench {
    pub fn new(records: u64) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let bin_dir = exe
            .parent()
            .context("bench has no directory")?
            .to_path_buf();
        Ok(Self {
            bin_dir,
            scratch: tempfile::tempdir()?,
            records,
        })
    }

    /// The path of a connector binary built beside `bench`.
    pub fn binary(&self, name: &str) -> Result<PathBuf> {
        let path = self.bin_dir.join(name);
        if !path.is_file() {
            bail!(
                "{} not found: build every binary first with `cargo build --profile dist --workspace`",
                path.display()
            );
        }
        Ok(path)
    }

    pub fn scratch_file(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }
}

/// Wall time and peak memory of one child process.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub elapsed: Duration,
    /// Peak resident set size of the child, in MiB.
    pub peak_rss_mib: f64,
}

impl Measurement {
    /// Two runs of the same work as one figure: the faster time, the higher peak memory.
    pub fn best_with(self, other: Measurement) -> Measurement {
        Measurement {
            elapsed: self.elapsed.min(other.elapsed),
            peak_rss_mib: self.peak_rss_mib.max(other.peak_rss_mib),
        }
    }

    pub fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `cmd` with stdout to /dev/null and stdin from `stdin` (or nothing); fails on a
/// non-zero exit (showing stderr).
pub fn measure(cmd: &mut Command, stdin: Option<&Path>) -> Result<Measurement> {
    let input = match stdin {
        Some(p) => Stdio::from(File::open(p).with_context(|| format!("open {}", p.display()))?),
        None => Stdio::null(),
    };
    let stderr = tempfile::NamedTempFile::new()?;
    let started = Instant::now();
    let child = cmd
        .stdin(input)
        .stdout(Stdio::from(File::create("/dev/null")?))
        .stderr(Stdio::from(stderr.reopen()?))
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let (status, peak_rss_kib) = wait_with_rusage(child.id() as i32)?;
    let elapsed = started.elapsed();
    if status != 0 {
        let text = std::fs::read_to_string(stderr.path()).unwrap_or_default();
        bail!("{cmd:?} exited with status {status}: {text}");
    }
    Ok(Measurement {
        elapsed,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
    })
}

/// The fastest of `runs` runs of the command `make` builds, with the highest peak RSS seen: on
/// a shared machine the least disturbed run is the best estimate of the code's speed, and
/// memory is judged by its worst.
pub fn measure_best(
    runs: usize,
    make: impl Fn() -> Command,
    stdin: Option<&Path>,
) -> Result<Measurement> {
    let mut best = measure(&mut make(), stdin)?;
    for _ in 1..runs {
        best = best.best_with(measure(&mut make(), stdin)?);
    }
    Ok(best)
}

/// Waits for `pid` and returns (exit status, peak RSS in KiB) from the kernel's accounting.
fn wait_with_rusage(pid: i32) -> Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((code, usage.ru_maxrss))
}

/// Prints one figure line: records/s, MB/s (of `bytes`, when known), peak RSS.
pub fn report(name: &str, records: u64, bytes: Option<u64>, m: &Measurement) {
    let mb = bytes
        .map(|b| format!(", {:.0} MB/s", b as f64 / 1e6 / m.elapsed.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "{name:<44} {records:>10} records in {:>7.3} s = {:>12.0} records/s{mb}, peak RSS {:.1} MiB",
        m.elapsed.as_secs_f64(),
        m.per_second(records),
        m.peak_rss_mib
    );
}

/// Prints how a measurement compares with its physical reference.
pub fn report_ratio(name: &str, ours: &Measurement, reference_name: &str, reference: &Measurement) {
    println!(
        "{name:<44} {:.2}x the time of {reference_name} ({:.3} s vs {:.3} s)",
        ours.elapsed.as_secs_f64() / reference.elapsed.as_secs_f64(),
        ours.elapsed.as_secs_f64(),
        reference.elapsed.as_secs_f64()
    );
}

static GOALS_MISSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Prints a goal check and returns whether it holds; a missed goal makes `bench` fail at the end.
pub fn goal(what: &str, ok: bool) -> bool {
    println!("  goal {what}: {}", if ok { "met" } else { "NOT MET" });
    if !ok {
        GOALS_MISSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    ok
}

/// How many goals were not met so far.
pub fn goals_missed() -> usize {
    GOALS_MISSED.load(std::sync::atomic::Ordering::Relaxed)
}
