//! An example destination: writes each stream's records to a local JSON-lines file in the
//! layout of Airbyte's local JSON destination (`_airbyte_raw_<stream>.jsonl`, one
//! `{"_airbyte_ab_id", "_airbyte_emitted_at", "_airbyte_data"}` object per line).
//! Append adds to the file; overwrite writes a new file and swaps it in only when the sync
//! succeeds, so a failed sync leaves the previous file as it was.
//!
//! Commits are atomic: each commit records the file's length in a `.committed` file beside
//! it, and a failed sync (or the next one, after a crash) cuts the file back to that length, so
//! nothing past the last acknowledged state stays and a resumed sync writes no duplicates.
//! It commits at each state (`CDK_COMMIT_INTERVAL_MS` other than 0 loosens that).

mod committed;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use committed::CommittedFile;

use cdk::destination::{
    Batch, BatchWriter, Input, LoaderOptions, Outcome, StreamId, StreamPlan, load,
};
use cdk::protocol::*;
use cdk::{Destination, Error, IoResultExt, JsonSchema, Output, Result};
use serde::Deserialize;

pub struct DestinationJsonl;

/// Writes records to local JSON-lines files.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(title = "JSON Lines Destination Spec")]
pub struct JsonlConfig {
    /// Directory the files are written to; created when missing.
    pub destination_path: String,
}

impl cdk::config::Validate for JsonlConfig {}

#[cdk::async_trait]
impl Destination for DestinationJsonl {
    type Config = JsonlConfig;

    async fn check(&self, config: &JsonlConfig) -> Result<()> {
        let dir = Path::new(&config.destination_path);
        let probe = dir.join(".cdk-check");
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&probe, b"ok"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| Error::config(format!("cannot write to '{}': {e}", dir.display())))
    }

    async fn write(
        &self,
        config: &JsonlConfig,
        catalog: &ConfiguredAirbyteCatalog,
        input: Input,
        output: &Output,
    ) -> Result<()> {
        let mut writer = JsonlWriter {
            dir: config.destination_path.clone().into(),
            files: Vec::new(),
        };
        load(
            input,
            catalog,
            &self.supported_sync_modes(),
            &mut writer,
            // A commit at each state (the loader's timed commits would also take in records
            // past the last state, which a crash would then leave behind): with the
            // `.committed` length, the file never keeps what no acknowledged state covers.
            LoaderOptions {
                commit_interval: std::time::Duration::ZERO,
                ..LoaderOptions::default()
            },
            output,
        )
        .await
    }
}

/// The file a stream is written to.
pub fn stream_file(dir: &Path, stream: &StreamDescriptor) -> PathBuf {
    let dir = match &stream.namespace {
        Some(ns) => dir.join(ns),
        None => dir.to_path_buf(),
    };
    dir.join(format!("_airbyte_raw_{}.jsonl", stream.name))
}

struct OpenFile {
    file: BufWriter<File>,
    committed: CommittedFile,
    /// Where the file goes on success (`Some` for overwrite, written under a temp name).
    swap_to: Option<(PathBuf, PathBuf)>,
    line: Vec<u8>,
}

struct JsonlWriter {
    dir: PathBuf,
    files: Vec<OpenFile>,
}

#[cdk::async_trait]
impl BatchWriter for JsonlWriter {
    async fn open(
        &mut self,
        id: StreamId,
        stream: &ConfiguredAirbyteStream,
        plan: StreamPlan,
    ) -> Result<()> {
        debug_assert_eq!(id, self.files.len());
        let target = stream_file(&self.dir, &stream.descriptor());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::config(format!("cannot create '{}': {e}", parent.display())))?;
        }
        let (path, swap_to) = if plan.mode.replaces() {
            // One temp file per generation: a resumed overwrite (same generation) goes on
            // with what the failed attempt committed.
            let generation = plan.generation_id.unwrap_or(0);
            let tmp = target.with_extension(format!("jsonl.gen{generation}.tmp"));
            committed::remove_other_generations(&target, &tmp);
            (tmp.clone(), Some((tmp, target)))
        } else {
            (target, None)
        };
        let (file, committed) = CommittedFile::open(&path)?;
        self.files.push(OpenFile {
            file: BufWriter::with_capacity(1 << 20, file),
            committed,
            swap_to,
            line: Vec::new(),
        });
        Ok(())
    }

    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()> {
        let f = &mut self.files[id];
        for record in batch.iter() {
            f.line.clear();
            f.line.extend_from_slice(b"{\"_airbyte_ab_id\":\"");
            f.line.extend_from_slice(
                uuid::Uuid::new_v4()
                    .hyphenated()
                    .encode_lower(&mut [0; 36])
                    .as_bytes(),
            );
            f.line.extend_from_slice(b"\",\"_airbyte_emitted_at\":");
            f.line
                .extend_from_slice(record.emitted_at.to_string().as_bytes());
            f.line.extend_from_slice(b",\"_airbyte_data\":");
            f.line.extend_from_slice(record.data.as_bytes());
            f.line.extend_from_slice(b"}\n");
            f.file.write_all(&f.line).with_path(f.committed.path())?;
        }
        Ok(())
    }

    async fn commit(&mut self, streams: &[StreamId]) -> Result<()> {
        for &id in streams {
            let f = &mut self.files[id];
            f.file.flush().with_path(f.committed.path())?;
            f.committed.commit(f.file.get_ref())?;
        }
        Ok(())
    }

    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()> {
        let Some(f) = self.files.get_mut(id) else {
            return Ok(());
        };
        if outcome == Outcome::Failure {
            // Nothing past the last commit stays; an overwrite's temp file is kept for the
            // resumed attempt.
            return f.committed.roll_back(f.file.get_ref());
        }
        f.file.flush().with_path(f.committed.path())?;
        f.committed.commit(f.file.get_ref())?;
        if let Some((tmp, target)) = f.swap_to.take() {
            std::fs::rename(&tmp, &target).map_err(|e| {
                Error::system(format!("cannot move '{}' into place: {e}", tmp.display()))
            })?;
            f.committed.moved_to(&target)?;
        }
        Ok(())
    }
}
