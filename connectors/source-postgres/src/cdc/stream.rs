//! Replaying the slot's changes: one `pg_logical_slot_peek_binary_changes` call up to the
//! server's flushed position at the start (the slot is not consumed), its rows handed over
//! a bounded queue (`queue_size`) to the decoder, which writes a record per row change and a
//! state at transaction ends.

use std::collections::HashMap;

use cdk::protocol::{AirbyteRecordMessageMetaChange, ChangeReason, StreamDescriptor};
use cdk::source::GlobalWriter;
use cdk::{Error, Result, TrustedJson};
use futures::StreamExt;
use tokio_postgres::{Client, Row};

use super::pgoutput::{self, Message, Value};
use super::slot::{caught_up_lsn, lsn_text};
use super::text::{hstore_json, write_text_json};
use super::{Progress, Selected, publication_names};
use crate::config::CdcSettings;
use crate::connect::query_error;
use crate::types::Kind;
use crate::values::{ValueError, write_json, write_str};

/// How a full refresh reads hstore (as JSON text): its values are converted the same way.
const HSTORE_CAST: &str = "::json::text";

const PEEK: &str = "SELECT (lsn - '0/0')::int8, data \
    FROM pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, NULL, \
    'proto_version', '1', 'publication_names', $3)";

/// A relation as the log describes it, with the stream it feeds (if selected).
struct Rel {
    stream: Option<StreamDescriptor>,
    name: String,
    /// Per column: `"name":` escaped, decode kind (`None`: hstore), part of the replica
    /// identity, name.
    columns: Vec<(Vec<u8>, Option<Kind>, bool, String)>,
    /// Positions of the stream's primary key columns.
    primary_key: Vec<usize>,
}

impl Rel {
    /// True when an update's old row has another primary key than its new row.
    fn key_changed(&self, old: &[Value<'_>], new: &[Value<'_>]) -> bool {
        self.primary_key
            .iter()
            .any(|&i| match (old.get(i), new.get(i)) {
                (Some(Value::Text(a)), Some(Value::Text(b))) => a != b,
                _ => false,
            })
    }
}

/// Replays the changes after `start`; returns the position the final state carries.
pub(crate) async fn run(
    client: &Client,
    cdc: &CdcSettings,
    start: u64,
    selected: &[Selected],
    writer: &mut GlobalWriter,
    progress: &mut Progress,
) -> Result<u64> {
    let wait = std::time::Duration::from_secs(cdc.initial_waiting_seconds);
    let upto = caught_up_lsn(client, wait).await?;
    if upto <= start {
        return Ok(start);
    }
    tracing::info!(from = %lsn_text(start), to = %lsn_text(upto), "reading changes");
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
        &cdc.replication_slot,
        &lsn_text(upto),
        &publication_names(cdc),
    ];
    let rows = client
        .query_raw(PEEK, params.iter().copied())
        .await
        .map_err(|e| query_error(&e, "cannot read changes from the replication slot"))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::result::Result<Row, tokio_postgres::Error>>(
        cdc.queue_size.clamp(1, 1 << 20) as usize,
    );
    let pump = tokio::spawn(async move {
        futures::pin_mut!(rows);
        while let Some(row) = rows.next().await {
            if tx.send(row).await.is_err() {
                break;
            }
        }
    });
    let mut replay = Replay {
        selected,
        relations: HashMap::new(),
        commit_ts: 0,
        buf: Vec::with_capacity(1024),
        position: start,
    };
    let result = async {
        while let Some(row) = rx.recv().await {
            let row = row.map_err(|e| query_error(&e, "reading changes failed"))?;
            let lsn: i64 = row.get(0);
            let data: &[u8] = row.get(1);
            replay.message(lsn as u64, pgoutput::decode(data)?, writer, progress)?;
        }
        Ok::<(), Error>(())
    }
    .await;
    pump.abort();
    result?;
    // The next read starts after the last transaction read. Not at `upto`: a state stays
    // valid while nothing is published (heartbeat_action_query moves it on idle tables).
    let end = replay.position;
    progress.lsn = end;
    Ok(end)
}

struct Replay<'a> {
    selected: &'a [Selected],
    relations: HashMap<u32, Rel>,
    commit_ts: i64,
    buf: Vec<u8>,
    /// End of the last transaction read whole.
    position: u64,
}

