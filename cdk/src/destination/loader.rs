//! The batching loader: parses input on the fast path (on decoder threads, see `decode`, or on
//! its own task), groups records by stream, hands batches to a [`BatchWriter`], and echoes each
//! STATE exactly once, in input order, after every record before it is committed.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::batch::boxed_meta;
use super::decode::{self, Event, Piece, Pieces, StreamIds};
use super::stop::StopSignals;
use super::{Batch, Input, StreamPlan};
use crate::output::Output;
use crate::protocol::*;
use crate::{Error, Result};

/// Index of a stream in the configured catalog.
pub type StreamId = usize;

/// How a sync ended, for [`BatchWriter::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every record was received and committed, and every state acknowledged.
    Success,
    /// The sync stopped early; what was committed stays, nothing more may be finalised.
    Failure,
}

/// What a destination implements to be driven by [`load`].
///
/// The loader calls, in this order:
/// 1. [`open`](Self::open) for each configured stream, in catalog order (`id` 0, 1, …), with
///    the stream's [`StreamPlan`] (its write mode, resolved and checked by the loader);
/// 2. [`write`](Self::write) and [`commit`](Self::commit), interleaved, while input comes;
/// 3. [`close`](Self::close) for every stream whose `open` succeeded, and only those.
///
/// States are acknowledged (echoed on stdout) only after a `commit` covering every record
/// before them returned `Ok`. Once `open`, `write` or `commit` returned an error, the loader
/// calls nothing more but `close(id, Outcome::Failure)` for each opened stream. Records past
/// the last acknowledged state may or may not have been stored (a file completed at its size
/// limit stays); the platform sends them again from that state, so an appending destination
/// may hold them twice, and a deduplicating one merges them. A stream whose `open` failed is
/// not closed: `open` cleans up after itself.
#[async_trait]
pub trait BatchWriter: Send {
    /// Prepares stream `id` before any record (create tables, open files), writing as `plan`
    /// says. The plan is already checked against the destination's supported modes.
    async fn open(
        &mut self,
        id: StreamId,
        stream: &ConfiguredAirbyteStream,
        plan: StreamPlan,
    ) -> Result<()>;

    /// Writes records of stream `id`; they need not be durable until
    /// [`commit`](Self::commit).
    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()>;

    /// Makes every record written so far to the `streams` listed durable: once it returns
    /// `Ok`, the loader echoes the states those records came before. Called once per
    /// acknowledgement round, with the streams written since the previous round (never
    /// empty, in id order). A transactional destination commits its one transaction (all
    /// streams at once); a per-stream one completes each listed stream's files.
    async fn commit(&mut self, streams: &[StreamId]) -> Result<()>;

    /// Ends the sync for an opened stream `id`. On [`Outcome::Success`] every record was
    /// committed: finalise (e.g. swap in an overwritten table). On [`Outcome::Failure`],
    /// abandon what was not committed and leave earlier data readable. Every opened stream is
    /// closed, even when closing another one failed; the first error is returned.
    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()>;
}

/// Flush thresholds of the loader.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// A stream's batch goes to the writer at this many records…
    pub batch_records: usize,
    /// …its first batch at this many at most (so that the writer, and its server, start while
    /// the rest of the input is decoded)…
    pub first_batch_records: usize,
    /// …or this many bytes of record data.
    pub batch_bytes: usize,
    /// Pending states are acknowledged (commit, then echo) once this much time passed…
    pub commit_interval: Duration,
    /// …or this many bytes of records arrived since the last commit.
    pub commit_bytes: usize,
    /// Threads decoding the input side by side (chunks of whole lines, taken back in input
    /// order); 0 decodes on the loader's own task. The default is one per core when there
    /// are two or more (at most 4); `CDK_DECODE_THREADS` overrides it.
    pub decode_threads: usize,
    /// Whether the decoder threads note where each record's top-level fields lie
    /// ([`RecordRef::fields`](super::RecordRef::fields)), for a writer that reads records
    /// field by field; off by default (it costs the decoding a little).
    pub record_fields: bool,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            batch_records: 10_000,
            first_batch_records: 1_250,
            batch_bytes: 8 << 20,
            commit_interval: Duration::from_secs(15),
            commit_bytes: 64 << 20,
            decode_threads: decode::default_threads(),
            record_fields: false,
        }
    }
}

