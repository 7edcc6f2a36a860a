//! Moving messages: source lines to the destination (records and states, renamed to their
//! destination streams), counting what each stream emitted; and the destination's echoed
//! states back, which mark records as synced and are saved for the next run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use cdk::protocol::*;

use super::report::Reporter;
use super::state::SavedState;

/// Progress is reported every this many records of a stream.
const REPORT_EVERY: u64 = 1 << 14;
/// Records are held back until the state after them, up to this many bytes: a destination
/// then only ever commits whole checkpoints, so after a crash nothing past an acknowledged
/// state stays (beyond this, a source without states is passed on as it comes).
const HOLD_AT_MOST: usize = 64 << 20;

/// One stream's counts in a run.
#[derive(Debug, Default, Clone)]
pub struct StreamStats {
    pub emitted: u64,
    pub bytes_emitted: u64,
    pub synced: u64,
    pub bytes_synced: u64,
    pub status: Option<AirbyteStreamStatus>,
}

/// Why a job failed, as the first connector to say so put it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub origin: String,
    pub message: String,
    pub failure_type: Option<FailureType>,
}

/// A state forwarded to the destination and not yet acknowledged, with what it covers.
struct Checkpoint {
    state: AirbyteStateMessage,
    /// Per stream index: the records and bytes this state acknowledges.
    covers: Vec<(usize, u64, u64)>,
}

/// What the forwarding and acknowledging threads share.
pub struct Shared {
    pub streams: Vec<StreamStats>,
    pub failure: Option<Failure>,
    pub state: SavedState,
    /// The destination was asked to stop: the error it reports for that is not the job's.
    pub destination_stopping: bool,
    pending: VecDeque<Checkpoint>,
}

impl Shared {
    pub fn new(streams: usize, state: SavedState) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            streams: vec![StreamStats::default(); streams],
            failure: None,
            state,
            destination_stopping: false,
            pending: VecDeque::new(),
        }))
    }

    /// Keeps the first failure reported.
    pub fn fail(&mut self, origin: &str, message: String, failure_type: Option<FailureType>) {
        self.failure.get_or_insert(Failure {
            origin: origin.into(),
            message,
            failure_type,
        });
    }
}

/// A stream's RECORD line prefix on each side.
pub struct Route {
    pub from: StreamDescriptor,
    source_prefix: Vec<u8>,
    destination_prefix: Vec<u8>,
    pub to: StreamDescriptor,
}

impl Route {
    pub fn new(from: StreamDescriptor, to: StreamDescriptor) -> Self {
        Self {
            source_prefix: prefix(&from),
            destination_prefix: prefix(&to),
            from,
            to,
        }
    }
}

