//! The [`BatchWriter`]: a [`StreamWorker`] per stream, commits that complete files (so the
//! loader may echo states), and the overwrite clean-up that deletes objects of older
//! generations only once the sync has succeeded.

use std::collections::HashSet;
use std::time::Duration;

use cdk::destination::{Batch, BatchWriter, LoaderOptions, Outcome, StreamId, StreamPlan};
use cdk::protocol::ConfiguredAirbyteStream;
use cdk::{Error, Result};
use chrono::{DateTime, Utc};

use crate::config::{Format, S3Config};
use crate::format::{self, StreamFormat, columns};
use crate::layout::{Context, Template};
use crate::stream::{StreamFiles, StreamWorker};
use crate::target::Target;

/// Commit thresholds: a file is completed (and states echoed) every 256 MiB of input or every
/// five minutes, so files are large enough for readers and a failed sync re-sends little.
/// Parquet and CSV read records field by field: the loader's decoding notes where they lie.
pub fn loader_options(format: &Format) -> LoaderOptions {
    LoaderOptions {
        commit_bytes: 256 << 20,
        commit_interval: Duration::from_secs(300),
        record_fields: !matches!(format, Format::Jsonl { .. }),
        ..LoaderOptions::default()
    }
}

pub struct S3Writer {
    config: S3Config,
    target: Target,
    template: Template,
    started: DateTime<Utc>,
    streams: Vec<Option<OpenStream>>,
}

struct OpenStream {
    worker: StreamWorker,
    context: Context,
    /// Overwrite: older objects go once the sync succeeds.
    truncate: bool,
    generation_id: Option<i64>,
}

impl S3Writer {
    pub fn new(config: S3Config, target: Target) -> Self {
        let template = Template::new(
            &config.s3_bucket_path,
            config.s3_path_format.as_deref(),
            config.file_name_pattern.as_deref(),
        );
        Self {
            config,
            target,
            template,
            started: Utc::now(),
            streams: Vec::new(),
        }
    }

    fn stream(&self, id: StreamId) -> Result<&OpenStream> {
        self.streams
            .get(id)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::system(format!("stream #{id} was not opened")))
    }

    /// Deletes the stream's objects of earlier generations (those this sync did not write).
    async fn delete_older(&self, stream: &OpenStream, written: &[String]) -> Result<()> {
        let written: HashSet<String> = written.iter().map(|k| self.target.normalise(k)).collect();
        let prefix = self.template.stream_prefix(&stream.context);
        let matcher = self.template.matcher(&stream.context);
        let mut deleted = 0u64;
        for key in self.target.list(&prefix).await? {
            if written.contains(&key) || !matcher.matches(&key) {
                continue;
            }
            let older = match (stream.generation_id, self.target.generation(&key).await?) {
                (None | Some(0), _) | (Some(_), None) => true,
                (Some(current), Some(theirs)) => theirs < current,
            };
            if older {
                self.target.delete(&key).await?;
                deleted += 1;
            }
        }
        tracing::info!(stream = %stream.context.stream, deleted, "overwrite: older objects deleted");
        Ok(())
    }
}

#[cdk::async_trait]
impl BatchWriter for S3Writer {
    async fn open(
        &mut self,
        id: StreamId,
        stream: &ConfiguredAirbyteStream,
        plan: StreamPlan,
    ) -> Result<()> {
        let context = Context {
            namespace: stream.stream.namespace.clone().unwrap_or_default(),
            stream: stream.stream.name.clone(),
            time: self.started,
            uuid: uuid::Uuid::new_v4().to_string(),
            sync_id: stream.sync_id.unwrap_or(0),
            extension: format::extension(&self.config.format).to_string(),
        };
        let stream_format = StreamFormat::new(
            self.config.format.clone(),
            columns::columns(&stream.stream.json_schema),
            stream.sync_id.unwrap_or(0),
            plan.generation_id.unwrap_or(0),
            crate::config::encode_threads()?,
        );
        let files = StreamFiles {
            target: self.target.clone(),
            template: self.template.clone(),
            context: context.clone(),
            format: stream_format,
            max_file_bytes: crate::config::max_file_bytes()?,
        };
        crate::config::gzip_level()?;
        let worker = StreamWorker::start(files, tokio::runtime::Handle::current())?;
        if self.streams.len() <= id {
            self.streams.resize_with(id + 1, || None);
        }
        self.streams[id] = Some(OpenStream {
            worker,
            context,
            truncate: plan.mode.replaces(),
            generation_id: plan.generation_id,
        });
        Ok(())
    }

    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()> {
        self.stream(id)?.worker.write(batch).await
    }

    /// Completes the current file of each stream; the streams' threads finish their files
    /// side by side.
    async fn commit(&mut self, streams: &[StreamId]) -> Result<()> {
        let mut commits = Vec::with_capacity(streams.len());
        for &id in streams {
            commits.push(self.stream(id)?.worker.commit());
        }
        futures::future::try_join_all(commits).await.map(|_| ())
    }

    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()> {
        let Some(mut stream) = self.streams.get_mut(id).and_then(Option::take) else {
            return Ok(());
        };
        let written = stream.worker.close(outcome).await?;
        if outcome == Outcome::Success && stream.truncate {
            self.delete_older(&stream, &written).await?;
        }
        Ok(())
    }
}
