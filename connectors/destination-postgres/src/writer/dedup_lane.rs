//! A second connection for dedup streams: records are split by a hash of their primary key
//! (see [`Rows::with_split`](crate::rows::Rows::with_split)); one half is staged and merged on
//! the writer's first connection, the other here, so two server processes parse, stage and
//! merge at once. Keys never cross lanes, so the two transactions never touch the same key.
//!
//! The connection is driven by its own task, fed jobs in order (rows, merges, commit): a merge
//! running here holds up neither the loader nor the first connection. Its transaction commits
//! before `commit` returns (states are acknowledged only after both lanes committed); a failed
//! job fails the lane's next commit.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cdk::{Error, Result};
use futures::SinkExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_postgres::{Client, CopyInSink};

use super::{OpenCopy, PgWriter, Table};
use crate::connect::pg_error;
use crate::copy::{Encoder, Format};
use crate::names::quote;
use crate::schema::StreamLayout;
use crate::sql::{self, Dedup};
use crate::value;

/// Jobs queued for the lane at most.
const QUEUED_JOBS: usize = 256;
/// Encoded rows queued for the lane at most, in KiB: enough to go on loading while the lane
/// merges (the first connection holds up to 64 MiB meanwhile, see `load`).
const QUEUED_KIB: usize = 32 << 10;

