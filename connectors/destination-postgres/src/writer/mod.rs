//! The [`BatchWriter`]: opens each stream in three steps ([`plan`] its tables, [`create`]
//! them, [`prepare_copy`]), encodes each batch on a blocking thread while the loader decodes
//! the next one, streams the rows into COPY inside one transaction per connection ([`load`];
//! a second connection takes every other batch of streams without a stage ([`lane`]) and half
//! of the keys of dedup streams ([`dedup_lane`])), runs the dedup upserts and COMMITs on
//! `commit`, and swaps overwritten tables in on a successful `close` ([`finish`]).

mod create;
mod dedup_lane;
mod finish;
mod lane;
mod load;
mod merge;
mod plan;
mod prepare_copy;
mod split;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cdk::destination::{Batch, BatchWriter, Outcome, StreamId, StreamPlan};
use cdk::protocol::*;
use cdk::{Error, Result};
use tokio_postgres::{Client, CopyInSink};

use crate::config::PostgresConfig;
use crate::connect::pg_error;
use crate::copy::Format;
use crate::names::TableName;
use crate::rows::Rows;
use crate::sql::Dedup;
use plan::StreamTables;

/// Writes every configured stream over one connection.
pub struct PgWriter {
    /// Shared with a background merge while one runs.
    client: Arc<Client>,
    config: PostgresConfig,
    format: Format,
    streams: Vec<StreamWriter>,
    in_tx: bool,
    copy: Option<OpenCopy>,
    /// The batch being encoded off the loader's thread (at most one at a time).
    encoding: Option<Encoding>,
    /// A dedup merge running on the server (no COPY is open meanwhile).
    merging: Option<tokio::task::JoinHandle<Result<()>>>,
    /// Encoded rows waiting for the merge to end, as `(stream, table, plain, rows)`.
    held: Vec<(usize, usize, bool, Bytes)>,
    held_bytes: usize,
    merge_every: u64,
    /// The second connection, when there is one, and which one takes the next job.
    second: Option<lane::Lane>,
    /// The connection taking half of each dedup stream's keys, when there is one.
    dedup_lane: Option<dedup_lane::DedupLane>,
    alternate: bool,
    safe_cast_ready: bool,
    /// Whether the session's temporary-table buffers were sized for the dedup stages.
    stages_sized: bool,
    targets: HashMap<TableName, StreamDescriptor>,
}

/// An encoding job: it hands back the stream's [`Rows`] with the rows it encoded.
type Encoding = tokio::task::JoinHandle<(StreamId, Rows, Result<Encoded>)>;

/// Rows encoded from a batch, with the records per lane and, when split, their key hashes.
type Encoded = crate::rows::Taken;

struct OpenCopy {
    stream: usize,
    table: usize,
    /// Whether this COPY leaves `_airbyte_meta` to its default.
    plain: bool,
    sink: Pin<Box<CopyInSink<Bytes>>>,
}

impl OpenCopy {
    /// Starts `sql` (a COPY … FROM STDIN) on `client` for table `table` of stream `stream`,
    /// sending the format's header first.
    async fn start(
        client: &Client,
        sql: &str,
        format: Format,
        (stream, table, plain): (usize, usize, bool),
    ) -> Result<Self> {
        use futures::SinkExt;
        let sink = client.copy_in::<_, Bytes>(sql).await.map_err(pg_error)?;
        let mut sink = Box::pin(sink);
        let header = crate::copy::Encoder::header(format);
        if !header.is_empty() {
            sink.send(header).await.map_err(pg_error)?;
        }
        Ok(Self {
            stream,
            table,
            plain,
            sink,
        })
    }
}

