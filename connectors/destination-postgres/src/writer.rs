//! The [`BatchWriter`]: prepares each stream's tables, streams batches into COPY on one
//! connection inside one transaction, runs the dedup upserts and COMMITs on `commit`, and
//! swaps overwritten tables in on a successful `close`.

use std::collections::HashMap;
use std::pin::Pin;

use bytes::Bytes;
use cdk::destination::{Batch, BatchWriter, Outcome, StreamId};
use cdk::protocol::*;
use cdk::{Error, Result};
use futures::SinkExt;
use tokio_postgres::{Client, CopyInSink};

use crate::config::{CdcDeletionMode, PostgresConfig};
use crate::connect::pg_error;
use crate::copy::{Encoder, Format};
use crate::names::{TableName, compatible, raw_table_name};
use crate::rows::Rows;
use crate::schema::{self, CDC_DELETED_AT, META_COLUMNS, PgType, StreamLayout};
use crate::sql::{self, ColumnDef, Dedup};

/// Writes every configured stream over one connection.
pub struct PgWriter {
    client: Client,
    config: PostgresConfig,
    format: Format,
    streams: Vec<StreamWriter>,
    in_tx: bool,
    copy: Option<OpenCopy>,
    safe_cast_ready: bool,
    targets: HashMap<TableName, StreamDescriptor>,
}

struct OpenCopy {
    stream: usize,
    table: usize,
    /// Whether this COPY leaves `_airbyte_meta` to its default.
    plain: bool,
    sink: Pin<Box<CopyInSink<Bytes>>>,
}

/// One table of a stream (the main table or a child table) and where its rows go.
struct Table {
    /// The table readers see.
    target: TableName,
    /// Overwrite: the table loaded and swapped in at the end.
    tmp: Option<TableName>,
    /// Dedup: the session's staging table, merged into `upsert_into` on commit.
    stage: Option<String>,
    /// The final table, or `tmp` when overwriting.
    load_into: TableName,
    columns: Vec<String>,
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
    rows: Rows,
    dedup: Option<Dedup>,
    staged: bool,
    records: u64,
}

impl PgWriter {
    pub fn new(client: Client, config: PostgresConfig) -> Self {
        Self {
            client,
            config,
            format: Format::from_env(),
            streams: Vec::new(),
            in_tx: false,
            copy: None,
            safe_cast_ready: false,
            targets: HashMap::new(),
        }
    }

    async fn execute(&self, sql: &str) -> Result<()> {
        tracing::debug!(sql, "executing");
        self.client.batch_execute(sql).await.map_err(pg_error)
    }

    /// Creates `table` with `columns`, or brings an existing one up to date: missing columns
    /// are added, columns whose type changed are converted; extra columns are kept.
    /// Returns whether the table was created.
    async fn ensure_table(&mut self, table: &TableName, columns: &[ColumnDef]) -> Result<bool> {
        let existing: Vec<(String, String)> = self
            .client
            .query(sql::TABLE_COLUMNS, &[&table.schema, &table.name])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if existing.is_empty() {
            self.execute(&sql::create_table(table, columns)).await?;
            return Ok(true);
        }
        let types: HashMap<&str, &str> = existing
            .iter()
            .map(|(n, t)| (n.as_str(), t.split('(').next().unwrap_or(t).trim()))
            .collect();
        let mut missing = Vec::new();
        let mut changed = Vec::new();
        for column in columns {
            match types.get(column.name.as_str()) {
                None => missing.push(column.clone()),
                Some(&old) if old != column.ty.catalog_name() => {
                    changed.push((column.name.clone(), old.to_string(), column.ty));
                }
                Some(_) => {}
            }
        }
        if missing.is_empty() && changed.is_empty() {
            return Ok(false);
        }
        if !changed.is_empty() && !self.safe_cast_ready {
            self.execute(sql::SAFE_CAST_FUNCTION).await?;
            self.safe_cast_ready = true;
        }
        for (name, old, new) in &changed {
            tracing::info!(table = %table, column = %name, from = %old, to = new.ddl(), "changing a column's type");
        }
        for c in &missing {
            tracing::info!(table = %table, column = %c.name, "adding a column");
        }
        self.execute(&sql::evolve(table, &missing, &changed))
            .await?;
        Ok(false)
    }

