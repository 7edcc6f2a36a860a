//! The source side: the [`Source`] trait every source implements, and the [`Stream`] trait most
//! sources implement instead of writing `read` themselves.

mod driver;
mod global;
mod writer;

pub use driver::read_streams;
pub use global::GlobalWriter;
pub use writer::{RecordWriter, TrustedJson};

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Validate;
use crate::output::Output;
use crate::protocol::*;
use crate::{CliOptions, Result};

/// A source connector.
///
/// Required: the config type and `check`. Most sources then implement [`Source::streams`] and
/// let the kit's read driver do `discover` and `read` (statuses, checkpoints, concurrency,
/// errors). A source with shared state (CDC) overrides `read` itself.
///
/// Errors returned from `check` with a `config_error` failure type become a CONNECTION_STATUS
/// FAILED (exit 0); any other error, from any method, becomes a TRACE ERROR and a non-zero exit.
#[async_trait]
pub trait Source: Send + Sync + Sized + 'static {
    /// The typed config; its JSON Schema is the spec's `connectionSpecification`, and its
    /// [`Validate`] hook runs for every command before the config reaches the source.
    type Config: DeserializeOwned + JsonSchema + Validate + Send + Sync + 'static;

    /// The spec: by default, the config type's JSON Schema.
    fn spec(&self) -> ConnectorSpecification {
        ConnectorSpecification::new(crate::spec::connection_specification::<Self::Config>())
    }

    /// Takes command-line options beyond the standard ones (e.g. `--manifest-path`).
    fn configure(&mut self, _options: &CliOptions) -> Result<()> {
        Ok(())
    }

    /// Verifies the config can be used: credentials, reachability, permissions.
    async fn check(&self, config: &Self::Config) -> Result<()>;

    /// The streams this config gives access to.
    async fn streams(&self, _config: &Self::Config) -> Result<Vec<Arc<dyn Stream>>> {
        Err(crate::Error::system("this source does not define streams"))
    }

    /// The catalog: by default, the [`Stream::airbyte_stream`] of each of [`Source::streams`].
    async fn discover(&self, config: &Self::Config) -> Result<AirbyteCatalog> {
        let streams = self.streams(config).await?;
        Ok(AirbyteCatalog {
            streams: streams.iter().map(|s| s.airbyte_stream()).collect(),
        })
    }

    /// Checkpoint interval and concurrency for the read driver.
    fn read_options(&self, _config: &Self::Config) -> ReadOptions {
        ReadOptions::default()
    }

    /// Reads the configured streams: by default, [`Source::streams`] through the read driver
    /// ([`read_streams`]), with [`Source::read_options`].
    async fn read(
        &self,
        config: &Self::Config,
        catalog: &ConfiguredAirbyteCatalog,
        state: &InputState,
        output: &Output,
    ) -> Result<()> {
        let streams = self.streams(config).await?;
        read_streams(streams, catalog, state, &self.read_options(config), output).await
    }
}

/// How the read driver runs streams.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// A STATE at least every this many records of a stream (when the stream can give one).
    pub checkpoint_interval: u64,
    /// Streams read at the same time.
    pub max_concurrent_streams: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            checkpoint_interval: 10_000,
            max_concurrent_streams: 4,
        }
    }
}

/// One stream of a source: its shape, and how to read it from a state.
#[async_trait]
pub trait Stream: Send + Sync + 'static {
    /// The stream's name.
    fn name(&self) -> &str;

    /// The stream's namespace, if any.
    fn namespace(&self) -> Option<&str> {
        None
    }

    /// The JSON Schema of a record (`type: object`).
    fn json_schema(&self) -> Value;

    /// The primary key, as paths of field names (empty: none).
    fn primary_key(&self) -> Vec<Vec<String>> {
        Vec::new()
    }

    /// The cursor used by default for incremental reads; a stream with one supports them.
    fn default_cursor_field(&self) -> Option<Vec<String>> {
        None
    }

    /// True when the source decides the cursor and the user cannot pick another.
    fn source_defined_cursor(&self) -> bool {
        self.default_cursor_field().is_some()
    }

    /// The sync modes it supports: incremental too when it has a default cursor.
    fn supported_sync_modes(&self) -> Vec<SyncMode> {
        match self.default_cursor_field() {
            Some(_) => vec![SyncMode::FullRefresh, SyncMode::Incremental],
            None => vec![SyncMode::FullRefresh],
        }
    }

    /// True when a full refresh can resume from a state part way through.
    fn is_resumable(&self) -> bool {
        false
    }

    /// True when each record comes with a file (sent with
    /// [`RecordWriter::record_with_file`]); discover then marks the stream `is_file_based`.
    fn is_file_based(&self) -> bool {
        false
    }

    /// What this read is expected to produce, for progress estimates (an ESTIMATE trace
    /// before the first record).
    async fn estimate(&self, _ctx: &ReadContext) -> Option<Estimate> {
        None
    }

    /// Reads records into `out`, resuming from `ctx.state`. Call [`RecordWriter::checkpoint`]
    /// (or use [`RecordWriter::record_with_state`]) so the sync can resume.
    ///
    /// A stream that never checkpoints gets one final state from the driver, and that state
    /// is the incoming one (`ctx.state`, or Airbyte's `{"__ab_no_cursor_state_message": true}`
    /// on a first sync): an incremental stream that never checkpoints reads everything again
    /// next time.
    async fn read(&self, ctx: &ReadContext, out: &mut RecordWriter) -> Result<()>;

    /// The stream's name and namespace.
    fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor::new(self.name(), self.namespace().map(str::to_string))
    }

    /// The stream as it appears in a discovered catalog.
    fn airbyte_stream(&self) -> AirbyteStream {
        let mut stream =
            AirbyteStream::new(self.name(), self.json_schema(), self.supported_sync_modes());
        stream.namespace = self.namespace().map(str::to_string);
        let pk = self.primary_key();
        stream.source_defined_primary_key = (!pk.is_empty()).then_some(pk);
        stream.default_cursor_field = self.default_cursor_field();
        stream.source_defined_cursor = Some(self.source_defined_cursor());
        stream.is_resumable = Some(self.is_resumable());
        stream.is_file_based = self.is_file_based().then_some(true);
        stream
    }
}

/// A stream's expected size, for the platform's progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Records the read is expected to emit.
    pub rows: i64,
    /// Bytes of record data, when known.
    pub bytes: Option<i64>,
}

/// What a stream reads: the configured stream and its incoming state.
#[derive(Debug, Clone)]
pub struct ReadContext {
    /// The configured stream.
    pub configured: ConfiguredAirbyteStream,
    /// The stream's state from the previous sync (`None` on a first sync).
    pub state: Option<Value>,
}

impl ReadContext {
    /// How this read reads.
    pub fn sync_mode(&self) -> SyncMode {
        self.configured.sync_mode
    }

    /// True for an incremental read.
    pub fn is_incremental(&self) -> bool {
        self.configured.sync_mode == SyncMode::Incremental
    }

    /// The cursor the user or the source chose.
    pub fn cursor_field(&self) -> Option<&[String]> {
        self.configured.resolved_cursor_field()
    }
}