/// Runs a whole `write`: resolves every configured stream's [`StreamPlan`] against the
/// `supported` modes (the destination's
/// [`supported_sync_modes`](super::Destination::supported_sync_modes)), opens the streams,
/// loads the input, commits, echoes states, closes. A stream the plans refuse is a config
/// error before anything is opened. On any later error the opened streams are closed with
/// [`Outcome::Failure`] and no state past the last successful commit has been echoed.
pub async fn load<W: BatchWriter>(
    input: Input,
    catalog: &ConfiguredAirbyteCatalog,
    supported: &[DestinationSyncMode],
    writer: &mut W,
    options: LoaderOptions,
    output: &Output,
) -> Result<()> {
    let plans = catalog
        .streams
        .iter()
        .map(|stream| StreamPlan::resolve(stream, supported))
        .collect::<Result<Vec<_>>>()?;
    let mut options = options;
    // A tuning (and testing) knob: acknowledge states at least this often.
    if let Some(ms) = std::env::var("CDK_COMMIT_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.commit_interval = Duration::from_millis(ms);
    }
    // And its size twin: acknowledge states at least every this many MiB of input.
    if let Some(mib) = std::env::var("CDK_COMMIT_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options.commit_bytes = mib.max(1) << 20;
    }
    // And one to decode on the loader's task only.
    if let Some(threads) = std::env::var(decode::THREADS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.decode_threads = threads;
    }
    let mut loader = Loader::new(catalog, writer, options, output);
    let result = loader.run(input, catalog, &plans).await;
    let outcome = if result.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let mut closed = Ok(());
    for id in 0..loader.opened {
        let r = loader.writer.close(id, outcome).await;
        if closed.is_ok() {
            closed = r;
        }
    }
    result.and(closed)
}

/// How the input is read: decoded on other threads, or line by line on the loader's task.
enum Reading {
    Pieces(Pieces),
    Inline(Input),
}

struct StreamBuf {
    batch: Batch,
    dirty: bool,
    /// Whether a batch of the stream went to the writer: until then batches are cut short.
    started: bool,
    since_state: u64,
    /// The batch's first records that came before the last pending state.
    before_state: usize,
}

struct Loader<'a, W> {
    writer: &'a mut W,
    options: LoaderOptions,
    output: &'a Output,
    ids: StreamIds,
    streams: Vec<StreamBuf>,
    /// Streams `0..opened` were opened (and must be closed).
    opened: usize,
    /// The streams of the current commit round (kept to reuse its allocation).
    to_commit: Vec<StreamId>,
    pending: Vec<AirbyteStateMessage>,
    /// Records arrived after the last pending state: a commit on time cuts the batches at the
    /// state, since records made durable with no state to acknowledge them would be written
    /// twice by a resumed sync.
    records_after_state: bool,
    /// Some of them already went to the writer (a full batch): no cut is possible then, and
    /// the next state commits.
    written_after_state: bool,
    since_global_state: u64,
    bytes_since_commit: usize,
    last_commit: Instant,
    records: u64,
    skipped_lines: u64,
}

impl<'a, W: BatchWriter> Loader<'a, W> {
    fn new(
        catalog: &ConfiguredAirbyteCatalog,
        writer: &'a mut W,
        options: LoaderOptions,
        output: &'a Output,
    ) -> Self {
        Self {
            writer,
            options,
            output,
            ids: StreamIds::new(catalog),
            streams: catalog
                .streams
                .iter()
                .map(|_| StreamBuf {
                    batch: Batch::default(),
                    dirty: false,
                    started: false,
                    since_state: 0,
                    before_state: 0,
                })
                .collect(),
            opened: 0,
            to_commit: Vec::new(),
            pending: Vec::new(),
            records_after_state: false,
            written_after_state: false,
            since_global_state: 0,
            bytes_since_commit: 0,
            last_commit: Instant::now(),
            records: 0,
            skipped_lines: 0,
        }
    }