/// One table of a stream (the main table or a child table) and where its rows go.
struct Table {
    /// The table readers see.
    target: TableName,
    /// Overwrite: the table loaded and swapped in at the end.
    tmp: Option<TableName>,
    /// Dedup: the session's staging table, merged into `load_into` on commit.
    stage: Option<String>,
    /// The final table, or `tmp` when overwriting.
    load_into: TableName,
    columns: Vec<String>,
    /// The columns as created (a dedup lane creates its own stage with them).
    stage_columns: Vec<crate::sql::ColumnDef>,
    copy_sql: String,
    /// COPY without `_airbyte_meta`, when the loaded table defaults it to this sync's plain
    /// meta (tables this sync created: PostgreSQL then parses no JSON for most rows).
    copy_plain_sql: Option<String>,
    /// A table whose `_airbyte_meta` default is removed at close (a final table this sync
    /// created; tmp tables lose theirs in the swap, stages are temporary).
    drop_default: Option<TableName>,
    /// Indexes made at close: (suffix, columns).
    indexes: Vec<(&'static str, Vec<String>)>,
    /// Indexes made at open on `load_into` (renamed at the swap).
    open_indexes: Vec<&'static str>,
}

struct StreamWriter {
    descriptor: StreamDescriptor,
    tables: Vec<Table>,
    /// The stream's encoder; away while a job encodes one of its batches.
    rows: Option<Rows>,
    dedup: Option<Dedup>,
    /// How many child tables follow the main table in `tables`.
    children: usize,
    staged: bool,
    /// Whether the stream's records are split over the dedup lane.
    split: bool,
    /// Whether rows went to the dedup lane's stage since its last commit.
    staged_second: bool,
    /// Records sent into the stage since its last merge, on the first connection and on the
    /// dedup lane.
    since_merge: u64,
    since_merge_second: u64,
    /// The keys staged since the last merge, per lane (known for split streams only).
    windows: [merge::KeyWindow; 2],
    records: u64,
}

impl PgWriter {
    pub fn new(client: Client, config: PostgresConfig) -> Self {
        Self {
            client: Arc::new(client),
            config,
            format: Format::from_env(),
            streams: Vec::new(),
            in_tx: false,
            copy: None,
            encoding: None,
            merging: None,
            held: Vec::new(),
            held_bytes: 0,
            merge_every: merge::merge_every(),
            second: None,
            dedup_lane: None,
            alternate: false,
            safe_cast_ready: false,
            stages_sized: false,
            targets: HashMap::new(),
        }
    }

    /// Loads rows of streams without a stage over `client` too (see [`lane`]).
    pub fn with_second_connection(mut self, client: Client) -> Self {
        self.second = Some(lane::Lane::new(client));
        self
    }

    /// Splits each dedup stream's records by key over `client` too (see [`dedup_lane`]).
    pub fn with_dedup_connection(mut self, client: Client) -> Self {
        self.dedup_lane = Some(dedup_lane::DedupLane::spawn(client, self.format));
        self
    }

    async fn execute(&self, sql: &str) -> Result<()> {
        tracing::debug!(sql, "executing");
        self.client.batch_execute(sql).await.map_err(pg_error)
    }

