//! Change data capture: an initial snapshot of each stream (resumable, in ctid chunks), then
//! the changes decoded from a pgoutput logical replication slot, read through the SQL
//! interface (`pg_logical_slot_peek_binary_changes`) up to the server's WAL position at the
//! start of the read. States are GLOBAL (see `state.rs`); the slot is moved only to the
//! position of a state handed back to the next sync (unless "While reading Data").

mod pgoutput;
mod slot;
mod snapshot;
mod state;
mod stream;
mod text;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use cdk::output::Output;
use cdk::protocol::{
    AirbyteStreamState, ConfiguredAirbyteStream, InputState, StreamDescriptor, SyncMode,
};
use cdk::source::GlobalWriter;
use cdk::{Error, Result};
use serde_json::Value;
use tokio_postgres::Client;

use crate::config::{CdcSettings, InvalidCursorBehavior, LsnCommitBehaviour, PostgresConfig};
use crate::connect::{self, Purpose};
use crate::discover::{self, Table};
use crate::types::quote_ident;
pub use slot::{preflight, published};
use state::Phase;

/// The states of one CDC read: the shared position and each stream's part.
pub(crate) struct Progress {
    lsn: u64,
    slot: String,
    publication: String,
    /// When the snapshot being read started (microseconds since 2000-01-01): the
    /// `_ab_cdc_updated_at` of its records, kept by a resumed snapshot.
    snapshot_at: i64,
    streams: BTreeMap<StreamDescriptor, Value>,
}

impl Progress {
    fn emit(&self, writer: &mut GlobalWriter) {
        let mut shared = state::shared(self.lsn, &self.slot, &self.publication);
        shared["snapshot_at"] = self.snapshot_at.into();
        let streams = self
            .streams
            .iter()
            .map(|(d, v)| AirbyteStreamState {
                stream_descriptor: d.clone(),
                stream_state: Some(v.clone()),
            })
            .collect();
        writer.checkpoint(Some(shared), streams);
    }
}

/// One stream read by CDC.
pub(crate) struct Selected {
    pub descriptor: StreamDescriptor,
    pub table: Arc<Table>,
    pub phase: Phase,
}

/// Reads the incremental streams of a CDC sync.
pub async fn read(
    config: &PostgresConfig,
    cdc: &CdcSettings,
    streams: &[&ConfiguredAirbyteStream],
    input: &InputState,
    output: &Output,
) -> Result<()> {
    let connector = connect::connector(config)?;
    let ctl = connector.connect(Purpose::Sync).await?;
    let mut slot = slot::preflight(&ctl, config, cdc).await?;
    let mut selected = select(&ctl, config, cdc, streams, input).await?;
    let mut lsn = state::shared_lsn(input.shared_state())?;
    if let Some(l) = lsn {
        if slot.lost || l < slot.confirmed_flush {
            let why = if slot.lost {
                format!(
                    "replication slot '{}' was invalidated (the server removed WAL it needed)",
                    cdc.replication_slot
                )
            } else {
                format!(
                    "the state's position {} is before replication slot '{}''s confirmed position {}: changes in between are gone",
                    slot::lsn_text(l),
                    cdc.replication_slot,
                    slot::lsn_text(slot.confirmed_flush)
                )
            };
            if cdc.invalid_cdc_cursor_position_behavior == InvalidCursorBehavior::FailSync {
                return Err(Error::config(format!(
                    "{why}; reset the connection (or set invalid_cdc_cursor_position_behavior to 'Re-sync data')"
                )));
            }
            tracing::warn!(
                "{why}; 'Re-sync data' is set: every stream is read again from a new snapshot"
            );
            lsn = None;
            for s in &mut selected {
                s.phase = Phase::Snapshot(None);
            }
        } else if l > slot.confirmed_flush && l <= slot::flush_lsn(&ctl).await? {
            slot::advance(&ctl, &cdc.replication_slot, l).await?;
            slot = slot::slot(&ctl, config, cdc).await?;
        }
    }
    if slot.lost {
        return Err(Error::config(format!(
            "replication slot '{0}' was invalidated: drop it with SELECT pg_drop_replication_slot('{0}'); and create it again",
            cdc.replication_slot
        )));
    }
    let start = lsn.unwrap_or(slot.confirmed_flush);
    if !cdc.heartbeat_action_query.trim().is_empty() {
        ctl.batch_execute(&cdc.heartbeat_action_query)
            .await
            .map_err(|e| connect::query_error(&e, "the heartbeat_action_query failed"))?;
    }
    let descriptors: Vec<StreamDescriptor> =
        selected.iter().map(|s| s.descriptor.clone()).collect();
    let mut writer =
        GlobalWriter::new(output.clone(), &descriptors, config.sync_checkpoint_records);
    let mut progress = Progress {
        lsn: start,
        slot: cdc.replication_slot.clone(),
        publication: cdc.publication.clone(),
        snapshot_at: input
            .shared_state()
            .and_then(|s| s.get("snapshot_at"))
            .and_then(Value::as_i64)
            .filter(|_| {
                selected
                    .iter()
                    .any(|s| matches!(s.phase, Phase::Snapshot(Some(_))))
            })
            .unwrap_or_else(snapshot::now),
        streams: BTreeMap::new(),
    };
    for s in &selected {
        match &s.phase {
            Phase::Streaming => progress
                .streams
                .insert(s.descriptor.clone(), state::streaming()),
            Phase::Snapshot(Some(c)) => progress
                .streams
                .insert(s.descriptor.clone(), serde_json::to_value(c)?),
            Phase::Snapshot(None) => None,
        };
    }
    let env = snapshot::Env {
        connector,
        config,
        cdc,
        marker_lsn: slot.restart,
    };
    snapshot::run(&env, &selected, &mut writer, &mut progress).await?;
    let end = stream::run(&ctl, cdc, start, &selected, &mut writer, &mut progress).await?;
    progress.emit(&mut writer);
    writer.finish();
    if cdc.lsn_commit_behaviour == LsnCommitBehaviour::WhileReading && end > slot.confirmed_flush {
        slot::advance(&ctl, &cdc.replication_slot, end).await?;
    }
    Ok(())
}

