//! {{name}}: an Airbyte destination built on the cdk. It writes each stream to
//! `<directory>/<stream>.jsonl`; replace the writer with your storage.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

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
        load(input, catalog, &modes, &mut writer, LoaderOptions::default(), output).await
    }
}

struct Writer {
    dir: PathBuf,
    /// Per stream, by id.
    files: Vec<OpenFile>,
}

struct OpenFile {
    file: BufWriter<File>,
    /// The file being written (named in errors).
    path: PathBuf,
    /// For overwrite: the (temporary, final) paths, swapped on success.
    swap: Option<(PathBuf, PathBuf)>,
}

#[cdk::async_trait]
impl BatchWriter for Writer {
    /// The loader has resolved the stream's write mode (`plan`) and checked it against
    /// `supported_sync_modes`: an overwrite is written to a temporary file, swapped in on close.
    async fn open(
        &mut self,
        _id: StreamId,
        stream: &ConfiguredAirbyteStream,
        plan: StreamPlan,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_path(&self.dir)?;
        let target = self.dir.join(format!("{}.jsonl", stream.stream.name));
        let overwrite = plan.mode.replaces();
        let (path, swap) = if overwrite {
            let tmp = target.with_extension("jsonl.tmp");
            (tmp.clone(), Some((tmp, target)))
        } else {
            (target, None)
        };
        let file = OpenOptions::new()
            .create(true)
            .append(!overwrite)
            .write(true)
            .truncate(overwrite)
            .open(&path)
            .with_path(&path)?;
        self.files.push(OpenFile { file: BufWriter::new(file), path, swap });
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
            let f = &mut self.files[id];
            f.file.flush().with_path(&f.path)?;
            f.file.get_ref().sync_data().with_path(&f.path)?;
        }
        Ok(())
    }

    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()> {
        let Some(f) = self.files.get_mut(id) else { return Ok(()) };
        if let Some((tmp, target)) = f.swap.take() {
            f.file.flush().with_path(&tmp)?;
            match outcome {
                Outcome::Success => std::fs::rename(&tmp, &target).with_path(&target)?,
                Outcome::Failure => std::fs::remove_file(&tmp).with_path(&tmp)?,
            }
        }
        Ok(())
    }
}
