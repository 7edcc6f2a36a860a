//! Turns a batch of records into COPY rows for a stream's tables: the `_airbyte_*` columns,
//! each user column coerced (a value that doesn't fit is NULL plus a `changes` entry in
//! `_airbyte_meta`), child-table rows in flattened mode, or raw rows.

use std::fmt::Write as _;

use bytes::Bytes;
use cdk::destination::{Batch, RecordRef};
use cdk::protocol::{AirbyteRecordMessageMeta, ChangeReason};
use cdk::{Error, Result};
use md5::{Digest, Md5};
use serde_json::value::RawValue;

use crate::copy::{Encoder, Format};
use crate::record::Parsed;
use crate::schema::{Layout, StreamLayout};
use crate::value::{self, Cell, PG_EPOCH_MICROS};

/// What child rows take from their parent record.
struct Parent<'p> {
    raw_id: &'p str,
    hashid: &'p str,
    emitted_at: i64,
}

/// Encoded rows of one table, in two COPY streams: rows whose `_airbyte_meta` is the plain
/// one of this sync (left to the column's default, when the writer set one: PostgreSQL then
/// parses no JSON for them) and rows with the column.
struct TableOut {
    plain: Encoder,
    full: Encoder,
    omit_meta: bool,
}

impl TableOut {
    /// The encoder for a row, and the meta text to write (`None`: left to the default).
    fn pick<'m>(&mut self, plain: bool, meta: &'m str) -> (&mut Encoder, Option<&'m str>) {
        if plain && self.omit_meta {
            (&mut self.plain, None)
        } else {
            (&mut self.full, Some(meta))
        }
    }
}

/// Encoded rows of one table as `(lane, table, plain, rows)`: `plain` rows leave
/// `_airbyte_meta` to its default.
pub type Chunk = (usize, usize, bool, Bytes);

/// What [`Rows::take_all`] hands over.
pub struct Taken {
    /// In lane then table order, the rows without the meta column first.
    pub chunks: Vec<Chunk>,
    /// Records encoded per lane.
    pub records: [u64; 2],
    /// When split, the hashes of their keys per lane (equal keys hash alike).
    pub keys: [Vec<u64>; 2],
}

/// Encodes one stream's records for its tables: the main table, then child tables. With a
/// [split](Rows::with_split), each record (with its child rows) goes to one of two lanes by a
/// hash of its primary key, so rows of one key always take the same lane.
pub struct Rows {
    layout: Option<StreamLayout>,
    /// Per lane (one, or two when split), per table.
    lanes: Vec<Vec<TableOut>>,
    /// The lane of the record being encoded.
    lane: usize,
    /// Records encoded per lane since the last [`take_all`](Rows::take_all).
    lane_records: [u64; 2],
    /// The key hashes of those records, per lane, when split.
    lane_keys: [Vec<u64>; 2],
    /// The main table's key columns (indexes into its cells), when records are split.
    split: Option<Vec<usize>>,
    format: Format,
    sync_id: String,
    plain_meta: String,
    generation: i64,
    ids: RawIds,
    meta: String,
    /// The cells of the row being encoded (its `_airbyte_meta` is known after them).
    cells: Encoder,
    /// `_airbyte_normalized_at` of this writer's rows, microseconds since 2000-01-01 UTC.
    normalized_at: i64,
    /// The table that also gets each record as a raw row (basic normalization's kept raw
    /// table).
    raw_table: Option<usize>,
}

impl Rows {
    /// `layout` is `None` for raw tables; `omit_meta[t]` when table `t`'s `_airbyte_meta`
    /// defaults to [`Rows::plain_meta`].
    pub fn new(
        layout: Option<StreamLayout>,
        format: Format,
        sync_id: Option<i64>,
        generation: i64,
        omit_meta: &[bool],
    ) -> Self {
        let plain_meta = Self::plain_meta(sync_id);
        let sync_id = sync_id.map_or("null".to_string(), |s| s.to_string());
        let tables = || {
            omit_meta
                .iter()
                .map(|&omit_meta| TableOut {
                    plain: Encoder::new(format),
                    full: Encoder::new(format),
                    omit_meta,
                })
                .collect()
        };
        Self {
            layout,
            lanes: vec![tables()],
            lane: 0,
            lane_records: [0; 2],
            lane_keys: [Vec::new(), Vec::new()],
            split: None,
            format,
            plain_meta,
            sync_id,
            generation,
            ids: RawIds::new(),
            meta: String::new(),
            cells: Encoder::new(format),
            normalized_at: now_pg_micros(),
            raw_table: None,
        }
    }

