//! Reading one table: the resumable initial load in ctid chunks and the cursor-based
//! incremental read, both streamed with binary COPY inside a read-only snapshot transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdk::protocol::{AirbyteRecordMessageMetaChange, ChangeReason, SyncMode};
use cdk::{Error, Estimate, ReadContext, RecordWriter, Result, Stream, TrustedJson};
use serde_json::Value;
use tokio_postgres::Client;

use crate::connect::{Connector, Purpose, query_error};
use crate::copy::{Tuple, for_each_tuple};
use crate::discover::{Column, Table};
use crate::state::{CursorStatus, StreamState, ctid_state, parse_ctid};
use crate::types::{Kind, quote_ident, quote_literal};
use crate::values::{ValueError, write_json};

/// What every stream of one read shares.
pub struct ReadEnv {
    pub connector: Connector,
    /// A snapshot exported by the coordinating connection: every table is read as of the
    /// same moment. `None` when the server could not export one.
    pub snapshot: Option<String>,
    pub checkpoint_every: Duration,
    pub chunk_bytes: u64,
    /// Incremental streams are read by Xmin instead of a cursor column.
    pub xmin: bool,
}

impl ReadEnv {
    /// Runs `work` on a new connection inside a read-only REPEATABLE READ transaction on the
    /// shared snapshot (or its own, when the shared one cannot be imported), then ends it.
    /// The connection is driven by this task (see [`postgres_common::Driver::alongside`]).
    pub(crate) async fn in_snapshot(
        &self,
        work: impl AsyncFnOnce(&Client) -> Result<()>,
    ) -> Result<()> {
        let (client, mut driver) = self.connector.connect_driven(Purpose::Sync).await?;
        let done = driver
            .alongside(async {
                self.begin(&client).await?;
                work(&client).await?;
                // Read only: ending the transaction cannot lose anything.
                let _ = client.batch_execute("COMMIT").await;
                Ok(())
            })
            .await;
        drop(client);
        driver.spawn(); // to close the connection
        done
    }

    async fn begin(&self, client: &Client) -> Result<()> {
        const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        client
            .batch_execute(BEGIN)
            .await
            .map_err(|e| query_error(&e, "cannot start a read-only transaction"))?;
        if let Some(id) = &self.snapshot {
            let set = format!("SET TRANSACTION SNAPSHOT {}", quote_literal(id));
            if let Err(e) = client.batch_execute(&set).await {
                tracing::warn!(error = %e, "cannot import the shared snapshot; this table is read in its own snapshot");
                client
                    .batch_execute(&format!("ROLLBACK; {BEGIN}"))
                    .await
                    .map_err(|e| query_error(&e, "cannot start a read-only transaction"))?;
            }
        }
        Ok(())
    }
}

/// One table, view or materialized view as a stream.
pub struct TableStream {
    pub table: Arc<Table>,
    pub env: Arc<ReadEnv>,
}

#[cdk::async_trait]
impl Stream for TableStream {
    fn name(&self) -> &str {
        &self.table.name
    }

    fn namespace(&self) -> Option<&str> {
        Some(&self.table.schema)
    }

    fn json_schema(&self) -> Value {
        self.table.json_schema()
    }

    fn primary_key(&self) -> Vec<Vec<String>> {
        self.table
            .primary_key
            .iter()
            .map(|k| vec![k.clone()])
            .collect()
    }

    fn supported_sync_modes(&self) -> Vec<SyncMode> {
        vec![SyncMode::FullRefresh, SyncMode::Incremental]
    }

    fn is_resumable(&self) -> bool {
        self.table.has_ctid()
    }

    async fn estimate(&self, ctx: &ReadContext) -> Option<Estimate> {
        (ctx.state.is_none() && self.table.reltuples >= 0.0).then_some(Estimate {
            rows: self.table.reltuples as i64,
            bytes: None,
        })
    }

    async fn read(&self, ctx: &ReadContext, out: &mut RecordWriter) -> Result<()> {
        self.env
            .in_snapshot(async |client| {
                let reader = TableReader {
                    table: &self.table,
                    env: &self.env,
                    client,
                };
                let state = StreamState::parse(ctx.state.as_ref())?;
                if ctx.is_incremental() && self.env.xmin {
                    crate::xmin::read(&reader, state, out).await
                } else if ctx.is_incremental() {
                    let cursor = reader.cursor_column(ctx.cursor_field())?;
                    reader.incremental(cursor, state, out).await
                } else {
                    reader.full_refresh(state, out).await
                }
            })
            .await
    }
}

