//! Job records: one JSON line per run in the connection's `jobs.jsonl` (the fields of
//! Airbyte's job: id, status, times, `recordsSynced` as acknowledged by the destination,
//! `bytesSynced`), and the summary printed at the end of a run.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::HumanBytes;
use serde::{Deserialize, Serialize};

/// How a job ended (pending and running are never written: a record is written at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// One job, as `jobs.jsonl` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: u64,
    pub connection: String,
    pub job_type: String,
    pub status: JobStatus,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// ISO 8601, as Airbyte writes it (`PT12.345S`).
    pub duration: String,
    /// Records the destination acknowledged (committed).
    pub records_synced: u64,
    pub bytes_synced: u64,
    /// Records the source emitted.
    pub records_emitted: u64,
    pub bytes_emitted: u64,
    pub streams: Vec<StreamJob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// The connectors' peak resident memory during `read` / `write` (of the docker client
    /// for an image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<PeakRss>,
}

/// Peak resident memory of each connector process, in MiB.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PeakRss {
    pub source: f64,
    pub destination: f64,
}

/// The peak resident memory (`VmHWM`) of a running process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One stream of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamJob {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The source's last stream status (`complete`, `incomplete`, …), or `unknown`.
    pub status: String,
    pub records_emitted: u64,
    pub bytes_emitted: u64,
    pub records_synced: u64,
    pub bytes_synced: u64,
}

/// Why a job failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFailure {
    /// `source`, `destination` or `cdk`.
    pub origin: String,
    pub message: String,
    /// `config_error`, `system_error`, `transient_error`, or `cancelled`.
    pub failure_type: String,
}

/// A connection's job history.
pub struct History {
    path: PathBuf,
}

impl History {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("jobs.jsonl"),
        }
    }

    /// Every job so far (lines that do not parse are skipped).
    pub fn jobs(&self) -> Vec<Job> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn next_id(&self) -> u64 {
        self.jobs().last().map_or(1, |j| j.id + 1)
    }

    pub fn last_started(&self) -> Option<DateTime<Utc>> {
        self.jobs().last().map(|j| j.started_at)
    }

    pub fn append(&self, job: &Job) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let mut line = serde_json::to_vec(job)?;
        line.push(b'\n');
        file.write_all(&line)?;
        Ok(())
    }
}

/// `PT12.345S`.
pub fn iso_duration(d: std::time::Duration) -> String {
    format!("PT{:.3}S", d.as_secs_f64())
}

impl Job {
    /// The summary printed at the end of a run (on stderr, with the job as JSON on stdout).
    pub fn summary(&self) -> String {
        let secs = (self.ended_at - self.started_at).num_milliseconds() as f64 / 1000.0;
        let rate = self.records_synced as f64 / secs.max(0.001);
        let mut text = format!(
            "job {} of {} {} in {secs:.1}s: {} records ({}) synced, as acknowledged by the destination ({rate:.0} records/s); {} records read from the source",
            self.id,
            self.connection,
            status_word(self.status),
            self.records_synced,
            HumanBytes(self.bytes_synced),
            self.records_emitted,
        );
        for s in &self.streams {
            let name = match &s.namespace {
                Some(ns) => format!("{ns}.{}", s.name),
                None => s.name.clone(),
            };
            text.push_str(&format!(
                "\n  {name}: {} synced of {} read ({})",
                s.records_synced, s.records_emitted, s.status
            ));
        }
        if let Some(f) = &self.failure {
            text.push_str(&format!(
                "\n  failure ({}, {}): {}",
                f.origin, f.failure_type, f.message
            ));
        }
        text
    }

    pub fn started_text(&self) -> String {
        self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

fn status_word(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "pending",
        JobStatus::Running => "running",
        JobStatus::Succeeded => "succeeded",
        JobStatus::Failed => "failed",
        JobStatus::Cancelled => "cancelled",
    }
}