    /// Also writes each record of a typed stream as a raw row into table `t`.
    pub fn with_raw_table(mut self, t: Option<usize>) -> Self {
        self.raw_table = t;
        self
    }

    /// Splits records over two lanes by a hash of the main table's cells `key` (the primary
    /// key's columns), when `key` is given.
    pub fn with_split(mut self, key: Option<Vec<usize>>) -> Self {
        if key.is_some() && self.lanes.len() == 1 {
            let second = self.lanes[0]
                .iter()
                .map(|t| TableOut {
                    plain: Encoder::new(self.format),
                    full: Encoder::new(self.format),
                    omit_meta: t.omit_meta,
                })
                .collect();
            self.lanes.push(second);
        }
        self.split = key;
        self
    }

    /// `_airbyte_meta` of a row without changes in this sync.
    pub fn plain_meta(sync_id: Option<i64>) -> String {
        let sync_id = sync_id.map_or("null".to_string(), |s| s.to_string());
        format!("{{\"sync_id\":{sync_id},\"changes\":[]}}")
    }

    /// Encoded rows of table `t` since the last call: those without the meta column, then
    /// those with it.
    fn take(&mut self, lane: usize, t: usize) -> [Option<Bytes>; 2] {
        let out = &mut self.lanes[lane][t];
        [&mut out.plain, &mut out.full].map(|e| (!e.is_empty()).then(|| e.take()))
    }

    /// Every table's encoded rows since the last call, with the records and key hashes
    /// behind them.
    pub fn take_all(&mut self) -> Taken {
        let mut out = Vec::new();
        for lane in 0..self.lanes.len() {
            for t in 0..self.lanes[lane].len() {
                let [plain, full] = self.take(lane, t);
                out.extend(plain.map(|b| (lane, t, true, b)));
                out.extend(full.map(|b| (lane, t, false, b)));
            }
        }
        let keys = [
            std::mem::take(&mut self.lane_keys[0]),
            std::mem::take(&mut self.lane_keys[1]),
        ];
        Taken {
            chunks: out,
            records: std::mem::take(&mut self.lane_records),
            keys,
        }
    }

    /// Sets the lane of a record whose main-table slots are `slots` (noting its key's hash
    /// when split: the key columns are coerced into `keys`), and counts the record there.
    fn pick_lane<'a>(
        &mut self,
        layout: &Layout,
        slots: &[Option<&'a str>],
        keys: &mut Vec<Cell<'a>>,
    ) {
        self.lane = 0;
        if let Some(key) = &self.split {
            keys.clear();
            keys.extend(key.iter().map(|&i| {
                match (slots.get(i).copied().flatten(), layout.columns.get(i)) {
                    (Some(raw), Some(column)) => value::coerce(column, raw).unwrap_or(Cell::Null),
                    _ => Cell::Null,
                }
            }));
            let mut hasher = std::hash::DefaultHasher::new();
            for cell in keys.iter() {
                value::hash_key_cell(Some(cell), &mut hasher);
            }
            let hash = std::hash::Hasher::finish(&hasher);
            self.lane = (hash & 1) as usize;
            self.lane_keys[self.lane].push(hash);
        }
        self.lane_records[self.lane] += 1;
    }

    pub fn encode(&mut self, batch: &Batch) -> Result<()> {
        let Some(layout) = self.layout.take() else {
            self.lane = 0;
            for record in batch.iter() {
                let mut id_buf = [0u8; 36];
                let raw_id = self.ids.next(&mut id_buf);
                self.raw_row(0, raw_id, record);
                self.lane_records[0] += 1;
            }
            return Ok(());
        };
        let result = self.typed(batch, &layout);
        self.layout = Some(layout);
        result
    }