/// The configured streams as tables, checked to be in the publication with a primary key,
/// each with its phase from the state.
async fn select(
    ctl: &Client,
    config: &PostgresConfig,
    cdc: &CdcSettings,
    streams: &[&ConfiguredAirbyteStream],
    input: &InputState,
) -> Result<Vec<Selected>> {
    let tables = discover::tables(ctl, &config.schema_list()).await?;
    let published = slot::published(ctl, &cdc.publication).await?;
    let mut out = Vec::new();
    for s in streams {
        let d = s.descriptor();
        let table = tables
            .iter()
            .find(|t| t.name == d.name && Some(&t.schema) == d.namespace.as_ref())
            .ok_or_else(|| Error::config(format!("stream '{d}' is not a table of the database")))?;
        if let Some(why) = not_incremental(table, &published) {
            return Err(Error::config(format!(
                "stream '{d}' cannot be read incrementally with CDC: {why}"
            )));
        }
        out.push(Selected {
            phase: state::phase(input.stream_state(&d))?,
            descriptor: d,
            table: Arc::new(table.clone()),
        });
    }
    Ok(out)
}

/// Why a table can only be read in full refresh in CDC mode, with the SQL to change that.
pub fn not_incremental(table: &Table, published: &HashSet<(String, String)>) -> Option<String> {
    if !matches!(table.relkind, 'r' | 'p') {
        return Some("only tables are replicated (this is a view or a materialized view)".into());
    }
    if !published.contains(&(table.schema.clone(), table.name.clone())) {
        return Some(format!(
            "table {} is not in the publication: run ALTER PUBLICATION <publication> ADD TABLE {};",
            table.sql_name(),
            table.sql_name()
        ));
    }
    if table.primary_key.is_empty() {
        return Some(format!(
            "table {} has no primary key: add one (ALTER TABLE {} ADD PRIMARY KEY (…);)",
            table.sql_name(),
            table.sql_name()
        ));
    }
    None
}

/// Splits a catalog's streams into those CDC reads (incremental) and the others.
pub fn is_cdc_stream(s: &ConfiguredAirbyteStream) -> bool {
    s.sync_mode == SyncMode::Incremental
}

/// The publication option value (a quoted identifier list).
fn publication_names(cdc: &CdcSettings) -> String {
    quote_ident(&cdc.publication)
}
