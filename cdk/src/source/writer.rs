//! [`RecordWriter`]: how a stream emits records and states. Lines are built in a per-stream
//! buffer and handed to the shared output whole, so concurrent streams never interleave a
//! line, and a record costs one serialisation and a memcpy.

use serde::Serialize;
use serde_json::Value;

use super::Estimate;
use crate::output::{Output, stream_status_payload};
use crate::protocol::*;
use crate::{Error, Result};

const FLUSH_AT: usize = 64 << 10;
/// `emitted_at` is refreshed every this many records: the clock is not free and ms is coarse.
const CLOCK_EVERY: u32 = 256;

/// The text of one JSON object on one line, which its maker vouches for: a source that builds
/// record JSON itself hands it to [`RecordWriter::record_json`], which copies it into the
/// output without parsing it again.
#[derive(Debug, Clone, Copy)]
pub struct TrustedJson<'a>(&'a [u8]);

impl<'a> TrustedJson<'a> {
    /// Wraps `bytes` the caller guarantees are exactly one JSON object (UTF-8, no raw line
    /// breaks). Nothing checks it: anything else corrupts the protocol output.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }
}

/// Emits one stream's records, states, statuses and estimates (see the module docs).
pub struct RecordWriter {
    output: Output,
    descriptor: StreamDescriptor,
    /// `{"type":"RECORD","record":{"stream":…,"namespace":…,"data":`
    prefix: Vec<u8>,
    buf: Vec<u8>,
    emitted_at: i64,
    clock_countdown: u32,
    checkpoint_interval: u64,
    since_state: u64,
    total: u64,
    last_state: Option<Value>,
    running: bool,
}