    fn typed(&mut self, batch: &Batch, layout: &StreamLayout) -> Result<()> {
        let mut parsed = Parsed::new(layout.main.columns.len());
        let mut child_parsed: Vec<Parsed<'_>> = layout
            .children
            .iter()
            .map(|c| Parsed::new(c.layout.columns.len()))
            .collect();
        let mut changes: Vec<(String, ChangeReason)> = Vec::new();
        let mut keys: Vec<Cell<'_>> = Vec::new();
        for record in batch.iter() {
            parsed
                .fill_record(&record, &layout.main.fields)
                .map_err(|e| Error::system(format!("a record's data is not a JSON object: {e}")))?;
            parsed.take_changes(&mut changes);
            let mut id_buf = [0u8; 36];
            let raw_id = self.ids.next(&mut id_buf);
            let hashid = match layout.main.hashid {
                Some(_) => hex_md5(record.data),
                None => String::new(),
            };
            encode_cells(
                &layout.main,
                &parsed.slots,
                (&hashid, self.normalized_at),
                &mut self.cells,
                &mut changes,
            );
            for (child, array) in &parsed.children {
                if !matches!(array.as_bytes().first(), Some(b'[' | b'n')) {
                    let field = layout.children[*child].field.clone();
                    changes.push((field, ChangeReason::DestinationTypecastError));
                }
            }
            build_meta(&mut self.meta, &self.sync_id, record.meta, &changes);
            self.pick_lane(&layout.main, &parsed.slots, &mut keys);
            let plain = is_plain(&changes, record.meta);
            let meta = if plain { &self.plain_meta } else { &self.meta };
            let (e, meta) = self.lanes[self.lane][0].pick(plain, meta);
            write_row(
                e,
                raw_id,
                record.emitted_at,
                meta,
                self.generation,
                (&self.cells, &layout.main),
            );
            let parent = Parent {
                raw_id,
                hashid: &hashid,
                emitted_at: record.emitted_at,
            };
            for (child, array) in &parsed.children {
                self.child_rows(layout, *child, array, &mut child_parsed[*child], &parent)?;
            }
            if let Some(t) = self.raw_table {
                self.raw_row(t, raw_id, record);
            }
        }
        Ok(())
    }

    fn child_rows<'a>(
        &mut self,
        layout: &StreamLayout,
        child: usize,
        text: &'a str,
        parsed: &mut Parsed<'a>,
        parent: &Parent<'_>,
    ) -> Result<()> {
        let table = &layout.children[child];
        if !text.starts_with('[') {
            // null, or not an array (noted on the parent row).
            return Ok(());
        }
        let items: Vec<&'a RawValue> = serde_json::from_str(text)?;
        let mut changes: Vec<(String, ChangeReason)> = Vec::new();
        for item in items {
            if !item.get().starts_with('{') {
                continue;
            }
            parsed.fill(item.get(), &table.layout.fields)?;
            parsed.take_changes(&mut changes);
            encode_cells(
                &table.layout,
                &parsed.slots,
                (parent.hashid, self.normalized_at),
                &mut self.cells,
                &mut changes,
            );
            build_meta(&mut self.meta, &self.sync_id, None, &changes);
            let plain = changes.is_empty();
            let meta = if plain { &self.plain_meta } else { &self.meta };
            let (e, meta) = self.lanes[self.lane][1 + child].pick(plain, meta);
            write_row(
                e,
                parent.raw_id,
                parent.emitted_at,
                meta,
                self.generation,
                (&self.cells, &table.layout),
            );
        }
        Ok(())
    }

    /// A raw row of `record` into table `t`.
    fn raw_row(&mut self, t: usize, raw_id: &str, record: RecordRef<'_>) {
        let data = if value::has_nul_escape(record.data) {
            std::borrow::Cow::Owned(value::strip_nul_escapes(record.data))
        } else {
            std::borrow::Cow::Borrowed(record.data)
        };
        build_meta(&mut self.meta, &self.sync_id, record.meta, &[]);
        let plain = is_plain(&[], record.meta);
        let meta = if plain { &self.plain_meta } else { &self.meta };
        let (e, meta) = self.lanes[self.lane][t].pick(plain, meta);
        e.row_start(meta_count(meta) + 2);
        meta_columns(e, raw_id, record.emitted_at, meta, self.generation);
        e.null();
        e.json(&data);
        e.row_end();
    }
}

