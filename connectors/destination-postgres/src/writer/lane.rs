//! A second connection for the rows of streams without a stage (append, overwrite, raw):
//! encoded batches alternate between the two connections, so two server processes parse and
//! store them at once. It has its own transaction, committed with the first one (before the
//! states are acknowledged); dedup stages stay on the first connection (they are temporary
//! tables of its session).

use cdk::Result;
use futures::SinkExt;
use tokio_postgres::Client;

use super::{Encoded, OpenCopy, PgWriter};
use crate::connect::pg_error;
use crate::copy::Encoder;

/// The second connection, with its open COPY and transaction.
pub(super) struct Lane {
    pub client: Client,
    pub copy: Option<OpenCopy>,
    pub in_tx: bool,
}

impl Lane {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            copy: None,
            in_tx: false,
        }
    }
}

impl PgWriter {
    /// Whether the rows of this job go to the second connection (every other job of a
    /// stream without a stage, when there is a second connection).
    pub(super) fn takes_second_lane(&mut self, id: usize) -> bool {
        if self.second.is_none() || self.streams[id].dedup.is_some() {
            return false;
        }
        self.alternate = !self.alternate;
        self.alternate
    }

    /// Sends a job's rows into COPY on the second connection.
    pub(super) async fn send_second(&mut self, id: usize, encoded: Encoded) -> Result<()> {
        for (_, t, plain, data) in encoded.chunks {
            let open = matches!(
                self.second.as_ref().and_then(|l| l.copy.as_ref()),
                Some(c) if c.stream == id && c.table == t && c.plain == plain
            );
            if !open {
                self.finish_second().await?;
                let table = &self.streams[id].tables[t];
                let sql = match (&table.copy_plain_sql, plain) {
                    (Some(sql), true) => sql.clone(),
                    _ => table.copy_sql.clone(),
                };
                let Some(lane) = self.second.as_mut() else {
                    return Ok(());
                };
                if !lane.in_tx {
                    lane.client.batch_execute("BEGIN").await.map_err(pg_error)?;
                    lane.in_tx = true;
                }
                lane.copy =
                    Some(OpenCopy::start(&lane.client, &sql, self.format, (id, t, plain)).await?);
            }
            if let Some(copy) = self.second.as_mut().and_then(|l| l.copy.as_mut()) {
                copy.sink.send(data).await.map_err(pg_error)?;
            }
        }
        Ok(())
    }

    /// Ends the second connection's COPY, if one is open.
    pub(super) async fn finish_second(&mut self) -> Result<()> {
        let Some(mut copy) = self.second.as_mut().and_then(|l| l.copy.take()) else {
            return Ok(());
        };
        let trailer = Encoder::trailer(self.format);
        if !trailer.is_empty() {
            copy.sink.send(trailer).await.map_err(pg_error)?;
        }
        let table = &self.streams[copy.stream].tables[copy.table];
        copy.sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| pg_error(e).context(format!("cannot load into {}", table.load_into)))?;
        Ok(())
    }

    /// Ends the second connection's COPY and commits its transaction.
    pub(super) async fn commit_second(&mut self) -> Result<()> {
        self.finish_second().await?;
        if let Some(lane) = self.second.as_mut()
            && std::mem::take(&mut lane.in_tx)
        {
            lane.client
                .batch_execute("COMMIT")
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }

    /// Abandons the second connection's COPY and transaction.
    pub(super) async fn rollback_second(&mut self) {
        let Some(lane) = self.second.as_mut() else {
            return;
        };
        lane.copy = None;
        if std::mem::take(&mut lane.in_tx)
            && let Err(e) = lane.client.batch_execute("ROLLBACK").await
        {
            tracing::warn!("rollback failed: {e}");
        }
    }
}