    async fn run(
        &mut self,
        input: Input,
        catalog: &ConfiguredAirbyteCatalog,
        plans: &[StreamPlan],
    ) -> Result<()> {
        // The decoder threads start on the input while the writer opens its streams (tables
        // created, files begun): the first batch is then ready sooner.
        let input = match self.options.decode_threads {
            0 => Reading::Inline(input),
            threads => Reading::Pieces(Pieces::start(
                input,
                threads,
                &self.ids,
                self.options.record_fields,
            )?),
        };
        for (id, (stream, plan)) in catalog.streams.iter().zip(plans).enumerate() {
            self.writer.open(id, stream, *plan).await?;
            self.opened = id + 1;
        }
        match input {
            Reading::Pieces(pieces) => self.load_pieces(pieces).await?,
            Reading::Inline(input) => self.load_inline(input).await?,
        }
        self.commit_all().await?;
        if self.skipped_lines > 0 {
            tracing::warn!(
                skipped = self.skipped_lines,
                "input lines were not protocol messages"
            );
        }
        tracing::info!(records = self.records, "write complete");
        Ok(())
    }

    /// Commits on time even while the input is quiet.
    fn ticker(&self) -> tokio::time::Interval {
        let mut tick =
            tokio::time::interval(self.options.commit_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    }

    /// Reads and decodes on this task, line by line (`decode_threads` = 0).
    async fn load_inline(&mut self, input: Input) -> Result<()> {
        let (mut chunks, spent) = spawn_reader(input);
        let mut carry: Vec<u8> = Vec::new();
        let (mut tick, mut stop) = (self.ticker(), StopSignals::listen());
        loop {
            let chunk = tokio::select! {
                chunk = chunks.recv() => chunk,
                error = stop.recv() => return Err(error),
                _ = tick.tick() => {
                    self.commit_on_time().await?;
                    continue;
                }
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk.map_err(read_error)?;
            let mut rest = &chunk[..];
            if !carry.is_empty() {
                match memchr::memchr(b'\n', rest) {
                    Some(nl) => {
                        carry.extend_from_slice(&rest[..nl]);
                        let line = std::mem::take(&mut carry);
                        self.line(&line).await?;
                        rest = &rest[nl + 1..];
                    }
                    None => {
                        carry.extend_from_slice(rest);
                        continue;
                    }
                }
            }
            while let Some(nl) = memchr::memchr(b'\n', rest) {
                self.line(&rest[..nl]).await?;
                rest = &rest[nl + 1..];
            }
            carry.extend_from_slice(rest);
            let _ = spent.send(chunk);
        }
        if !carry.is_empty() {
            self.line(&carry).await?;
        }
        Ok(())
    }

    /// Takes the input as pieces decoded by other threads, in input order.
    async fn load_pieces(&mut self, mut pieces: Pieces) -> Result<()> {
        let (mut tick, mut stop) = (self.ticker(), StopSignals::listen());
        loop {
            let piece = tokio::select! {
                piece = pieces.recv() => piece,
                error = stop.recv() => return Err(error),
                _ = tick.tick() => {
                    self.commit_on_time().await?;
                    continue;
                }
            };
            let Some(piece) = piece else { break };
            let mut piece = piece.map_err(read_error)?;
            self.piece(&mut piece).await?;
            pieces.recycle(piece);
        }
        Ok(())
    }

    /// The records and messages of a decoded piece, in their order.
    async fn piece(&mut self, piece: &mut Piece) -> Result<()> {
        let Piece {
            text,
            records,
            events,
            fields,
            ..
        } = piece;
        let mut events = events.drain(..).peekable();
        let (mut start, mut fields_start) = (0, 0);
        for (i, record) in records.iter_mut().enumerate() {
            while let Some((_, event)) = events.next_if(|(at, _)| *at == i) {
                self.event(event).await?;
            }
            let data = &text[start..record.end];
            start = record.end;
            let record_fields =
                (record.has_fields).then(|| &fields[fields_start..record.fields_end]);
            fields_start = record.fields_end;
            let meta = record.meta.take();
            self.record(record.stream, data, record_fields, record.emitted_at, meta)
                .await?;
        }
        for (_, event) in events {
            self.event(event).await?;
        }
        Ok(())
    }

    async fn event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Message(message) => self.message(message).await,
            Event::Skipped(warning) => {
                self.skip(&warning);
                Ok(())
            }
            Event::UnknownStream(descriptor) => Err(decode::unknown_stream(&descriptor)),
        }
    }

