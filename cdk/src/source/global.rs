//! [`GlobalWriter`]: for sources whose streams share one position (CDC reads every table from
//! one log), records of several streams and GLOBAL states carrying the shared position.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::RecordWriter;
use crate::output::Output;
use crate::protocol::*;
use crate::{Error, Result};

/// Emits records of several streams and GLOBAL states with their shared position (CDC reads
/// every table from one log).
pub struct GlobalWriter {
    output: Output,
    streams: BTreeMap<StreamDescriptor, RecordWriter>,
    since_state: u64,
    checkpoint_interval: u64,
    last_state: Option<(Option<Value>, Vec<AirbyteStreamState>)>,
}

impl GlobalWriter {
    /// Emits STARTED for each stream.
    pub fn new(output: Output, streams: &[StreamDescriptor], checkpoint_interval: u64) -> Self {
        let streams = streams
            .iter()
            .map(|d| {
                output.stream_status(d, AirbyteStreamStatus::Started);
                (
                    d.clone(),
                    RecordWriter::new(output.clone(), d.clone(), u64::MAX),
                )
            })
            .collect();
        Self {
            output,
            streams,
            since_state: 0,
            checkpoint_interval,
            last_state: None,
        }
    }

    /// Emits a record of `stream` (one of those given to `new`).
    pub fn record<T: Serialize + ?Sized>(
        &mut self,
        stream: &StreamDescriptor,
        data: &T,
    ) -> Result<()> {
        let writer = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| Error::system(format!("stream '{stream}' is not part of this sync")))?;
        writer.record(data)?;
        self.since_state += 1;
        Ok(())
    }

    /// Emits a record of `stream` from JSON the source built itself, with `meta.changes`
    /// when there are any (see [`RecordWriter::record_json`]).
    pub fn record_json(
        &mut self,
        stream: &StreamDescriptor,
        json: super::TrustedJson<'_>,
        changes: &[AirbyteRecordMessageMetaChange],
    ) -> Result<()> {
        let writer = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| Error::system(format!("stream '{stream}' is not part of this sync")))?;
        writer.record_json(json, changes)?;
        self.since_state += 1;
        Ok(())
    }

    /// True once enough records passed since the last state that a new one is due.
    pub fn checkpoint_due(&self) -> bool {
        self.since_state >= self.checkpoint_interval
    }

    /// Emits a GLOBAL state after every record so far, unless it equals the previous one.
    pub fn checkpoint(
        &mut self,
        shared_state: Option<Value>,
        stream_states: Vec<AirbyteStreamState>,
    ) {
        let state = (shared_state, stream_states);
        if self.last_state.as_ref() == Some(&state) {
            return;
        }
        for writer in self.streams.values_mut() {
            writer.flush();
        }
        let mut message = AirbyteStateMessage::global(state.0.clone(), state.1.clone());
        message.source_stats = Some(AirbyteStateStats::records(self.since_state));
        self.output.send(AirbyteMessage::State { state: message });
        self.since_state = 0;
        self.last_state = Some(state);
    }

    /// Flushes and emits COMPLETE for every stream. Call after the final checkpoint.
    pub fn finish(mut self) {
        for (descriptor, writer) in &mut self.streams {
            writer.flush();
            self.output
                .stream_status(descriptor, AirbyteStreamStatus::Complete);
        }
    }
}
