//! CDC's initial snapshot: each stream without a complete snapshot is read in ctid chunks
//! (resumable from its ctid state), its records carrying `_ab_cdc_lsn` = the slot's
//! restart position, so every change replayed afterwards sorts after them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdk::protocol::StreamDescriptor;
use cdk::source::GlobalWriter;
use cdk::{Error, Result, TrustedJson};
use serde_json::Value;

use super::state::{Phase, streaming};
use super::{Progress, Selected};
use crate::config::{CdcSettings, PostgresConfig};
use crate::connect::Connector;
use crate::copy::Tuple;
use crate::read::{ReadEnv, RowFormat, RowSink, TableReader};

/// What the snapshot of a sync needs.
pub(crate) struct Env<'a> {
    pub connector: Connector,
    pub config: &'a PostgresConfig,
    pub cdc: &'a CdcSettings,
    pub marker_lsn: u64,
}

/// Snapshots every stream that needs it; fails with a transient error (after a state) once
/// `initial_load_timeout_hours` have passed, so the next sync resumes.
pub(crate) async fn run(
    env: &Env<'_>,
    selected: &[Selected],
    writer: &mut GlobalWriter,
    progress: &mut Progress,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(env.cdc.initial_load_timeout_hours * 3600);
    let suffix = suffix(env.marker_lsn, progress.snapshot_at);
    for s in selected {
        let Phase::Snapshot(resume) = &s.phase else {
            continue;
        };
        tracing::info!(stream = %s.descriptor, "CDC initial snapshot");
        let read_env = ReadEnv {
            connector: env.connector.clone(),
            snapshot: None,
            checkpoint_every: Duration::from_secs(env.config.sync_checkpoint_seconds.max(1)),
            chunk_bytes: env.config.chunk_size_mb.max(1) << 20,
            xmin: false,
        };
        read_env
            .in_snapshot(async |client| {
                let reader = TableReader {
                    table: &s.table,
                    env: &read_env,
                    client,
                };
                let mut sink = Sink {
                    writer: &mut *writer,
                    progress: &mut *progress,
                    stream: s.descriptor.clone(),
                    deadline,
                    hours: env.cdc.initial_load_timeout_hours,
                    timed_out: false,
                };
                if s.table.has_ctid() {
                    let format = RowFormat::new(&s.table, 1).with_suffix(suffix.clone());
                    reader
                        .ctid_load(resume.clone(), Some(streaming()), &mut sink, format)
                        .await
                } else {
                    let format = RowFormat::new(&s.table, 0).with_suffix(suffix.clone());
                    reader.read_all(&mut sink, format).await?;
                    sink.checkpoint(streaming());
                    Ok(())
                }
            })
            .await?;
    }
    Ok(())
}

/// `,"_ab_cdc_lsn":n,"_ab_cdc_updated_at":"<now>","_ab_cdc_deleted_at":null`
fn suffix(lsn: u64, at: i64) -> Vec<u8> {
    let mut s = format!(",\"_ab_cdc_lsn\":{lsn},\"_ab_cdc_updated_at\":").into_bytes();
    super::stream::write_pg_timestamp(at, &mut s);
    s.extend_from_slice(b",\"_ab_cdc_deleted_at\":null");
    s
}

/// Now, in microseconds since 2000-01-01.
pub(crate) fn now() -> i64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    micros - PG_EPOCH_MICROS
}

/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

struct Sink<'a> {
    writer: &'a mut GlobalWriter,
    progress: &'a mut Progress,
    stream: StreamDescriptor,
    deadline: Instant,
    hours: u64,
    timed_out: bool,
}

impl RowSink for Sink<'_> {
    fn row(&mut self, format: &mut RowFormat, t: &Tuple<'_>) -> Result<()> {
        if self.timed_out {
            return Err(Error::transient(format!(
                "the initial load ran for initial_load_timeout_hours ({} h) and stopped at a \
                 checkpoint; the next sync resumes it",
                self.hours
            )));
        }
        let changes = format.build(t)?;
        self.writer
            .record_json(&self.stream, TrustedJson::new(format.json()), &changes)
    }

    fn checkpoint_due(&self) -> bool {
        self.writer.checkpoint_due()
    }

    fn checkpoint(&mut self, state: Value) {
        self.progress.streams.insert(self.stream.clone(), state);
        self.progress.emit(self.writer);
        self.timed_out = Instant::now() >= self.deadline;
    }
}
