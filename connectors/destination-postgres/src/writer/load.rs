//! Loading: batches go into COPY on the writer's one connection, inside one transaction that
//! `commit` ends after merging the dedup stages; a failure rolls it back.

use bytes::Bytes;
use cdk::{Error, Result};
use futures::SinkExt;

use super::{OpenCopy, PgWriter};
use crate::connect::pg_error;
use crate::copy::Encoder;
use crate::sql;

impl PgWriter {
    async fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.execute("BEGIN").await?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Sends encoded rows of table `t` of stream `id`, opening its COPY if needed.
    pub(super) async fn send(
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
            let sink = self
                .client
                .copy_in::<_, Bytes>(sql.as_str())
                .await
                .map_err(pg_error)?;
            let mut sink = Box::pin(sink);
            let header = Encoder::header(self.format);
            if !header.is_empty() {
                sink.send(header).await.map_err(pg_error)?;
            }
            self.copy = Some(OpenCopy {
                stream: id,
                table: t,
                plain,
                sink,
            });
        }
        if let Some(copy) = &mut self.copy {
            copy.sink.send(data).await.map_err(pg_error)?;
        }
        Ok(())
    }

    /// Waits for the encoding job, if any, and puts its stream's encoder back; returns the
    /// stream and the rows it encoded.
    pub(super) async fn encoded(&mut self) -> Result<Option<(usize, Vec<(usize, bool, Bytes)>)>> {
        let Some(job) = self.encoding.take() else {
            return Ok(None);
        };
        let (id, rows, encoded) = job
            .await
            .map_err(|e| Error::system(format!("the row encoder stopped: {e}")))?;
        self.streams[id].rows = Some(rows);
        Ok(Some((id, encoded?)))
    }

    /// Sends rows [`encoded`](Self::encoded) for stream `id` into their tables' COPY.
    pub(super) async fn send_encoded(
        &mut self,
        encoded: Option<(usize, Vec<(usize, bool, Bytes)>)>,
    ) -> Result<()> {
        let Some((id, chunks)) = encoded else {
            return Ok(());
        };
        for (t, plain, data) in chunks {
            self.send(id, t, plain, data).await?;
        }
        Ok(())
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

    /// Merges staged rows of stream `id` into its table (inside the open transaction).
    pub(super) async fn merge(&mut self, id: usize) -> Result<()> {
        let stream = &self.streams[id];
        let Some(dedup) = &stream.dedup else {
            return Ok(());
        };
        let main = &stream.tables[0];
        let stage = main.stage.as_deref().unwrap_or_default();
        let mut script = vec![sql::MERGE_SETTINGS.to_string()];
        let children = &stream.tables[1..1 + stream.children];
        if !children.is_empty() {
            script.push(sql::touched_rows(
                &main.load_into,
                stage,
                &dedup.primary_key,
            ));
        }
        script.push(sql::upsert(&main.load_into, stage, &main.columns, dedup));
        for child in children {
            script.push(sql::replace_children(
                &main.load_into,
                &child.load_into,
                child.stage.as_deref().unwrap_or_default(),
                &child.columns,
            ));
        }
        let script = script.join(";\n");
        let descriptor = stream.descriptor.clone();
        self.execute(&script)
            .await
            .map_err(|e| e.context(format!("cannot deduplicate stream '{descriptor}'")))
    }

    pub(super) async fn rollback(&mut self) {
        // Dropping an unfinished COPY aborts it; a running encoding job is left to end.
        self.copy = None;
        self.encoding = None;
        if self.in_tx {
            self.in_tx = false;
            if let Err(e) = self.client.batch_execute("ROLLBACK").await {
                tracing::warn!("rollback failed: {e}");
            }
        }
    }
}