pub(crate) struct TableReader<'a> {
    pub table: &'a Table,
    pub env: &'a ReadEnv,
    pub client: &'a Client,
}

impl TableReader<'_> {
    fn context(&self) -> String {
        format!("cannot read table {}", self.table.sql_name())
    }

    fn cursor_column(&self, field: Option<&[String]>) -> Result<&Column> {
        let table = self.table;
        let field = match field {
            Some([name]) => name,
            Some(path) => {
                return Err(Error::config(format!(
                    "stream '{}.{}': cursor field {path:?} must name one column",
                    table.schema, table.name
                )));
            }
            None => {
                return Err(Error::config(format!(
                    "stream '{}.{}' is incremental but has no cursor field",
                    table.schema, table.name
                )));
            }
        };
        let column = table.column(field).ok_or_else(|| {
            Error::config(format!(
                "cursor field '{field}' is not a column of stream '{}.{}'",
                table.schema, table.name
            ))
        })?;
        if !column.ty.can_be_cursor() {
            return Err(Error::config(format!(
                "cursor field '{field}' of stream '{}.{}' has type '{}', which cannot be a cursor \
                 (use a number, text, date, time, timestamp or uuid column)",
                table.schema, table.name, column.ty.sql_type
            )));
        }
        Ok(column)
    }

    async fn full_refresh(&self, state: Option<StreamState>, out: &mut RecordWriter) -> Result<()> {
        if !self.table.has_ctid() {
            return self.read_all(out, RowFormat::new(self.table, 0)).await;
        }
        let start = match state {
            Some(StreamState::Ctid(c)) => Some(c),
            _ => None,
        };
        self.ctid_load(start, None, out, RowFormat::new(self.table, 1))
            .await
    }

    async fn incremental(
        &self,
        cursor: &Column,
        state: Option<StreamState>,
        out: &mut RecordWriter,
    ) -> Result<()> {
        let same_cursor = |s: &CursorStatus| {
            s.cursor_field.is_empty() || s.cursor_field == [cursor.name.as_str()]
        };
        match state {
            Some(StreamState::Cursor(s)) if same_cursor(&s) => {
                self.cursor_read(cursor, Some(s), out).await
            }
            Some(StreamState::Ctid(c)) => {
                let inc = c
                    .incremental_state
                    .as_ref()
                    .and_then(|v| serde_json::from_value::<CursorStatus>(v.clone()).ok())
                    .filter(|s| same_cursor(s));
                if !self.table.has_ctid() {
                    return self.cursor_read(cursor, inc, out).await;
                }
                let inc = match inc {
                    Some(inc) => inc,
                    None => self.initial_cursor_status(cursor).await?,
                };
                let format = RowFormat::new(self.table, 1);
                self.ctid_load(Some(c), Some(inc.to_value()), out, format)
                    .await
            }
            other => {
                if other.is_some() {
                    tracing::warn!(stream = %self.table.sql_name(), cursor = %cursor.name,
                        "the state's cursor field differs from the configured one; reading the table again");
                }
                if self.table.has_ctid() {
                    let inc = self.initial_cursor_status(cursor).await?.to_value();
                    let format = RowFormat::new(self.table, 1);
                    self.ctid_load(None, Some(inc), out, format).await
                } else {
                    self.cursor_read(cursor, None, out).await
                }
            }
        }
    }

    /// The select list (with casts for types read as text or numeric).
    pub(crate) fn select_list(&self) -> String {
        let cols: Vec<String> = self
            .table
            .columns
            .iter()
            .map(|c| format!("{}{}", quote_ident(&c.name), c.ty.cast.unwrap_or("")))
            .collect();
        cols.join(", ")
    }

    async fn copy(
        &self,
        query: &str,
        format: &mut RowFormat,
        mut on_row: impl FnMut(&Tuple<'_>, &mut RowFormat) -> Result<()>,
    ) -> Result<u64> {
        let sql = format!("COPY ({query}) TO STDOUT (FORMAT binary)");
        tracing::debug!(sql = %sql, "reading");
        let stream = self
            .client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| query_error(&e, self.context()))?;
        for_each_tuple(stream, |t| on_row(t, format))
            .await
            .map_err(|e| e.context(self.context()))
    }

    /// Every row of `query` (the table's select list) into `out`.
    pub(crate) async fn read_query(&self, query: &str, out: &mut dyn RowSink) -> Result<()> {
        let mut format = RowFormat::new(self.table, 0);
        self.copy(query, &mut format, |t, f| out.row(f, t)).await?;
        Ok(())
    }

    /// A relation without ctid (view, partitioned or foreign table): one streamed query.
    pub(crate) async fn read_all(
        &self,
        out: &mut dyn RowSink,
        mut format: RowFormat,
    ) -> Result<()> {
        let query = format!(
            "SELECT {} FROM {}",
            self.select_list(),
            self.table.sql_name()
        );
        self.copy(&query, &mut format, |t, f| out.row(f, t)).await?;
        Ok(())
    }

    /// Size in pages, block size and file node of the table, and whether the server has
    /// TID range scans (PostgreSQL 14+).
    async fn relation(&self) -> Result<(u64, u64, Option<i64>, bool)> {
        let row = self
            .client
            .query_one(
                "SELECT pg_relation_size($1::int8::oid)::int8, \
                 current_setting('block_size')::int8, pg_relation_filenode($1::int8::oid)::int8, \
                 current_setting('server_version_num')::int4 >= 140000",
                &[&(self.table.oid as i64)],
            )
            .await
            .map_err(|e| query_error(&e, self.context()))?;
        let size: i64 = row.get(0);
        let block: i64 = row.get(1);
        let block = block.max(1) as u64;
        Ok((size.max(0) as u64 / block, block, row.get(2), row.get(3)))
    }

    /// The resumable load in ctid order: chunks of pages, a state every N records and at the
    /// end of each chunk. With `incremental`, the final state switches the stream to it.
    pub(crate) async fn ctid_load(
        &self,
        resume: Option<crate::state::CtidStatus>,
        incremental: Option<Value>,
        out: &mut dyn RowSink,
        mut format: RowFormat,
    ) -> Result<()> {
        let (pages, block_size, filenode, tid_range_scans) = self.relation().await?;
        let mut pos: (u32, u16) = (0, 0);
        if let Some(r) = resume {
            if r.relation_filenode.is_some() && r.relation_filenode != filenode {
                tracing::warn!(stream = %self.table.sql_name(),
                    "the table was rewritten (VACUUM FULL, CLUSTER, TRUNCATE) since the state was saved; reading it from the start");
            } else {
                pos = parse_ctid(&r.ctid)?;
            }
        }
        // Without TID range scans every chunk would scan the whole table: read it in one
        // query instead (a sequential scan is in ctid order) and resume by the last ctid.
        let chunk_pages = if tid_range_scans {
            (self.env.chunk_bytes / block_size).max(1)
        } else {
            u64::MAX / 2
        };
        let select = self.select_list();
        let table = self.table.sql_name();
        let mut timer = Timer::new(self.env.checkpoint_every);
        let inc = incremental.as_ref();
        loop {
            let end = pos.0 as u64 + chunk_pages;
            let last = end >= pages;
            let mut query = format!(
                "SELECT ctid, {select} FROM {table} WHERE ctid > '({},{})'::tid",
                pos.0, pos.1
            );
            if !last {
                query.push_str(&format!(" AND ctid < '({end},0)'::tid"));
            }
            let mut at = pos;
            self.copy(&query, &mut format, |t, f| {
                at = tid(t.get(0))?;
                out.row(f, t)?;
                if out.checkpoint_due() || timer.due() {
                    out.checkpoint(ctid_state(at, filenode, inc));
                    timer.reset();
                }
                Ok(())
            })
            .await?;
            if last {
                match inc {
                    Some(inc) => out.checkpoint(inc.clone()),
                    None => out.checkpoint(ctid_state(at, filenode, None)),
                }
                return Ok(());
            }
            pos = (end.min(u32::MAX as u64) as u32, 0);
            out.checkpoint(ctid_state(pos, filenode, inc));
            timer.reset();
        }
    }

    /// The cursor state the initial load ends with: the largest cursor now and how many rows
    /// have it (read in the same snapshot as the load).
    async fn initial_cursor_status(&self, cursor: &Column) -> Result<CursorStatus> {
        let c = quote_ident(&cursor.name);
        let table = self.table.sql_name();
        let query = format!(
            "SELECT (s.m){cast}, (SELECT count(*) FROM {table} WHERE {c} = s.m)::int8 \
             FROM (SELECT max({c}) AS m FROM {table}) s",
            cast = cursor.ty.cast.unwrap_or("")
        );
        let mut value = None;
        let mut count = 0u64;
        let mut format = RowFormat::new(self.table, 0);
        self.copy(&query, &mut format, |t, _| {
            value = t
                .get(0)
                .map(|b| cursor_text(&cursor.ty.kind, b))
                .transpose()?;
            count = t
                .get(1)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
                .unwrap_or(0)
                .max(0) as u64;
            Ok(())
        })
        .await?;
        Ok(self.cursor_status(cursor, value, count))
    }

    fn cursor_status(&self, cursor: &Column, value: Option<String>, count: u64) -> CursorStatus {
        CursorStatus::new(
            &self.table.name,
            &self.table.schema,
            &cursor.name,
            value,
            count,
        )
    }

    /// Rows after the state's cursor in cursor order. Rows at the state's cursor are read
    /// again (`>=`) unless exactly `cursor_record_count` of them exist, which were read.
    async fn cursor_read(
        &self,
        cursor: &Column,
        lower: Option<CursorStatus>,
        out: &mut RecordWriter,
    ) -> Result<()> {
        let c = quote_ident(&cursor.name);
        let table = self.table.sql_name();
        let mut filter = String::new();
        if let Some(value) = lower.as_ref().and_then(|l| l.cursor.as_deref()) {
            let literal = format!("{}::{}", quote_literal(value), cursor.ty.sql_type);
            let expected = lower
                .as_ref()
                .and_then(|l| l.cursor_record_count)
                .unwrap_or(0);
            let mut op = ">";
            if expected > 0 {
                let row = self
                    .client
                    .query_one(
                        &format!("SELECT count(*) FROM {table} WHERE {c} = {literal}"),
                        &[],
                    )
                    .await
                    .map_err(|e| query_error(&e, self.context()))?;
                let actual: i64 = row.get(0);
                if actual as u64 != expected {
                    op = ">=";
                }
            }
            filter = format!(" WHERE {c} {op} {literal}");
        }
        let query = format!(
            "SELECT {} FROM {table}{filter} ORDER BY {c} ASC NULLS FIRST",
            self.select_list()
        );
        let index = self
            .table
            .columns
            .iter()
            .position(|col| col.name == cursor.name)
            .unwrap_or(0);
        let kind = &cursor.ty.kind;
        let mut last: Option<Vec<u8>> = None;
        let mut count = 0u64;
        let mut timer = Timer::new(self.env.checkpoint_every);
        let mut format = RowFormat::new(self.table, 0);
        self.copy(&query, &mut format, |t, f| {
            f.emit(t, out)?;
            if let Some(v) = t.get(index) {
                match &mut last {
                    Some(l) if l.as_slice() == v => count += 1,
                    Some(l) => {
                        l.clear();
                        l.extend_from_slice(v);
                        count = 1;
                    }
                    None => {
                        last = Some(v.to_vec());
                        count = 1;
                    }
                }
            }
            if let Some(l) = &last
                && (out.checkpoint_due() || timer.due())
            {
                let value = cursor_text(kind, l)?;
                out.checkpoint(self.cursor_status(cursor, Some(value), count).to_value());
                timer.reset();
            }
            Ok(())
        })
        .await?;
        let end = match &last {
            Some(l) => self.cursor_status(cursor, Some(cursor_text(kind, l)?), count),
            None => lower.unwrap_or_else(|| self.cursor_status(cursor, None, 0)),
        };
        out.checkpoint(end.to_value());
        Ok(())
    }
}