/// Work for the lane's connection, done in order.
pub(super) enum Job {
    /// Rows for `COPY` statement `sql`, into `table` (for messages), as the COPY of
    /// `(stream, table, plain)`.
    Rows {
        copy: (usize, usize, bool),
        sql: String,
        table: String,
        data: Bytes,
        /// The rows' share of [`QUEUED_KIB`], given back once they are sent.
        queued: OwnedSemaphorePermit,
    },
    /// A script run inside the lane's transaction (a merge), after the open COPY ends; a
    /// failure fails the next commit. With `reply`, the result goes back instead (statements
    /// at open, outside any transaction).
    Execute {
        sql: String,
        context: String,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    /// Ends the COPY and commits (or reports the first failure and rolls back).
    Commit(oneshot::Sender<Result<()>>),
    /// Abandons the COPY and the transaction.
    Rollback(oneshot::Sender<()>),
}

/// The handle of the lane's task.
pub(super) struct DedupLane {
    jobs: mpsc::Sender<Job>,
    /// KiB of rows that may still be queued.
    room: Arc<Semaphore>,
    /// Whether the session's temporary-table buffers were sized for the stages.
    pub stages_sized: bool,
}

impl DedupLane {
    /// Starts the task driving `client`.
    pub fn spawn(client: Client, format: Format) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUED_JOBS);
        let worker = Worker {
            client,
            format,
            copy: None,
            in_tx: false,
            failed: None,
        };
        tokio::spawn(worker.run(queue));
        Self {
            jobs,
            room: Arc::new(Semaphore::new(QUEUED_KIB)),
            stages_sized: false,
        }
    }

    /// Waits until `bytes` of rows may be queued; the permit gives the room back.
    pub async fn room_for(&self, bytes: usize) -> Result<OwnedSemaphorePermit> {
        let kib = bytes.div_ceil(1024).clamp(1, QUEUED_KIB) as u32;
        self.room
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| Error::system("the second dedup connection stopped"))
    }

    /// Queues `job` (waiting while the queue is full).
    pub async fn send(&self, job: Job) -> Result<()> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::system("the second dedup connection stopped"))
    }

    /// Runs `sql` on the lane and waits for its result.
    pub async fn execute(&self, sql: String, context: &str) -> Result<()> {
        let (reply, result) = oneshot::channel();
        self.send(Job::Execute {
            sql,
            context: context.to_string(),
            reply: Some(reply),
        })
        .await?;
        result
            .await
            .map_err(|_| Error::system("the second dedup connection stopped"))?
    }

    /// Queues the commit; the receiver gets its result.
    pub async fn commit(&self) -> Result<oneshot::Receiver<Result<()>>> {
        let (reply, result) = oneshot::channel();
        self.send(Job::Commit(reply)).await?;
        Ok(result)
    }

    /// Abandons the lane's COPY and transaction, and waits until it did.
    pub async fn rollback(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Job::Rollback(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Waits for a commit queued with [`DedupLane::commit`].
pub(super) async fn committed(result: oneshot::Receiver<Result<()>>) -> Result<()> {
    result
        .await
        .map_err(|_| Error::system("the second dedup connection stopped"))?
}

struct Worker {
    client: Client,
    format: Format,
    copy: Option<(OpenCopy, String)>,
    in_tx: bool,
    failed: Option<Error>,
}

impl Worker {
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        while let Some(job) = queue.recv().await {
            self.handle(job).await;
        }
    }

    async fn handle(&mut self, job: Job) {
        match job {
            Job::Rows {
                copy,
                sql,
                table,
                data,
                queued: _queued,
            } => {
                if self.failed.is_none()
                    && let Err(e) = self.copy_rows(copy, &sql, table, data).await
                {
                    self.failed = Some(e);
                }
            }
            Job::Execute {
                sql,
                context,
                reply,
            } => {
                let result = match self.failed.clone() {
                    Some(e) => Err(e),
                    None => self.execute(&sql).await.map_err(|e| e.context(context)),
                };
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            self.failed.get_or_insert(e);
                        }
                    }
                }
            }
            Job::Commit(reply) => {
                let result = self.commit().await;
                let _ = reply.send(result);
            }
            Job::Rollback(reply) => {
                self.rollback().await;
                let _ = reply.send(());
            }
        }
    }

    async fn copy_rows(
        &mut self,
        key: (usize, usize, bool),
        sql: &str,
        table: String,
        data: Bytes,
    ) -> Result<()> {
        let open = matches!(&self.copy, Some((c, _)) if (c.stream, c.table, c.plain) == key);
        if !open {
            self.finish_copy().await?;
            if !self.in_tx {
                self.client.batch_execute("BEGIN").await.map_err(pg_error)?;
                self.in_tx = true;
            }
            let copy = OpenCopy::start(&self.client, sql, self.format, key).await?;
            self.copy = Some((copy, table));
        }
        if let Some((copy, _)) = &mut self.copy {
            copy.sink.send(data).await.map_err(pg_error)?;
        }
        Ok(())
    }

    async fn finish_copy(&mut self) -> Result<()> {
        let Some((mut copy, table)) = self.copy.take() else {
            return Ok(());
        };
        finish(&mut copy.sink, self.format)
            .await
            .map_err(|e| e.context(format!("cannot load into {table}")))
    }

    async fn execute(&mut self, sql: &str) -> Result<()> {
        self.finish_copy().await?;
        tracing::debug!(sql, "executing on the second dedup connection");
        self.client.batch_execute(sql).await.map_err(pg_error)
    }

    async fn commit(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            self.rollback().await;
            return Err(e);
        }
        if let Err(e) = self.finish_copy().await {
            self.rollback().await;
            return Err(e);
        }
        if std::mem::take(&mut self.in_tx) {
            self.client
                .batch_execute("COMMIT")
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }

    async fn rollback(&mut self) {
        // Dropping an unfinished COPY aborts it.
        self.copy = None;
        self.failed = None;
        if std::mem::take(&mut self.in_tx)
            && let Err(e) = self.client.batch_execute("ROLLBACK").await
        {
            tracing::warn!("rollback failed: {e}");
        }
    }
}

/// Sends the format's trailer and ends a COPY.
async fn finish(sink: &mut Pin<Box<CopyInSink<Bytes>>>, format: Format) -> Result<()> {
    let trailer = Encoder::trailer(format);
    if !trailer.is_empty() {
        sink.send(trailer).await.map_err(pg_error)?;
    }
    sink.as_mut().finish().await.map_err(pg_error)?;
    Ok(())
}

/// The cells of the main table holding `dedup`'s primary key, when its rows may be split by
/// key (every key column of a type whose equal values encode alike).
pub(super) fn split_key(dedup: &Dedup, layout: &StreamLayout) -> Option<Vec<usize>> {
    let columns = &layout.main.columns;
    dedup
        .primary_key
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|c| &c.name == name && value::splits_by_key(c.ty))
        })
        .collect()
}

