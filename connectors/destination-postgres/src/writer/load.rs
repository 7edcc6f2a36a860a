//! Loading: encoded rows go into COPY on the writer's one connection, inside one transaction
//! that `commit` ends after merging the dedup stages; a failure rolls it back. While a merge
//! runs on the server, rows are held (up to a bound) instead of waiting for it.

use bytes::Bytes;
use cdk::{Error, Result};
use futures::SinkExt;

use super::{Encoded, OpenCopy, PgWriter};
use crate::connect::pg_error;
use crate::copy::Encoder;

/// Encoded rows held while a merge runs on the server, at most.
const HOLD_WHILE_MERGING: usize = 64 << 20;

impl PgWriter {
    async fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.execute("BEGIN").await?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Sends encoded rows of table `t` of stream `id` (held while a merge runs, up to
    /// [`HOLD_WHILE_MERGING`] bytes).
    pub(super) async fn send(
        &mut self,
        id: usize,
        t: usize,
        plain: bool,
        data: Bytes,
    ) -> Result<()> {
        if self.merging.is_some() {
            let done = self.merging.as_ref().is_some_and(|m| m.is_finished());
            if !done && self.held_bytes + data.len() <= HOLD_WHILE_MERGING {
                self.held_bytes += data.len();
                self.held.push((id, t, plain, data));
                return Ok(());
            }
            self.wait_merge().await?;
        }
        self.copy_rows(id, t, plain, data).await
    }

    /// Sends encoded rows of table `t` of stream `id` into COPY, opening it if needed.
    pub(super) async fn copy_rows(
        &mut self,
        id: usize,
        t: usize,
        plain: bool,
        data: Bytes,
    ) -> Result<()> {
        let open =
            matches!(&self.copy, Some(c) if c.stream == id && c.table == t && c.plain == plain);
        if !open {
            self.finish_copy().await?;
            self.begin().await?;
            let table = &self.streams[id].tables[t];
            let sql = match (&table.copy_plain_sql, plain) {
                (Some(sql), true) => sql,
                _ => &table.copy_sql,
            };
            self.copy =
                Some(OpenCopy::start(&self.client, sql, self.format, (id, t, plain)).await?);
        }
        if let Some(copy) = &mut self.copy {
            copy.sink.send(data).await.map_err(pg_error)?;
        }
        Ok(())
    }

    /// Waits for the encoding job, if any, and puts its stream's encoder back; returns the
    /// stream and the rows it encoded.
    pub(super) async fn encoded(&mut self) -> Result<Option<(usize, Encoded)>> {
        let Some(job) = self.encoding.take() else {
            return Ok(None);
        };
        let (id, rows, encoded) = job
            .await
            .map_err(|e| Error::system(format!("the row encoder stopped: {e}")))?;
        self.streams[id].rows = Some(rows);
        Ok(Some((id, encoded?)))
    }

    /// Sends rows [`encoded`](Self::encoded) for stream `id` into their tables' COPY, then
    /// starts a background merge of its stage when one is due.
    pub(super) async fn send_encoded(&mut self, encoded: Option<(usize, Encoded)>) -> Result<()> {
        let Some((id, encoded)) = encoded else {
            return Ok(());
        };
        if self.takes_second_lane(id) {
            return self.send_second(id, encoded).await;
        }
        for (lane, t, plain, data) in encoded.chunks {
            if lane == 1 {
                self.send_dedup_lane(id, t, plain, data).await?;
            } else {
                self.send(id, t, plain, data).await?;
            }
        }
        let [first, second] = encoded.records;
        let stream = &mut self.streams[id];
        for (window, keys) in stream.windows.iter_mut().zip(&encoded.keys) {
            window.add(keys);
        }
        self.merge_dedup_lane_if_due(id, second).await?;
        self.merge_if_due(id, first).await
    }

    pub(super) async fn finish_copy(&mut self) -> Result<()> {
        let Some(mut copy) = self.copy.take() else {
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

    pub(super) async fn rollback(&mut self) {
        self.rollback_second().await;
        self.rollback_dedup_lane().await;
        // Dropping an unfinished COPY aborts it; a running encoding job or merge is left to
        // end (the ROLLBACK follows it on the connection).
        self.copy = None;
        self.encoding = None;
        self.merging = None;
        self.held.clear();
        self.held_bytes = 0;
        if self.in_tx {
            self.in_tx = false;
            if let Err(e) = self.client.batch_execute("ROLLBACK").await {
                tracing::warn!("rollback failed: {e}");
            }
        }
    }
}