/// The text a cursor value is stored as in the state: the record's value, unquoted.
fn cursor_text(kind: &Kind, bytes: &[u8]) -> Result<String> {
    let mut json = Vec::new();
    write_json(kind, bytes, &mut json).map_err(|e| {
        Error::system(format!(
            "a cursor value cannot be represented in a state: {e:?}"
        ))
    })?;
    if json.first() == Some(&b'"') {
        let s: String = serde_json::from_slice(&json)?;
        Ok(s)
    } else {
        Ok(String::from_utf8_lossy(&json).into_owned())
    }
}

/// A ctid's binary form: block (u32) and offset (u16).
fn tid(b: Option<&[u8]>) -> Result<(u32, u16)> {
    match b {
        Some(&[a, b, c, d, e, f]) => {
            Ok((u32::from_be_bytes([a, b, c, d]), u16::from_be_bytes([e, f])))
        }
        _ => Err(Error::system("a ctid value is not 6 bytes")),
    }
}

/// Says when the time-based checkpoint is due, looking at the clock every 1024 rows.
struct Timer {
    every: Duration,
    last: Instant,
    tick: u32,
}

impl Timer {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: Instant::now(),
            tick: 0,
        }
    }

    #[inline]
    fn due(&mut self) -> bool {
        self.tick += 1;
        if self.tick < 1024 {
            return false;
        }
        self.tick = 0;
        self.last.elapsed() >= self.every
    }

    fn reset(&mut self) {
        self.last = Instant::now();
        self.tick = 0;
    }
}

