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

use super::OpenCopy;
use crate::connect::pg_error;
use crate::copy::{Encoder, Format};

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