impl PgWriter {
    /// Creates the stream's stages on the dedup lane (temporary tables of its session), with
    /// the same `_airbyte_meta` default as the first connection's.
    pub(super) async fn open_dedup_lane(
        &mut self,
        tables: &[Table],
        plain_meta: &str,
    ) -> Result<()> {
        let Some(lane) = self.dedup_lane.as_mut() else {
            return Ok(());
        };
        let context = "cannot prepare the second dedup connection";
        if !std::mem::replace(&mut lane.stages_sized, true)
            && let Err(e) = lane.execute(sql::STAGE_BUFFERS.to_string(), context).await
        {
            tracing::debug!("cannot size the stages' buffers: {e}");
        }
        for table in tables {
            let Some(stage) = &table.stage else { continue };
            let defs = &table.stage_columns;
            lane.execute(sql::create_stage(stage, defs), context)
                .await?;
            lane.execute(sql::set_meta_default(&quote(stage), plain_meta), context)
                .await?;
        }
        Ok(())
    }

    /// Queues rows of table `t` of stream `id` for the dedup lane.
    pub(super) async fn send_dedup_lane(
        &mut self,
        id: usize,
        t: usize,
        plain: bool,
        data: Bytes,
    ) -> Result<()> {
        let table = &self.streams[id].tables[t];
        let sql = match (&table.copy_plain_sql, plain) {
            (Some(sql), true) => sql.clone(),
            _ => table.copy_sql.clone(),
        };
        let table = table.load_into.to_string();
        self.streams[id].staged_second = true;
        let Some(lane) = &self.dedup_lane else {
            return Err(Error::system(
                "rows for a second dedup connection that is not open",
            ));
        };
        let queued = lane.room_for(data.len()).await?;
        lane.send(Job::Rows {
            copy: (id, t, plain),
            sql,
            table,
            data,
            queued,
        })
        .await
    }

    /// After `records` more records of stream `id` went to the dedup lane: queues a merge of
    /// its stages there when it staged [`merge_every`](super::merge::merge_every) records
    /// since its last one.
    pub(super) async fn merge_dedup_lane_if_due(&mut self, id: usize, records: u64) -> Result<()> {
        let stream = &mut self.streams[id];
        if !stream.split {
            return Ok(());
        }
        stream.since_merge_second += records;
        if stream.since_merge_second < self.merge_every {
            return Ok(());
        }
        stream.since_merge_second = 0;
        self.queue_dedup_lane_merge(id, true).await
    }

    async fn queue_dedup_lane_merge(&mut self, id: usize, empty_stages: bool) -> Result<()> {
        let sql = self.merge_script(id, 1, empty_stages);
        let (Some(lane), Some(sql)) = (&self.dedup_lane, sql) else {
            return Ok(());
        };
        let descriptor = &self.streams[id].descriptor;
        lane.send(Job::Execute {
            sql,
            context: format!("cannot deduplicate stream '{descriptor}'"),
            reply: None,
        })
        .await
    }

    /// Queues the final merges of the streams staged on the dedup lane and its commit;
    /// `None` when there is no dedup lane.
    pub(super) async fn commit_dedup_lane(
        &mut self,
    ) -> Result<Option<oneshot::Receiver<Result<()>>>> {
        if self.dedup_lane.is_none() {
            return Ok(None);
        }
        for id in 0..self.streams.len() {
            if std::mem::take(&mut self.streams[id].staged_second) {
                self.streams[id].since_merge_second = 0;
                self.queue_dedup_lane_merge(id, false).await?;
            }
        }
        match &self.dedup_lane {
            Some(lane) => lane.commit().await.map(Some),
            None => Ok(None),
        }
    }

    /// Abandons the dedup lane's COPY and transaction.
    pub(super) async fn rollback_dedup_lane(&mut self) {
        for stream in &mut self.streams {
            stream.staged_second = false;
            stream.since_merge_second = 0;
            stream.windows = Default::default();
        }
        if let Some(lane) = &self.dedup_lane {
            lane.rollback().await;
        }
    }
}
