//! {{name}}: an Airbyte destination built on the cdk. It writes each stream to
//! `<directory>/<stream>.jsonl`; replace the writer with your storage.
//!
//! Commits are atomic, as a destination's must be: each commit records the file's length in
//! `<file>.committed`, and a failed sync (or the next one, after a crash) cuts the file back
//! to it, so nothing past the last acknowledged state stays.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cdk::destination::{
    Batch, BatchWriter, Input, LoaderOptions, Outcome, StreamId, StreamPlan, load,
};
use cdk::protocol::*;
use cdk::{Destination, Error, IoResultExt, JsonSchema, Output, Result};
use serde::Deserialize;

pub struct {{type_name}};

/// {{title}} destination.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(title = "{{title}} Destination Spec")]
pub struct Config {
    /// Directory the files are written to.
    pub directory: String,
}

/// Rules the JSON Schema cannot express go here; the kit checks them for every command.
impl cdk::config::Validate for Config {}

#[cdk::async_trait]
impl Destination for {{type_name}} {
    type Config = Config;

    async fn check(&self, config: &Config) -> Result<()> {
        std::fs::create_dir_all(&config.directory)
            .map_err(|e| Error::config(format!("cannot create '{}': {e}", config.directory)))
    }

    async fn write(
        &self,
        config: &Config,
        catalog: &ConfiguredAirbyteCatalog,
        input: Input,
        output: &Output,
    ) -> Result<()> {
        let mut writer = Writer { dir: config.directory.clone().into(), files: Vec::new() };
        let modes = self.supported_sync_modes();
        // A commit at each state, so a commit never takes in records past the last state.
        let options = LoaderOptions { commit_interval: Duration::ZERO, ..LoaderOptions::default() };
        load(input, catalog, &modes, &mut writer, options, output).await
    }
}

struct Writer {
    dir: PathBuf,
    files: Vec<StreamFile>,
}

/// One stream's file, its committed length, and for overwrite the (temporary, final) paths.
struct StreamFile {
    file: BufWriter<File>,
    path: PathBuf,
    committed: u64,
    swap: Option<PathBuf>,
}

/// Where a file's committed length is kept.
fn marker(path: &Path) -> PathBuf {
    path.with_extension("jsonl.committed")
}

impl StreamFile {
    /// Opens `path` after its committed part (what a crashed sync left past it is cut off).
    fn open(path: PathBuf, swap: Option<PathBuf>) -> Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_path(&path)?;
        let length = file.metadata().with_path(&path)?.len();
        let committed = std::fs::read_to_string(marker(&path))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map_or(length, |c: u64| c.min(length));
        file.set_len(committed).with_path(&path)?;
        file.seek(SeekFrom::Start(committed)).with_path(&path)?;
        let mut opened = Self { file: BufWriter::new(file), path, committed, swap };
        opened.commit()?;
        Ok(opened)
    }

    /// Makes the writes durable, then records the new committed length.
    fn commit(&mut self) -> Result<()> {
        self.file.flush().with_path(&self.path)?;
        self.file.get_ref().sync_data().with_path(&self.path)?;
        self.committed = self.file.get_ref().metadata().with_path(&self.path)?.len();
        let tmp = marker(&self.path).with_extension("tmp");
        std::fs::write(&tmp, self.committed.to_string()).with_path(&tmp)?;
        std::fs::rename(&tmp, marker(&self.path)).with_path(&tmp)?;
        Ok(())
    }
}

#[cdk::async_trait]
impl BatchWriter for Writer {
    /// The loader has resolved the stream's write mode (`plan`) and checked it against
    /// `supported_sync_modes`: an overwrite is written to a temporary file (one per
    /// generation, so a resumed attempt goes on with it), swapped in on close.
    async fn open(
        &mut self,
        _id: StreamId,
        stream: &ConfiguredAirbyteStream,
        plan: StreamPlan,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_path(&self.dir)?;
        let target = self.dir.join(format!("{}.jsonl", stream.stream.name));
        let opened = if plan.mode.replaces() {
            let generation = plan.generation_id.unwrap_or(0);
            StreamFile::open(target.with_extension(format!("gen{generation}.tmp")), Some(target))?
        } else {
            StreamFile::open(target, None)?
        };
        self.files.push(opened);
        Ok(())
    }

    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()> {
        let f = &mut self.files[id];
        for record in batch.iter() {
            f.file.write_all(record.data.as_bytes()).with_path(&f.path)?;
            f.file.write_all(b"\n").with_path(&f.path)?;
        }
        Ok(())
    }

    /// Makes the records of `streams` durable; the loader echoes states after this.
    async fn commit(&mut self, streams: &[StreamId]) -> Result<()> {
        for &id in streams {
            self.files[id].commit()?;
        }
        Ok(())
    }

    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()> {
        let Some(f) = self.files.get_mut(id) else { return Ok(()) };
        if outcome == Outcome::Failure {
            // Nothing past the last commit stays.
            return f.file.get_ref().set_len(f.committed).with_path(&f.path);
        }
        f.commit()?;
        if let Some(target) = f.swap.take() {
            std::fs::rename(&f.path, &target).with_path(&target)?;
            std::fs::rename(marker(&f.path), marker(&target)).with_path(&target)?;
        }
        Ok(())
    }
}