impl Replay<'_> {
    fn message(
        &mut self,
        lsn: u64,
        m: Message<'_>,
        writer: &mut GlobalWriter,
        progress: &mut Progress,
    ) -> Result<()> {
        match m {
            Message::Begin { commit_ts, .. } => self.commit_ts = commit_ts,
            Message::Commit { end_lsn, .. } => {
                self.position = end_lsn;
                if writer.checkpoint_due() {
                    progress.lsn = end_lsn;
                    progress.emit(writer);
                }
            }
            Message::Relation {
                oid,
                schema,
                name,
                columns,
                ..
            } => {
                let selected = self
                    .selected
                    .iter()
                    .find(|s| s.table.schema == schema && s.table.name == name);
                let columns = columns
                    .into_iter()
                    .map(|c| {
                        let ty = selected
                            .and_then(|s| s.table.column(&c.name))
                            .map(|c| &c.ty);
                        let kind = match ty {
                            Some(t) if t.cast == Some(HSTORE_CAST) => None,
                            Some(t) => Some(t.kind.clone()),
                            None => Some(Kind::Text),
                        };
                        let mut key = Vec::new();
                        write_str(c.name.as_bytes(), &mut key);
                        key.push(b':');
                        (key, kind, c.key, c.name)
                    })
                    .collect::<Vec<_>>();
                let primary_key = selected
                    .map(|s| {
                        s.table
                            .primary_key
                            .iter()
                            .filter_map(|k| columns.iter().position(|c| &c.3 == k))
                            .collect()
                    })
                    .unwrap_or_default();
                let rel = Rel {
                    stream: selected.map(|s| s.descriptor.clone()),
                    name: format!("{schema}.{name}"),
                    columns,
                    primary_key,
                };
                self.relations.insert(oid, rel);
            }
            Message::Insert { rel, new } => self.record(rel, lsn, &new, None, None, writer)?,
            Message::Update { rel, old, new } => {
                // A new primary key: the row under the old key is gone (a delete record).
                if let Some(old) = &old
                    && self
                        .relations
                        .get(&rel)
                        .is_some_and(|r| r.key_changed(old, &new))
                {
                    self.record(rel, lsn, old, None, Some(true), writer)?;
                }
                self.record(rel, lsn, &new, old.as_deref(), None, writer)?
            }
            Message::Delete { rel, key_only, old } => {
                self.record(rel, lsn, &old, None, Some(key_only), writer)?
            }
            Message::Truncate { rels } => {
                for r in rels.iter().filter_map(|r| self.relations.get(r)) {
                    if r.stream.is_some() {
                        tracing::warn!(table = %r.name, lsn = %lsn_text(lsn),
                            "the table was truncated: a TRUNCATE is not a row change, so rows \
                             synced before it stay in the destination (refresh the stream to remove them)");
                    }
                }
            }
            Message::Other(_) => {}
        }
        Ok(())
    }

    /// Writes the record of one row change; `deleted` is `Some(key_only)` for a delete.
    fn record(
        &mut self,
        rel: u32,
        lsn: u64,
        values: &[Value<'_>],
        old: Option<&[Value<'_>]>,
        deleted: Option<bool>,
        writer: &mut GlobalWriter,
    ) -> Result<()> {
        let rel = self.relations.get(&rel).ok_or_else(|| {
            Error::system(format!(
                "a change of relation {rel} came before its description"
            ))
        })?;
        let Some(stream) = &rel.stream else {
            return Ok(());
        };
        let buf = &mut self.buf;
        buf.clear();
        let mut changes: Vec<AirbyteRecordMessageMetaChange> = Vec::new();
        for (i, (key, kind, is_key, name)) in rel.columns.iter().enumerate() {
            let mut value = values.get(i).cloned().unwrap_or(Value::Null);
            if value == Value::Unchanged {
                // With REPLICA IDENTITY FULL the old row carries the value.
                value = match old.and_then(|o| o.get(i)) {
                    Some(v @ Value::Text(_)) => v.clone(),
                    _ => Value::Unchanged,
                };
            }
            match value {
                Value::Null if deleted == Some(true) && !is_key => {}
                Value::Null => {
                    member(buf, key);
                    buf.extend_from_slice(b"null");
                }
                Value::Unchanged => changes.push(AirbyteRecordMessageMetaChange::nulled(
                    name.clone(),
                    ChangeReason::SourceRetrievalError,
                )),
                Value::Text(bytes) => {
                    member(buf, key);
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        Error::system(format!("column '{name}': a change value is not UTF-8"))
                    })?;
                    let mark = buf.len();
                    let written = match kind {
                        Some(kind) => write_text_json(kind, text, buf),
                        None => match hstore_json(text) {
                            Some(json) => {
                                write_str(json.as_bytes(), buf);
                                Ok(())
                            }
                            None => Err(ValueError::Malformed("hstore")),
                        },
                    };
                    match written {
                        Ok(()) => {}
                        Err(ValueError::NotRepresentable) => {
                            buf.truncate(mark);
                            buf.extend_from_slice(b"null");
                            changes.push(nulled(name));
                        }
                        Err(ValueError::PartlyNulled) => changes.push(nulled(name)),
                        Err(ValueError::Malformed(what)) => {
                            return Err(Error::system(format!(
                                "column '{name}': the log holds a malformed {what} value '{text}'"
                            )));
                        }
                    }
                }
            }
        }
        member(buf, b"\"_ab_cdc_lsn\":");
        buf.extend_from_slice(itoa::Buffer::new().format(lsn).as_bytes());
        buf.extend_from_slice(b",\"_ab_cdc_updated_at\":");
        write_pg_timestamp(self.commit_ts, buf);
        buf.extend_from_slice(b",\"_ab_cdc_deleted_at\":");
        if deleted.is_some() {
            write_pg_timestamp(self.commit_ts, buf);
        } else {
            buf.extend_from_slice(b"null");
        }
        buf.push(b'}');
        // Keys are escaped names and values come from the JSON writers: one line of JSON.
        writer.record_json(stream, TrustedJson::new(buf), &changes)
    }
}

/// Opens the object or adds a comma, then writes `key` (`"name":`).
fn member(buf: &mut Vec<u8>, key: &[u8]) {
    buf.push(if buf.is_empty() { b'{' } else { b',' });
    buf.extend_from_slice(key);
}

fn nulled(field: &str) -> AirbyteRecordMessageMetaChange {
    AirbyteRecordMessageMetaChange::nulled(field, ChangeReason::SourceSerializationError)
}

/// A timestamp in microseconds since 2000-01-01 as a quoted RFC 3339 UTC string.
pub(crate) fn write_pg_timestamp(micros: i64, out: &mut Vec<u8>) {
    if write_json(&Kind::TimestampTz, &micros.to_be_bytes(), out).is_err() {
        out.extend_from_slice(b"null");
    }
}