    fn skip(&mut self, warning: &str) {
        self.skipped_lines += 1;
        tracing::warn!("{warning}");
    }

    async fn message(&mut self, message: AirbyteMessage) -> Result<()> {
        match message {
            AirbyteMessage::State { state } => self.state(state).await,
            other => {
                tracing::debug!("ignoring a {} message", message_kind(&other));
                Ok(())
            }
        }
    }

    async fn line(&mut self, line: &[u8]) -> Result<()> {
        match decode::parse(line) {
            None => Ok(()),
            Some(Ok(InputLine::Record(record))) => {
                let id = self
                    .ids
                    .get(&record.stream, record.namespace.as_deref())
                    .map_err(|d| decode::unknown_stream(&d))?;
                let meta = boxed_meta(record.meta);
                self.record(id, record.data.get(), None, record.emitted_at, meta)
                    .await
            }
            Some(Ok(InputLine::Message(message))) => self.message(message).await,
            Some(Err(warning)) => {
                self.skip(&warning);
                Ok(())
            }
        }
    }

    /// Adds a record to its stream's batch, and hands the batch on when it is full.
    async fn record(
        &mut self,
        id: StreamId,
        data: &str,
        fields: Option<&[[u32; 4]]>,
        emitted_at: i64,
        meta: Option<Box<AirbyteRecordMessageMeta>>,
    ) -> Result<()> {
        self.bytes_since_commit += data.len();
        let stream = &mut self.streams[id];
        stream.batch.push_boxed(data, fields, emitted_at, meta);
        stream.since_state += 1;
        self.since_global_state += 1;
        self.records += 1;
        self.records_after_state = true;
        let batch = &stream.batch;
        let records = match stream.started {
            true => self.options.batch_records,
            false => self
                .options
                .first_batch_records
                .min(self.options.batch_records),
        };
        if batch.len() >= records || batch.data_bytes() >= self.options.batch_bytes {
            stream.before_state = 0;
            self.written_after_state |= !self.pending.is_empty();
            self.write_batch(id).await?;
        }
        Ok(())
    }

    async fn state(&mut self, mut state: AirbyteStateMessage) -> Result<()> {
        let count = match state.kind() {
            AirbyteStateType::Stream => {
                let id = state
                    .stream
                    .as_ref()
                    .and_then(|s| self.ids.of(&s.stream_descriptor));
                match id {
                    Some(id) => std::mem::take(&mut self.streams[id].since_state),
                    None => 0,
                }
            }
            AirbyteStateType::Global | AirbyteStateType::Legacy => {
                for s in &mut self.streams {
                    s.since_state = 0;
                }
                std::mem::take(&mut self.since_global_state)
            }
        };
        state.destination_stats = Some(AirbyteStateStats::records(count));
        self.pending.push(state);
        self.records_after_state = false;
        self.written_after_state = false;
        for stream in &mut self.streams {
            stream.before_state = stream.batch.len();
        }
        if self.commit_due() {
            self.commit_all().await?;
        }
        Ok(())
    }