    /// Claims the stream's table names: two streams may not write the same table.
    fn claim_tables(&mut self, stream: &StreamTables) -> Result<()> {
        for table in &stream.tables {
            let descriptor = &stream.descriptor;
            if let Some(other) = self
                .targets
                .insert(table.target.clone(), descriptor.clone())
            {
                return Err(Error::config(format!(
                    "streams '{other}' and '{descriptor}' would both be written to table {}",
                    table.target
                )));
            }
        }
        Ok(())
    }
}

#[cdk::async_trait]
impl BatchWriter for PgWriter {
    /// Plans the stream's tables, creates them, then readies their COPY statements.
    async fn open(
        &mut self,
        id: StreamId,
        stream: &ConfiguredAirbyteStream,
        plan: StreamPlan,
    ) -> Result<()> {
        debug_assert_eq!(id, self.streams.len());
        let tables = plan::plan_tables(&self.config, id, stream, plan)?;
        self.claim_tables(&tables)?;
        let created = self.create(&tables).await?;
        let plain_meta = Rows::plain_meta(stream.sync_id);
        let generation = plan.generation_id.unwrap_or(0);
        let StreamTables {
            descriptor,
            layout,
            dedup,
            tables,
            children,
            raw_table,
            ..
        } = tables;
        let mut ready = Vec::with_capacity(tables.len());
        for (table, created) in tables.into_iter().zip(created) {
            ready.push(
                self.prepare_copy(table, created, &plain_meta, generation)
                    .await?,
            );
        }
        let omit_meta: Vec<bool> = ready.iter().map(|t| t.copy_plain_sql.is_some()).collect();
        let split = match (&self.dedup_lane, &dedup, &layout) {
            (Some(_), Some(dedup), Some(layout)) => split::split_key(dedup, layout),
            _ => None,
        };
        if split.is_some() {
            self.open_dedup_lane(&ready, &plain_meta, generation)
                .await?;
        }
        tracing::info!(
            stream = %descriptor,
            table = %ready[0].target,
            replace = plan.mode.replaces(),
            dedup = dedup.is_some(),
            split = split.is_some(),
            raw = layout.is_none(),
            "stream ready"
        );
        self.streams.push(StreamWriter {
            descriptor,
            tables: ready,
            rows: Some(
                Rows::new(layout, self.format, stream.sync_id, generation, &omit_meta)
                    .with_raw_table(raw_table)
                    .with_split(split.clone()),
            ),
            dedup,
            children,
            staged: false,
            split: split.is_some(),
            staged_second: false,
            since_merge: 0,
            since_merge_second: 0,
            windows: Default::default(),
            records: 0,
        });
        Ok(())
    }

    /// Starts encoding `batch` on a blocking thread, then sends the rows of the previous
    /// batch into COPY: the loader decodes the next batch meanwhile. The first batch of a
    /// transaction is sent as soon as it is encoded, so that the server starts at once.
    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()> {
        let previous = self.encoded().await?;
        let first = previous.is_none() && !self.in_tx;
        let stream = &mut self.streams[id];
        stream.records += batch.len() as u64;
        if stream.dedup.is_some() {
            stream.staged = true;
        }
        let mut rows = stream
            .rows
            .take()
            .ok_or_else(|| Error::system("the row encoder of a stream was lost"))?;
        self.encoding = Some(tokio::task::spawn_blocking(move || {
            let encoded = rows.encode(&batch).map(|()| rows.take_all());
            (id, rows, encoded)
        }));
        match first {
            true => {
                let encoded = self.encoded().await?;
                self.send_encoded(encoded).await
            }
            false => self.send_encoded(previous).await,
        }
    }

    /// One transaction per connection holds every stream's rows: the second connection's
    /// COMMIT, then the first one's, cover them all.
    async fn commit(&mut self, _streams: &[StreamId]) -> Result<()> {
        let last = self.encoded().await?;
        self.send_encoded(last).await?;
        // The dedup lane merges and commits while the first connection does.
        let lane = self.commit_dedup_lane().await?;
        self.wait_merge().await?;
        self.commit_second().await?;
        if self.in_tx {
            self.finish_copy().await?;
            for id in 0..self.streams.len() {
                if std::mem::take(&mut self.streams[id].staged) {
                    self.merge(id).await?;
                }
            }
            self.execute("COMMIT").await?;
            self.in_tx = false;
        }
        match lane {
            Some(lane) => dedup_lane::committed(lane).await,
            None => Ok(()),
        }
    }

    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()> {
        if id >= self.streams.len() {
            return Ok(());
        }
        match outcome {
            Outcome::Failure => {
                self.rollback().await;
                self.drop_defaults(id).await;
                let stream = &self.streams[id];
                if stream.tables.iter().any(|t| t.tmp.is_some()) {
                    tracing::warn!(
                        stream = %stream.descriptor,
                        "sync failed: the previous table is kept; a retry of this generation resumes the load"
                    );
                }
                Ok(())
            }
            Outcome::Success => {
                self.commit(&[id]).await?;
                if self.streams[id].tables.iter().any(|t| t.tmp.is_some()) {
                    self.swap(id).await?;
                }
                self.drop_defaults(id).await;
                self.create_indexes(id).await?;
                let stream = &self.streams[id];
                tracing::info!(stream = %stream.descriptor, records = stream.records, "stream loaded");
                Ok(())
            }
        }
    }
}