impl RecordWriter {
    /// A writer for `descriptor` that says a checkpoint is due every `checkpoint_interval`
    /// records.
    pub fn new(output: Output, descriptor: StreamDescriptor, checkpoint_interval: u64) -> Self {
        let mut prefix = br#"{"type":"RECORD","record":{"stream":"#.to_vec();
        // Strings serialise infallibly.
        let _ = serde_json::to_writer(&mut prefix, &descriptor.name);
        if let Some(ns) = &descriptor.namespace {
            prefix.extend_from_slice(br#","namespace":"#);
            let _ = serde_json::to_writer(&mut prefix, ns);
        }
        prefix.extend_from_slice(br#","data":"#);
        Self {
            output,
            descriptor,
            prefix,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            emitted_at: now_millis(),
            clock_countdown: CLOCK_EVERY,
            checkpoint_interval: checkpoint_interval.max(1),
            since_state: 0,
            total: 0,
            last_state: None,
            running: false,
        }
    }

    /// The stream written to.
    pub fn descriptor(&self) -> &StreamDescriptor {
        &self.descriptor
    }

    /// Records emitted so far.
    pub fn record_count(&self) -> u64 {
        self.total
    }

    /// True once enough records passed since the last state that a new one is due.
    pub fn checkpoint_due(&self) -> bool {
        self.since_state >= self.checkpoint_interval
    }

    /// True when at least one state was emitted.
    pub fn has_checkpointed(&self) -> bool {
        self.last_state.is_some()
    }

    /// Emits a record whose data serialises to a JSON object.
    pub fn record<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<()> {
        self.serialized(data, None)
    }

    /// Emits a record whose data is JSON the source built itself, with `meta.changes` when
    /// there are any: the fastest path, one copy and no parsing.
    pub fn record_json(
        &mut self,
        json: TrustedJson<'_>,
        changes: &[AirbyteRecordMessageMetaChange],
    ) -> Result<()> {
        self.begin_record();
        self.buf.extend_from_slice(json.0);
        self.end_record(changes)
    }

    /// Emits a record that comes with a file (a file-based stream): its data, and in
    /// `file_reference` where the file was staged. Records without a file take
    /// [`Self::record`] or [`Self::record_json`].
    pub fn record_with_file<T: Serialize + ?Sized>(
        &mut self,
        data: &T,
        file: &AirbyteRecordMessageFileReference,
    ) -> Result<()> {
        self.serialized(data, Some(file))
    }

    /// A record of `data` serialised here, with its file when it has one.
    fn serialized<T: Serialize + ?Sized>(
        &mut self,
        data: &T,
        file: Option<&AirbyteRecordMessageFileReference>,
    ) -> Result<()> {
        self.begin_record();
        let start = self.buf.len() - self.prefix.len();
        let written = serde_json::to_writer(&mut self.buf, data).and_then(|()| match file {
            Some(file) => {
                self.buf.extend_from_slice(br#","file_reference":"#);
                serde_json::to_writer(&mut self.buf, file)
            }
            None => Ok(()),
        });
        if let Err(e) = written {
            self.buf.truncate(start);
            return Err(Error::system(format!(
                "stream '{}': a record could not be serialised: {e}",
                self.descriptor
            )));
        }
        self.end_record(&[])
    }

    /// [`Self::record_with_file`] for record data that is JSON the source built itself.
    pub fn record_json_with_file(
        &mut self,
        json: TrustedJson<'_>,
        file: &AirbyteRecordMessageFileReference,
    ) -> Result<()> {
        self.begin_record();
        self.buf.extend_from_slice(json.0);
        self.buf.extend_from_slice(br#","file_reference":"#);
        // A struct of strings and an integer serialises infallibly.
        let _ = serde_json::to_writer(&mut self.buf, file);
        self.end_record(&[])
    }

    /// Emits a record, then a state from `state` when one is due: the usual loop body of a
    /// stream that reads in cursor order.
    pub fn record_with_state<T: Serialize + ?Sized>(
        &mut self,
        data: &T,
        state: impl FnOnce() -> Value,
    ) -> Result<()> {
        self.record(data)?;
        if self.checkpoint_due() {
            self.checkpoint(state());
        }
        Ok(())
    }

    fn begin_record(&mut self) {
        if !self.running {
            self.running = true;
            self.push_trace(stream_status_payload(
                &self.descriptor,
                AirbyteStreamStatus::Running,
                Vec::new(),
            ));
        }
        self.buf.extend_from_slice(&self.prefix);
    }

    fn end_record(&mut self, changes: &[AirbyteRecordMessageMetaChange]) -> Result<()> {
        self.clock_countdown -= 1;
        if self.clock_countdown == 0 {
            self.clock_countdown = CLOCK_EVERY;
            self.emitted_at = now_millis();
        }
        self.buf.extend_from_slice(br#","emitted_at":"#);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(self.emitted_at).as_bytes());
        if !changes.is_empty() {
            self.buf.extend_from_slice(br#","meta":{"changes":"#);
            serde_json::to_writer(&mut self.buf, changes)?;
            self.buf.push(b'}');
        }
        self.buf.extend_from_slice(b"}}\n");
        self.since_state += 1;
        self.total += 1;
        if self.buf.len() >= FLUSH_AT {
            self.output.write_lines(&self.buf);
            self.buf.clear();
        }
        Ok(())
    }

    /// Emits a STREAM state carrying the records since the previous one. A state equal to the
    /// last one is not repeated (its records count towards the next).
    pub fn checkpoint(&mut self, state: Value) {
        if self.last_state.as_ref() == Some(&state) {
            return;
        }
        let mut message = AirbyteStateMessage::stream(self.descriptor.clone(), state.clone());
        message.source_stats = Some(AirbyteStateStats::records(self.since_state));
        self.push_message(&AirbyteMessage::State { state: message });
        self.since_state = 0;
        self.last_state = Some(state);
        self.flush();
    }

    /// Says the stream is waiting on a rate limit (a RUNNING status with a RATE_LIMITED reason).
    pub fn rate_limited(&mut self, quota_reset_ms: Option<i64>) {
        let reason = AirbyteStreamStatusReason {
            reason_type: AirbyteStreamStatusReasonType::RateLimited,
            rate_limited: Some(AirbyteStreamStatusRateLimitedReason {
                quota_reset: quota_reset_ms,
            }),
        };
        self.push_trace(stream_status_payload(
            &self.descriptor,
            AirbyteStreamStatus::Running,
            vec![reason],
        ));
        self.flush();
    }

    /// Emits an ESTIMATE trace for this stream.
    pub fn estimate(&mut self, estimate: Estimate) {
        self.push_trace(TracePayload::Estimate {
            estimate: AirbyteEstimateTraceMessage {
                name: self.descriptor.name.clone(),
                estimate_type: EstimateType::Stream,
                namespace: self.descriptor.namespace.clone(),
                row_estimate: Some(estimate.rows),
                byte_estimate: estimate.bytes,
            },
        });
    }

    /// Hands buffered lines to the output.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.output.write_lines(&self.buf);
            self.buf.clear();
        }
        self.output.flush();
    }

    fn push_trace(&mut self, payload: TracePayload) {
        let trace = AirbyteTraceMessage {
            emitted_at: now_millis() as f64,
            payload,
        };
        self.push_message(&AirbyteMessage::Trace { trace });
    }

    fn push_message(&mut self, message: &AirbyteMessage) {
        // Protocol types always serialise (string keys only).
        let _ = serde_json::to_writer(&mut self.buf, message);
        self.buf.push(b'\n');
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.output.write_lines(&self.buf);
            self.buf.clear();
        }
    }
}