/// Where rows of a load go: a stream's writer, or CDC's snapshot of one stream.
pub(crate) trait RowSink: Send {
    fn row(&mut self, format: &mut RowFormat, t: &Tuple<'_>) -> Result<()>;
    fn checkpoint_due(&self) -> bool;
    fn checkpoint(&mut self, state: Value);
}

impl RowSink for RecordWriter {
    fn row(&mut self, format: &mut RowFormat, t: &Tuple<'_>) -> Result<()> {
        format.emit(t, self)
    }
    fn checkpoint_due(&self) -> bool {
        RecordWriter::checkpoint_due(self)
    }
    fn checkpoint(&mut self, state: Value) {
        RecordWriter::checkpoint(self, state)
    }
}

/// Turns tuples into record JSON: `{"col":value,…}` with the keys escaped once.
pub(crate) struct RowFormat {
    keys: Vec<Vec<u8>>,
    kinds: Vec<Kind>,
    names: Vec<String>,
    /// Leading fields that are not columns (the ctid).
    skip: usize,
    /// Written after the last column (`,"_ab_cdc_lsn":…` for CDC snapshots).
    suffix: Vec<u8>,
    buf: Vec<u8>,
}

impl RowFormat {
    pub(crate) fn new(table: &Table, skip: usize) -> Self {
        let keys = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut k = Vec::new();
                if i > 0 {
                    k.push(b',');
                }
                crate::values::write_str(c.name.as_bytes(), &mut k);
                k.push(b':');
                k
            })
            .collect();
        Self {
            keys,
            kinds: table.columns.iter().map(|c| c.ty.kind.clone()).collect(),
            names: table.columns.iter().map(|c| c.name.clone()).collect(),
            skip,
            suffix: Vec::new(),
            buf: Vec::with_capacity(1024),
        }
    }

    /// The same, with `suffix` (JSON members starting with a comma) after the columns.
    pub(crate) fn with_suffix(mut self, suffix: Vec<u8>) -> Self {
        self.suffix = suffix;
        self
    }

    #[inline]
    fn emit(&mut self, t: &Tuple<'_>, out: &mut RecordWriter) -> Result<()> {
        let changes = self.build(t)?;
        // Every byte written comes from `write_json`/`write_str`, which emit JSON text on
        // one line, and the keys are escaped Rust strings.
        out.record_json(TrustedJson::new(&self.buf), &changes)
    }

    /// Builds the record JSON of `t` (see [`RowFormat::json`]); returns its meta changes.
    #[inline]
    pub(crate) fn build(&mut self, t: &Tuple<'_>) -> Result<Vec<AirbyteRecordMessageMetaChange>> {
        if t.len() != self.kinds.len() + self.skip {
            return Err(Error::system(format!(
                "a row has {} fields, expected {}",
                t.len(),
                self.kinds.len() + self.skip
            )));
        }
        self.buf.clear();
        self.buf.push(b'{');
        let mut changes: Vec<AirbyteRecordMessageMetaChange> = Vec::new();
        for (i, kind) in self.kinds.iter().enumerate() {
            self.buf.extend_from_slice(&self.keys[i]);
            match t.get(i + self.skip) {
                None => self.buf.extend_from_slice(b"null"),
                Some(bytes) => {
                    let mark = self.buf.len();
                    match write_json(kind, bytes, &mut self.buf) {
                        Ok(()) => {}
                        Err(ValueError::NotRepresentable) => {
                            self.buf.truncate(mark);
                            self.buf.extend_from_slice(b"null");
                            changes.push(nulled(&self.names[i]));
                        }
                        Err(ValueError::PartlyNulled) => changes.push(nulled(&self.names[i])),
                        Err(ValueError::Malformed(what)) => {
                            return Err(Error::system(format!(
                                "column '{}': the server sent a malformed {what} value",
                                self.names[i]
                            )));
                        }
                    }
                }
            }
        }
        self.buf.extend_from_slice(&self.suffix);
        self.buf.push(b'}');
        Ok(changes)
    }

    /// The record JSON last built.
    pub(crate) fn json(&self) -> &[u8] {
        &self.buf
    }
}

fn nulled(field: &str) -> AirbyteRecordMessageMetaChange {
    AirbyteRecordMessageMetaChange::nulled(field, ChangeReason::SourceSerializationError)
}