    /// A quiet input still gets its states acknowledged on time: what came before the last
    /// state is committed, what came after stays in the batches.
    async fn commit_on_time(&mut self) -> Result<()> {
        if !self.commit_due() {
            return Ok(());
        }
        if !self.records_after_state {
            return self.commit_all().await;
        }
        if self.written_after_state {
            return Ok(()); // the next state commits
        }
        for id in 0..self.streams.len() {
            let stream = &mut self.streams[id];
            let after = stream
                .batch
                .split_off(std::mem::take(&mut stream.before_state));
            self.write_batch(id).await?;
            self.streams[id].batch = after;
        }
        self.commit_written().await
    }

    fn commit_due(&self) -> bool {
        !self.pending.is_empty()
            && (self.bytes_since_commit >= self.options.commit_bytes
                || self.last_commit.elapsed() >= self.options.commit_interval)
    }

    async fn write_batch(&mut self, id: StreamId) -> Result<()> {
        let batch = std::mem::replace(&mut self.streams[id].batch, Batch::recycled());
        if batch.is_empty() {
            return Ok(());
        }
        self.streams[id].dirty = true;
        self.streams[id].started = true;
        self.writer.write(id, batch).await
    }

    /// Writes every buffered record, commits every stream written to, then echoes the
    /// pending states in the order they arrived.
    async fn commit_all(&mut self) -> Result<()> {
        for id in 0..self.streams.len() {
            self.write_batch(id).await?;
        }
        self.commit_written().await
    }

    /// Commits what went to the writer, then echoes the pending states in order.
    async fn commit_written(&mut self) -> Result<()> {
        let mut to_commit = std::mem::take(&mut self.to_commit);
        to_commit.clear();
        for (id, stream) in self.streams.iter_mut().enumerate() {
            if std::mem::take(&mut stream.dirty) {
                to_commit.push(id);
            }
        }
        if !to_commit.is_empty() {
            let committed = self.writer.commit(&to_commit).await;
            self.to_commit = to_commit;
            committed?;
        }
        for state in self.pending.drain(..) {
            self.output.send(AirbyteMessage::State { state });
        }
        self.output.flush();
        self.bytes_since_commit = 0;
        self.last_commit = Instant::now();
        Ok(())
    }
}

fn read_error(e: std::io::Error) -> Error {
    Error::system(format!("cannot read input: {e}"))
}

fn message_kind(m: &AirbyteMessage) -> &'static str {
    match m {
        AirbyteMessage::Record { .. } => "RECORD",
        AirbyteMessage::State { .. } => "STATE",
        AirbyteMessage::Log { .. } => "LOG",
        AirbyteMessage::Spec { .. } => "SPEC",
        AirbyteMessage::ConnectionStatus { .. } => "CONNECTION_STATUS",
        AirbyteMessage::Catalog { .. } => "CATALOG",
        AirbyteMessage::Trace { .. } => "TRACE",
        AirbyteMessage::Control { .. } => "CONTROL",
        AirbyteMessage::DestinationCatalog { .. } => "DESTINATION_CATALOG",
        AirbyteMessage::Unknown => "unknown",
    }
}

type Chunks = mpsc::Receiver<std::io::Result<Vec<u8>>>;

/// Reads the input on its own thread, so parsing overlaps with I/O. A plain
/// thread (not a runtime blocking task) so a stuck stdin never holds up shutdown. Chunks
/// sent back on the returned sender are reused: no fresh allocation (and page faults) per read.
fn spawn_reader(input: Input) -> (Chunks, std::sync::mpsc::Sender<Vec<u8>>) {
    const CHUNK: usize = decode::CHUNK;
    let (tx, rx) = mpsc::channel(4);
    let (spent_tx, spent) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut reader = input.into_inner();
    std::thread::spawn(move || {
        loop {
            // One read per chunk: whatever arrived is handed on at once, so a source that
            // pauses never leaves records (and their states) waiting in this buffer.
            let mut chunk = spent.try_recv().unwrap_or_default();
            chunk.resize(CHUNK, 0);
            let n = match reader.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            chunk.truncate(n);
            if tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    (rx, spent_tx)
}