/// Builds `_airbyte_meta` into `out` when there are changes.
fn build_meta(
    out: &mut String,
    sync_id: &str,
    source: Option<&AirbyteRecordMessageMeta>,
    ours: &[(String, ChangeReason)],
) {
    let source_changes = source.map_or(&[][..], |m| &m.changes[..]);
    if ours.is_empty() && source_changes.is_empty() {
        return;
    }
    out.clear();
    let _ = write!(out, "{{\"sync_id\":{sync_id},\"changes\":[");
    let mut first = true;
    for change in source_changes {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::to_string(change).unwrap_or_default());
    }
    for (field, reason) in ours {
        if !first {
            out.push(',');
        }
        first = false;
        let field = serde_json::to_string(field).unwrap_or_default();
        let reason = serde_json::to_string(reason).unwrap_or_default();
        let _ = write!(
            out,
            "{{\"field\":{field},\"change\":\"NULLED\",\"reason\":{reason}}}"
        );
    }
    out.push_str("]}");
}

/// Whether a row's `_airbyte_meta` is the plain one (no changes from the source or here).
fn is_plain(ours: &[(String, ChangeReason)], source: Option<&AirbyteRecordMessageMeta>) -> bool {
    ours.is_empty() && source.is_none_or(|m| m.changes.is_empty())
}

/// Now, in microseconds since 2000-01-01 UTC.
fn now_pg_micros() -> i64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    unix - PG_EPOCH_MICROS
}

/// Coerces every slot and encodes it into `out` (emptied first: the cells of one row),
/// noting the fields that were nulled; `fixed` is the row's hashid and
/// `_airbyte_normalized_at`.
fn encode_cells(
    layout: &Layout,
    slots: &[Option<&str>],
    fixed: (&str, i64),
    out: &mut Encoder,
    changes: &mut Vec<(String, ChangeReason)>,
) {
    out.start_cells();
    for (i, column) in layout.columns.iter().enumerate() {
        if layout.hashid == Some(i) {
            out.text(fixed.0);
            continue;
        }
        if layout.normalized_at == Some(i) {
            out.cell(&Cell::Timestamp(fixed.1), column.ty);
            continue;
        }
        match slots[i] {
            None => out.null(),
            Some(raw) => match value::coerce(column, raw) {
                Ok(cell) => out.cell(&cell, column.ty),
                Err(reason) => {
                    changes.push((column.field.clone(), reason));
                    out.null();
                }
            },
        }
    }
}

/// The `_airbyte_*` columns; `meta` is `None` when it and the generation are left to the
/// columns' defaults.
fn meta_columns(
    e: &mut Encoder,
    raw_id: &str,
    emitted_at: i64,
    meta: Option<&str>,
    generation: i64,
) {
    e.text(raw_id);
    e.timestamp(emitted_at.saturating_mul(1000) - PG_EPOCH_MICROS, true);
    if let Some(meta) = meta {
        e.json(meta);
        e.int(generation);
    }
}

/// How many `_airbyte_*` columns [`meta_columns`] writes.
fn meta_count(meta: Option<&str>) -> usize {
    if meta.is_some() { 4 } else { 2 }
}

/// A row: the `_airbyte_*` columns, then the row's `cells` (one per column of `layout`, see
/// [`encode_cells`]).
fn write_row(
    e: &mut Encoder,
    raw_id: &str,
    emitted_at: i64,
    meta: Option<&str>,
    generation: i64,
    (cells, layout): (&Encoder, &Layout),
) {
    e.row_start(meta_count(meta) + layout.columns.len());
    meta_columns(e, raw_id, emitted_at, meta, generation);
    e.append_cells(cells);
    e.row_end();
}

fn hex_md5(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `_airbyte_raw_id` values: random version-4 UUIDs from a generator seeded once, so a
/// million rows don't cost a million system calls.
pub struct RawIds {
    a: u64,
    b: u64,
    n: u64,
}

impl RawIds {
    pub fn new() -> Self {
        let seed = uuid::Uuid::new_v4().as_u128();
        Self {
            a: (seed >> 64) as u64,
            b: seed as u64,
            n: 0,
        }
    }

    /// The next id, written into `buf`.
    pub fn next<'b>(&mut self, buf: &'b mut [u8; 36]) -> &'b str {
        self.n += 1;
        let hi = splitmix(self.a.wrapping_add(self.n));
        let lo = splitmix(self.b ^ self.n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        id.hyphenated().encode_lower(buf)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ids_are_distinct_v4_uuids() {
        let mut ids = RawIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let mut buf = [0u8; 36];
            let id = ids.next(&mut buf);
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert!(seen.insert(id.to_string()));
        }
    }

    #[test]
    fn md5_is_hex() {
        assert_eq!(hex_md5(""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