/// `{"type":"RECORD","record":{"stream":…,"namespace":…,"data":` as the kit writes it.
fn prefix(d: &StreamDescriptor) -> Vec<u8> {
    let mut p = br#"{"type":"RECORD","record":{"stream":"#.to_vec();
    let _ = serde_json::to_writer(&mut p, &d.name);
    if let Some(ns) = &d.namespace {
        p.extend_from_slice(br#","namespace":"#);
        let _ = serde_json::to_writer(&mut p, ns);
    }
    p.extend_from_slice(br#","data":"#);
    p
}

/// The source side: reads the source's stdout and writes records and states to `to`.
pub struct Forwarder {
    pub routes: Vec<Route>,
    pub shared: Arc<Mutex<Shared>>,
    pub reporter: Arc<Reporter>,
    /// Per stream: records and bytes since its last state.
    since_state: Vec<(u64, u64)>,
    totals: Vec<(u64, u64)>,
    out: Vec<u8>,
    /// Records since the last state, not yet sent.
    held: Vec<u8>,
}

/// Where forwarding stopped: the destination's input (still open) and the records after the
/// source's last state, to send only if the source succeeded.
pub struct Forwarded<W: Write> {
    pub writer: BufWriter<W>,
    pub held: Vec<u8>,
}

impl<W: Write> Forwarded<W> {
    /// Sends the held records and closes the destination's input.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.writer.write_all(&self.held)?;
        self.writer.flush()
    }
}

impl Forwarder {
    pub fn new(routes: Vec<Route>, shared: Arc<Mutex<Shared>>, reporter: Arc<Reporter>) -> Self {
        let n = routes.len();
        Self {
            routes,
            shared,
            reporter,
            since_state: vec![(0, 0); n],
            totals: vec![(0, 0); n],
            out: Vec::new(),
            held: Vec::with_capacity(1 << 20),
        }
    }

    /// Forwards until the source's output ends or the destination stops reading; returns the
    /// writer (still open) so the caller decides whether the destination sees the end. Lines
    /// are handled where they lie in the read buffer; only a line split across two reads is
    /// copied first.
    pub fn run<W: Write>(mut self, from: impl Read, to: W) -> Result<Forwarded<W>> {
        let mut reader = BufReader::with_capacity(1 << 20, from);
        let mut writer = BufWriter::with_capacity(1 << 20, to);
        let mut partial: Vec<u8> = Vec::new();
        let mut last = 0;
        'read: loop {
            let buf = match reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if buf.is_empty() {
                break;
            }
            let size = buf.len();
            let mut rest = buf;
            if !partial.is_empty() {
                let Some(nl) = memchr::memchr(b'\n', rest) else {
                    partial.extend_from_slice(rest);
                    reader.consume(size);
                    continue;
                };
                partial.extend_from_slice(&rest[..=nl]);
                rest = &rest[nl + 1..];
                let line = std::mem::take(&mut partial);
                if self.line(&line, &mut last, &mut writer).is_err() {
                    break; // the destination stopped reading; its exit status tells why
                }
                partial = line;
                partial.clear();
            }
            while let Some(nl) = memchr::memchr(b'\n', rest) {
                if self.line(&rest[..=nl], &mut last, &mut writer).is_err() {
                    break 'read;
                }
                rest = &rest[nl + 1..];
            }
            partial.extend_from_slice(rest);
            reader.consume(size);
        }
        if !partial.is_empty() {
            // A last line without its newline.
            let _ = self.line(&partial, &mut last, &mut writer);
        }
        writer.flush().ok();
        self.publish_emitted();
        Ok(Forwarded {
            writer,
            held: self.held,
        })
    }

    /// One line of the source (with its newline, but for a last line without one).
    fn line(&mut self, line: &[u8], last: &mut usize, to: &mut impl Write) -> Result<()> {
        if line.starts_with(br#"{"type":"RECORD""#) {
            self.record(line, last, to)
        } else {
            self.other(line, to)
        }
    }

    fn record(&mut self, line: &[u8], last: &mut usize, to: &mut impl Write) -> Result<()> {
        let idx = if self
            .routes
            .get(*last)
            .is_some_and(|r| line.starts_with(&r.source_prefix))
        {
            Some(*last)
        } else {
            self.routes
                .iter()
                .position(|r| line.starts_with(&r.source_prefix))
        };
        let Some(idx) = idx else {
            return self.record_slow(line, to);
        };
        *last = idx;
        let route = &self.routes[idx];
        self.held.extend_from_slice(&route.destination_prefix);
        self.held
            .extend_from_slice(&line[route.source_prefix.len()..]);
        self.count(idx, line.len() as u64);
        self.release_if_large(to)
    }

    fn release_if_large(&mut self, to: &mut impl Write) -> Result<()> {
        if self.held.len() >= HOLD_AT_MOST {
            to.write_all(&self.held)?;
            self.held.clear();
        }
        Ok(())
    }

    /// A record in another key order: decoded, renamed and written in the kit's order.
    fn record_slow(&mut self, line: &[u8], to: &mut impl Write) -> Result<()> {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let Ok(InputLine::Record(record)) = decode_line(trimmed) else {
            self.held.extend_from_slice(line);
            return self.release_if_large(to);
        };
        let found = self.routes.iter().position(|r| {
            r.from.name == record.stream
                && r.from.namespace.as_deref() == record.namespace.as_deref()
        });
        let Some(idx) = found else {
            return Ok(()); // a stream that was not configured: the platform drops these too
        };
        self.out.clear();
        self.out
            .extend_from_slice(&self.routes[idx].destination_prefix);
        self.out.extend_from_slice(record.data.get().as_bytes());
        self.out.extend_from_slice(br#","emitted_at":"#);
        self.out
            .extend_from_slice(record.emitted_at.to_string().as_bytes());
        if let Some(meta) = &record.meta {
            self.out.extend_from_slice(br#","meta":"#);
            serde_json::to_writer(&mut self.out, meta)?;
        }
        self.out.extend_from_slice(b"}}\n");
        self.held.extend_from_slice(&self.out);
        self.count(idx, line.len() as u64);
        self.release_if_large(to)
    }

    fn count(&mut self, idx: usize, bytes: u64) {
        let since = &mut self.since_state[idx];
        since.0 += 1;
        since.1 += bytes;
        let total = &mut self.totals[idx];
        total.0 += 1;
        total.1 += bytes;
        if total.0.is_multiple_of(REPORT_EVERY) {
            self.reporter.progress(idx, total.0, total.1);
        }
    }

    fn other(&mut self, line: &[u8], to: &mut impl Write) -> Result<()> {
        let Ok(message) = serde_json::from_slice::<AirbyteMessage>(line) else {
            let text = String::from_utf8_lossy(line);
            if !text.trim().is_empty() {
                self.reporter.line(&format!("source: {}", text.trim_end()));
            }
            return Ok(());
        };
        match message {
            AirbyteMessage::State { state } => self.state(state, to)?,
            AirbyteMessage::Log { log } => self.reporter.log("source", &log),
            AirbyteMessage::Trace { trace } => self.trace(trace.payload),
            _ => {}
        }
        Ok(())
    }

    /// Queues the state with the records it covers, then sends it renamed.
    fn state(&mut self, state: AirbyteStateMessage, to: &mut impl Write) -> Result<()> {
        let covered: Vec<usize> = match state.kind() {
            AirbyteStateType::Stream => {
                let d = state.stream.as_ref().map(|s| &s.stream_descriptor);
                self.routes
                    .iter()
                    .position(|r| Some(&r.from) == d)
                    .into_iter()
                    .collect()
            }
            _ => (0..self.routes.len()).collect(),
        };
        let covers = covered
            .into_iter()
            .map(|i| {
                let (r, b) = std::mem::take(&mut self.since_state[i]);
                (i, r, b)
            })
            .collect();
        let mut renamed = state.clone();
        renamed.destination_stats = None;
        self.rename(&mut renamed);
        if let Ok(mut shared) = self.shared.lock() {
            shared.pending.push_back(Checkpoint { state, covers });
        }
        self.publish_emitted();
        to.write_all(&self.held)?;
        self.held.clear();
        to.write_all(&serde_json::to_vec(&AirbyteMessage::State {
            state: renamed,
        })?)?;
        to.write_all(b"\n")?;
        Ok(())
    }

    fn rename(&self, state: &mut AirbyteStateMessage) {
        let map = |d: &mut StreamDescriptor| {
            if let Some(r) = self.routes.iter().find(|r| &r.from == d) {
                *d = r.to.clone();
            }
        };
        if let Some(s) = &mut state.stream {
            map(&mut s.stream_descriptor);
        }
        if let Some(g) = &mut state.global {
            g.stream_states
                .iter_mut()
                .for_each(|s| map(&mut s.stream_descriptor));
        }
    }

    fn trace(&mut self, payload: TracePayload) {
        match payload {
            TracePayload::Error { error } => {
                self.reporter
                    .line(&format!("source: ERROR {}", error.message));
                if let Ok(mut shared) = self.shared.lock() {
                    shared.fail("source", error.message, error.failure_type);
                }
            }
            TracePayload::StreamStatus { stream_status } => {
                let d = &stream_status.stream_descriptor;
                if let Some(i) = self.routes.iter().position(|r| &r.from == d) {
                    if matches!(
                        stream_status.status,
                        AirbyteStreamStatus::Complete | AirbyteStreamStatus::Incomplete
                    ) {
                        self.reporter
                            .progress(i, self.totals[i].0, self.totals[i].1);
                        self.reporter.finish(i);
                    }
                    if let Ok(mut shared) = self.shared.lock() {
                        shared.streams[i].status = Some(stream_status.status);
                    }
                }
            }
            TracePayload::Estimate { estimate } => {
                let d = StreamDescriptor::new(estimate.name, estimate.namespace);
                if let (Some(i), Some(rows)) = (
                    self.routes.iter().position(|r| r.from == d),
                    estimate.row_estimate,
                ) {
                    self.reporter.estimate(i, rows.max(0) as u64);
                }
            }
            _ => {}
        }
    }

    fn publish_emitted(&self) {
        if let Ok(mut shared) = self.shared.lock() {
            for (i, (records, bytes)) in self.totals.iter().enumerate() {
                shared.streams[i].emitted = *records;
                shared.streams[i].bytes_emitted = *bytes;
            }
        }
    }
}

/// The destination side: reads its stdout; each echoed state marks the records before it as
/// synced and is saved (as the source sent it) for the next run.
pub fn acknowledge(from: impl Read, shared: &Mutex<Shared>, reporter: &Reporter) -> Result<()> {
    for line in BufReader::new(from).lines() {
        let line = line?;
        match serde_json::from_str::<AirbyteMessage>(&line) {
            Ok(AirbyteMessage::State { .. }) => {
                let Ok(mut shared) = shared.lock() else {
                    continue;
                };
                let Some(checkpoint) = shared.pending.pop_front() else {
                    continue;
                };
                for (i, records, bytes) in checkpoint.covers {
                    shared.streams[i].synced += records;
                    shared.streams[i].bytes_synced += bytes;
                }
                shared.state.apply(checkpoint.state);
                shared.state.save()?;
            }
            Ok(AirbyteMessage::Log { log }) => reporter.log("destination", &log),
            Ok(AirbyteMessage::Trace { trace }) => {
                if let TracePayload::Error { error } = trace.payload {
                    let Ok(mut shared) = shared.lock() else {
                        continue;
                    };
                    if shared.destination_stopping {
                        reporter.line(&format!("destination: {}", error.message));
                    } else {
                        reporter.line(&format!("destination: ERROR {}", error.message));
                        shared.fail("destination", error.message, error.failure_type);
                    }
                }
            }
            Ok(_) => {}
            Err(_) if line.trim().is_empty() => {}
            Err(_) => reporter.line(&format!("destination: {line}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its input a few bytes at a time, so lines are split across
    /// reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn forward(input: &[u8], step: usize) -> (Vec<u8>, Vec<u8>, Arc<Mutex<Shared>>) {
        let dir = tempfile::tempdir().unwrap();
        let state = SavedState::load(&dir.path().join("state.json")).unwrap();
        let shared = Shared::new(1, state);
        let routes = vec![Route::new(
            StreamDescriptor::new("users", Some("public".into())),
            StreamDescriptor::new("users", Some("production_public".into())),
        )];
        let reporter = Arc::new(Reporter::new(vec!["public.users".into()], 0));
        let forwarder = Forwarder::new(routes, shared.clone(), reporter);
        let done = forwarder.run(Trickle(input, step), Vec::new()).unwrap();
        let held = done.held.clone();
        let sent = done.writer.into_inner().unwrap();
        (sent, held, shared)
    }

    #[test]
    fn records_are_renamed_counted_and_held_until_their_state() {
        let record = |i: u32| {
            format!(
                r#"{{"type":"RECORD","record":{{"stream":"users","namespace":"public","data":{{"id":{i}}},"emitted_at":1}}}}"#
            )
        };
        let reordered = r#"{"type":"RECORD","record":{"namespace":"public","emitted_at":2,"stream":"users","data":{"id":3}}}"#;
        let state = r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users","namespace":"public"},"stream_state":{"id":2}}}}"#;
        let input = format!(
            "{}\n{}\n{state}\n{{\"type\":\"LOG\",\"log\":{{\"level\":\"DEBUG\",\"message\":\"x\"}}}}\n{reordered}\n{}",
            record(1),
            record(2),
            record(4)
        );
        for step in [1, 7, 64, 1 << 20] {
            let (sent, held, shared) = forward(input.as_bytes(), step);
            let sent = String::from_utf8(sent).unwrap();
            let lines: Vec<&str> = sent.lines().collect();
            assert_eq!(lines.len(), 3, "two records, then their state: {sent}");
            assert!(lines[0].starts_with(
                r#"{"type":"RECORD","record":{"stream":"users","namespace":"production_public","data":{"id":1}"#
            ));
            assert!(lines[2].contains(r#""namespace":"production_public""#));
            assert!(lines[2].starts_with(r#"{"type":"STATE""#));
            // The records after the last state wait for the source's success; the last one
            // has no newline, as it came.
            let held = String::from_utf8(held).unwrap();
            assert_eq!(held.lines().count(), 2, "{held}");
            assert!(
                held.contains(r#""data":{"id":3},"emitted_at":2}"#),
                "{held}"
            );
            assert!(
                held.ends_with(r#""data":{"id":4},"emitted_at":1}}"#),
                "{held}"
            );
            let shared = shared.lock().unwrap();
            assert_eq!(shared.streams[0].emitted, 4);
            let bytes = record(1).len() + record(2).len() + reordered.len() + record(4).len() + 3;
            assert_eq!(shared.streams[0].bytes_emitted, bytes as u64);
            assert_eq!(shared.pending.len(), 1);
            assert_eq!(
                shared.pending[0].covers,
                [(0, 2, (record(1).len() + record(2).len() + 2) as u64)]
            );
        }
    }
}
