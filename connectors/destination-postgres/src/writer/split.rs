//! Splitting dedup streams over the [dedup lane](super::dedup_lane): which streams split
//! (by which key cells), creating their stages there, queueing their rows and merges, and the
//! lane's part of commit and rollback.

use bytes::Bytes;
use cdk::{Error, Result};
use tokio::sync::oneshot;

use super::dedup_lane::Job;
use super::{PgWriter, Table};
use crate::names::quote;
use crate::schema::StreamLayout;
use crate::sql::{self, Dedup};
use crate::value;

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
        generation: i64,
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
            lane.execute(
                sql::set_meta_default(&quote(stage), plain_meta, generation),
                context,
            )
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