    /// Makes `tmp` ready for an overwrite: kept when it holds only rows of this generation
    /// (a retry resumes), else recreated empty.
    async fn prepare_tmp(
        &mut self,
        tmp: &TableName,
        columns: &[ColumnDef],
        generation: Option<i64>,
    ) -> Result<()> {
        let exists = !self
            .client
            .query(sql::TABLE_COLUMNS, &[&tmp.schema, &tmp.name])
            .await
            .map_err(pg_error)?
            .is_empty();
        let mut keep = false;
        if exists && let Some(generation) = generation {
            let other = format!(
                "SELECT 1 FROM {} WHERE \"_airbyte_generation_id\" IS DISTINCT FROM $1 LIMIT 1",
                tmp.sql()
            );
            keep = self
                .client
                .query_opt(&other, &[&generation])
                .await
                .map_err(pg_error)?
                .is_none();
        }
        if exists && !keep {
            self.execute(&sql::drop_table(tmp, true)).await?;
        }
        if keep {
            tracing::info!(table = %tmp, generation, "resuming an interrupted overwrite");
        }
        self.ensure_table(tmp, columns).await.map(|_| ())
    }

    async fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.execute("BEGIN").await?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Sends encoded rows of table `t` of stream `id`, opening its COPY if needed.
    async fn send(&mut self, id: usize, t: usize, plain: bool, data: Bytes) -> Result<()> {
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

    async fn finish_copy(&mut self) -> Result<()> {
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
    async fn merge(&mut self, id: usize) -> Result<()> {
        let stream = &self.streams[id];
        let Some(dedup) = &stream.dedup else {
            return Ok(());
        };
        let main = &stream.tables[0];
        let stage = main.stage.as_deref().unwrap_or_default();
        let mut script = Vec::new();
        if stream.tables.len() > 1 {
            script.push(sql::touched_rows(
                &main.load_into,
                stage,
                &dedup.primary_key,
            ));
        }
        script.push(sql::upsert(&main.load_into, stage, &main.columns, dedup));
        for child in &stream.tables[1..] {
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

    async fn rollback(&mut self) {
        // Dropping an unfinished COPY aborts it.
        self.copy = None;
        if self.in_tx {
            self.in_tx = false;
            if let Err(e) = self.client.batch_execute("ROLLBACK").await {
                tracing::warn!("rollback failed: {e}");
            }
        }
    }

    /// Removes the `_airbyte_meta` defaults set on final tables this sync created. Not worth
    /// failing a sync for (or waiting long on a reader's lock).
    async fn drop_defaults(&self, id: usize) {
        for table in &self.streams[id].tables {
            if let Some(name) = &table.drop_default {
                let script = format!(
                    "SET lock_timeout = '5s'; {}; RESET lock_timeout",
                    sql::drop_meta_default(name)
                );
                if let Err(e) = self.execute(&script).await {
                    tracing::warn!(table = %name, "cannot remove the _airbyte_meta default: {e}");
                }
            }
        }
    }

    async fn create_indexes(&self, id: usize) -> Result<()> {
        for table in &self.streams[id].tables {
            for (suffix, columns) in &table.indexes {
                self.execute(&sql::create_index(&table.target, suffix, columns))
                    .await?;
            }
        }
        Ok(())
    }

    /// Replaces each target table with its loaded tmp table, in one transaction.
    async fn swap(&mut self, id: usize) -> Result<()> {
        let stream = &self.streams[id];
        let mut script = vec!["BEGIN".to_string()];
        for table in &stream.tables {
            let Some(tmp) = &table.tmp else { continue };
            script.push(sql::drop_meta_default(tmp));
            script.extend(sql::swap(tmp, &table.target, self.config.drop_cascade));
            for suffix in &table.open_indexes {
                script.push(sql::rename_index(&table.target, tmp, suffix));
            }
        }
        script.push("COMMIT".into());
        let descriptor = stream.descriptor.clone();
        tracing::info!(stream = %descriptor, "swapping in the overwritten tables");
        self.execute(&script.join(";\n")).await.map_err(|e| {
            e.context(format!(
                "cannot replace the tables of stream '{descriptor}'"
            ))
        })
    }
}

/// The sync's mode for a stream: (truncate, dedup requested).
fn sync_mode(stream: &ConfiguredAirbyteStream) -> Result<(bool, bool)> {
    let name = stream.descriptor();
    if let Some(min) = stream.minimum_generation_id
        && min != 0
        && Some(min) != stream.generation_id
    {
        return Err(Error::config(format!(
            "stream '{name}': minimum_generation_id {min} is neither 0 nor the generation_id {}; \
             hybrid refreshes are not supported",
            stream
                .generation_id
                .map_or("(none)".to_string(), |g| g.to_string())
        )));
    }
    let truncate = stream.is_truncate();
    match stream.destination_sync_mode {
        DestinationSyncMode::Append => Ok((truncate, false)),
        DestinationSyncMode::Overwrite => Ok((true, false)),
        DestinationSyncMode::AppendDedup => Ok((truncate, true)),
        other => Err(Error::config(format!(
            "stream '{name}': destination sync mode '{}' is not supported (append, overwrite and \
             append_dedup are)",
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ))),
    }
}

fn meta_defs() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(META_COLUMNS[0], PgType::Varchar, true),
        ColumnDef::new(META_COLUMNS[1], PgType::TimestampTz, true),
        ColumnDef::new(META_COLUMNS[2], PgType::Jsonb, true),
        ColumnDef::new(META_COLUMNS[3], PgType::Bigint, false),
    ]
}

/// The column a field path lands in, or a config error naming `what`.
fn column_for(layout: &StreamLayout, path: &[String], what: &str, stream: &str) -> Result<String> {
    layout
        .main
        .column_of(path)
        .map(|c| layout.main.columns[c].name.clone())
        .ok_or_else(|| {
            Error::config(format!(
                "stream '{stream}': the {what} field '{}' is not a scalar field of the stream's schema",
                path.join(".")
            ))
        })
}

#[cdk::async_trait]
impl BatchWriter for PgWriter {
    async fn open(&mut self, id: StreamId, stream: &ConfiguredAirbyteStream) -> Result<()> {
        debug_assert_eq!(id, self.streams.len());
        let descriptor = stream.descriptor();
        let (truncate, dedup_requested) = sync_mode(stream)?;
        let raw = self.config.disable_type_dedupe;
        let namespace = stream
            .stream
            .namespace
            .as_deref()
            .unwrap_or(&self.config.schema);
        let internal = compatible(&self.config.raw_data_schema);
        let (schema, name) = if raw {
            (
                compatible(&self.config.raw_data_schema.to_lowercase()),
                compatible(&raw_table_name(namespace, &stream.stream.name).to_lowercase()),
            )
        } else {
            (compatible(namespace), compatible(&stream.stream.name))
        };
        let target = TableName::new(&schema, &name);
        if let Some(other) = self.targets.insert(target.clone(), descriptor.clone()) {
            return Err(Error::config(format!(
                "streams '{other}' and '{descriptor}' would both be written to table {target}"
            )));
        }
        let layout = (!raw)
            .then(|| schema::layout(&name, &stream.stream.json_schema, self.config.flattened()));

        let dedup = match (&layout, dedup_requested) {
            (Some(layout), true) => {
                let stream_name = descriptor.to_string();
                let keys = stream.resolved_primary_key();
                if keys.is_empty() {
                    return Err(Error::config(format!(
                        "stream '{descriptor}': append_dedup needs a primary key"
                    )));
                }
                let primary_key = keys
                    .iter()
                    .map(|k| column_for(layout, k, "primary key", &stream_name))
                    .collect::<Result<Vec<_>>>()?;
                let cursor = stream
                    .resolved_cursor_field()
                    .map(|c| column_for(layout, c, "cursor", &stream_name))
                    .transpose()?;
                let cdc_delete = match self.config.cdc_deletion_mode {
                    CdcDeletionMode::HardDelete => layout
                        .main
                        .column_of(&[CDC_DELETED_AT.to_string()])
                        .map(|c| layout.main.columns[c].name.clone()),
                    CdcDeletionMode::SoftDelete => None,
                };
                Some(Dedup {
                    primary_key,
                    cursor,
                    cdc_delete,
                })
            }
            _ => None,
        };

        // Every table of the stream: (name, user columns).
        let mut tables: Vec<(String, Vec<ColumnDef>)> = Vec::new();
        match &layout {
            None => {
                let mut defs = meta_defs();
                defs.push(ColumnDef::new(
                    "_airbyte_loaded_at",
                    PgType::TimestampTz,
                    false,
                ));
                defs.push(ColumnDef::new("_airbyte_data", PgType::Jsonb, true));
                tables.push((name.clone(), defs));
            }
            Some(layout) => {
                let user = |l: &schema::Layout| {
                    let mut defs = meta_defs();
                    defs.extend(
                        l.columns
                            .iter()
                            .map(|c| ColumnDef::new(&c.name, c.ty, false)),
                    );
                    defs
                };
                tables.push((name.clone(), user(&layout.main)));
                for child in &layout.children {
                    tables.push((child.name.clone(), user(&child.layout)));
                }
            }
        }

        self.execute(&sql::create_schema(&schema)).await?;
        if truncate || raw {
            self.execute(&sql::create_schema(&internal)).await?;
        }
        for (child, _) in &tables[1..] {
            let table = TableName::new(&schema, child);
            if let Some(other) = self.targets.insert(table.clone(), descriptor.clone()) {
                return Err(Error::config(format!(
                    "streams '{other}' and '{descriptor}' would both be written to table {table}"
                )));
            }
        }
        let flattened_children = tables.len() > 1;
        let plain_meta = Rows::plain_meta(stream.sync_id);
        let mut built = Vec::new();
        for (t, (table_name, defs)) in tables.iter().enumerate() {
            let target = TableName::new(&schema, table_name);
            let (load_into, tmp, created) = if truncate {
                let tmp = TableName::new(
                    &internal,
                    compatible(&format!("{schema}_{table_name}_airbyte_tmp")),
                );
                self.prepare_tmp(&tmp, defs, stream.generation_id).await?;
                (tmp.clone(), Some(tmp), true)
            } else {
                let created = self.ensure_table(&target, defs).await?;
                (target.clone(), None, created)
            };
            let columns: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
            let mut indexes = vec![("extracted_at", vec!["_airbyte_extracted_at".to_string()])];
            let mut open_indexes = Vec::new();
            let stage = match &dedup {
                Some(dedup) => {
                    let stage = format!("_airbyte_stage_{id}_{t}");
                    self.execute(&sql::create_stage(&stage, defs)).await?;
                    let mut needed: Vec<(&'static str, Vec<String>)> = Vec::new();
                    if t == 0 {
                        needed.push(("pk", dedup.primary_key.clone()));
                        if let Some(cursor) = &dedup.cursor {
                            needed.push(("cursor", vec![cursor.clone()]));
                        }
                    }
                    if flattened_children {
                        needed.push(("raw_id", vec!["_airbyte_raw_id".to_string()]));
                    }
                    for (suffix, columns) in needed {
                        self.execute(&sql::create_index(&load_into, suffix, &columns))
                            .await?;
                        open_indexes.push(suffix);
                        indexes.push((suffix, columns));
                    }
                    Some(stage)
                }
                None => None,
            };
            let copy_into = match &stage {
                Some(stage) => crate::names::quote(stage),
                None => load_into.sql(),
            };
            // Where rows may leave `_airbyte_meta` to a default: tables nobody else reads yet.
            let default_on = match &stage {
                Some(_) => Some(copy_into.clone()),
                None if created => Some(load_into.sql()),
                None => None,
            };
            if let Some(table_sql) = &default_on {
                self.execute(&sql::set_meta_default(table_sql, &plain_meta))
                    .await?;
            }
            let plain_columns: Vec<String> = columns
                .iter()
                .filter(|c| c.as_str() != META_COLUMNS[2])
                .cloned()
                .collect();
            built.push(Table {
                copy_plain_sql: default_on
                    .is_some()
                    .then(|| sql::copy(&copy_into, &plain_columns, self.format)),
                drop_default: (stage.is_none() && created && tmp.is_none())
                    .then(|| load_into.clone()),
                copy_sql: sql::copy(&copy_into, &columns, self.format),
                target,
                tmp,
                stage,
                load_into,
                columns,
                indexes,
                open_indexes,
            });
        }
        let generation = stream.generation_id.unwrap_or(0);
        let omit_meta: Vec<bool> = built.iter().map(|t| t.copy_plain_sql.is_some()).collect();
        tracing::info!(
            stream = %descriptor,
            table = %built[0].target,
            truncate,
            dedup = dedup.is_some(),
            raw,
            "stream ready"
        );
        self.streams.push(StreamWriter {
            descriptor,
            tables: built,
            rows: Rows::new(layout, self.format, stream.sync_id, generation, &omit_meta),
            dedup,
            staged: false,
            records: 0,
        });
        Ok(())
    }

    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()> {
        let stream = &mut self.streams[id];
        stream.records += batch.len() as u64;
        stream.rows.encode(&batch)?;
        if stream.dedup.is_some() {
            stream.staged = true;
        }
        for t in 0..stream.rows.tables() {
            let [plain, full] = self.streams[id].rows.take(t);
            if let Some(data) = plain {
                self.send(id, t, true, data).await?;
            }
            if let Some(data) = full {
                self.send(id, t, false, data).await?;
            }
        }
        Ok(())
    }

    async fn commit(&mut self, _id: StreamId) -> Result<()> {
        // One transaction holds every stream's rows: the first commit of a round commits
        // them all, the others find nothing to do.
        if !self.in_tx {
            return Ok(());
        }
        self.finish_copy().await?;
        for id in 0..self.streams.len() {
            if std::mem::take(&mut self.streams[id].staged) {
                self.merge(id).await?;
            }
        }
        self.execute("COMMIT").await?;
        self.in_tx = false;
        Ok(())
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
                if self.in_tx {
                    self.commit(id).await?;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(mode: &str, generation: i64, minimum: i64) -> ConfiguredAirbyteStream {
        serde_json::from_value(json!({
            "stream": {"name": "s", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
            "destination_sync_mode": mode, "generation_id": generation,
            "minimum_generation_id": minimum
        }))
        .unwrap()
    }

    #[test]
    fn sync_modes_follow_generations() {
        assert_eq!(sync_mode(&stream("append", 3, 0)).unwrap(), (false, false));
        assert_eq!(sync_mode(&stream("append", 3, 3)).unwrap(), (true, false));
        assert_eq!(
            sync_mode(&stream("overwrite", 3, 3)).unwrap(),
            (true, false)
        );
        assert_eq!(
            sync_mode(&stream("append_dedup", 3, 0)).unwrap(),
            (false, true)
        );
        assert_eq!(
            sync_mode(&stream("append_dedup", 3, 3)).unwrap(),
            (true, true)
        );
        let hybrid = sync_mode(&stream("append", 3, 2)).unwrap_err();
        assert!(hybrid.message.contains("hybrid"), "{hybrid}");
        let update = sync_mode(&stream("update", 1, 0)).unwrap_err();
        assert!(update.message.contains("'update'"), "{update}");
    }
}
