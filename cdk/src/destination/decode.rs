//! Decoding the loader's input on several threads: a reader thread cuts the input into chunks
//! of whole lines and deals them out in turn to decoder threads; each decoder turns a chunk into
//! a [`Piece`] (the records' data texts with their stream and metadata, and the other messages
//! in between); the loader takes the pieces back in the same turn, so records and states keep
//! their input order exactly.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc as sync;

use tokio::sync::mpsc;

use super::batch::boxed_meta;
use super::{Input, StreamId};
use crate::protocol::*;
use crate::protocol::{Prefix, decode_line_with_fields};
use crate::{Error, Result};

/// Bytes asked of the input per read.
pub(crate) const CHUNK: usize = 256 << 10;

/// The environment variable that sets the number of decoder threads (0: decode inline).
pub(crate) const THREADS_VAR: &str = "CDK_DECODE_THREADS";

/// Decoder threads by default: one per core (at most 4) when there are two cores or more;
/// none on a single core, where decoding inline saves a copy.
pub(crate) fn default_threads() -> usize {
    match std::thread::available_parallelism().map(usize::from) {
        Ok(n) if n >= 2 => n.min(4),
        _ => 0,
    }
}

/// The catalog index of each stream. Records come in runs of one stream, so the last answer
/// is checked first (no allocation or hashing per record).
#[derive(Debug, Clone)]
pub(crate) struct StreamIds {
    ids: Arc<HashMap<StreamDescriptor, StreamId>>,
    last: Option<(StreamDescriptor, StreamId)>,
}

impl StreamIds {
    pub(crate) fn new(catalog: &ConfiguredAirbyteCatalog) -> Self {
        let ids = catalog
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| (s.descriptor(), i))
            .collect();
        Self {
            ids: Arc::new(ids),
            last: None,
        }
    }

    /// The index of a record's stream, or its descriptor when it is not in the catalog.
    pub(crate) fn get(
        &mut self,
        name: &str,
        namespace: Option<&str>,
    ) -> std::result::Result<StreamId, StreamDescriptor> {
        if let Some((last, id)) = &self.last
            && last.name == name
            && last.namespace.as_deref() == namespace
        {
            return Ok(*id);
        }
        let descriptor = StreamDescriptor::new(name, namespace.map(str::to_string));
        let Some(&id) = self.ids.get(&descriptor) else {
            return Err(descriptor);
        };
        self.last = Some((descriptor, id));
        Ok(id)
    }

    /// The index of the stream `descriptor` names, if it is in the catalog.
    pub(crate) fn of(&self, descriptor: &StreamDescriptor) -> Option<StreamId> {
        self.ids.get(descriptor).copied()
    }
}

/// The error for a record of a stream the catalog does not have.
pub(crate) fn unknown_stream(descriptor: &StreamDescriptor) -> Error {
    Error::system(format!(
        "received a record for stream '{descriptor}', which is not in the configured catalog"
    ))
}

/// One input line (without its newline) as the loader reads it: `None` for a blank line,
/// `Err(warning)` for a line that is not a protocol message (it is skipped with a warning).
pub(crate) fn parse(line: &[u8]) -> Option<std::result::Result<InputLine<'_>, String>> {
    let line = content(line)?;
    Some(decode_line(line).map_err(|e| skipping(line, &e)))
}

/// [`parse`], also noting where the fields of a record's data lie (see
/// [`decode_line_with_fields`]).
fn parse_with_fields<'a>(
    line: &'a [u8],
    fields: &mut Vec<[u32; 4]>,
    prefix: &mut Prefix,
) -> Option<std::result::Result<(InputLine<'a>, bool), String>> {
    let line = content(line)?;
    Some(decode_line_with_fields(line, fields, prefix).map_err(|e| skipping(line, &e)))
}

/// A line without its `\r`; `None` when it is blank.
fn content(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    (!line.iter().all(u8::is_ascii_whitespace)).then_some(line)
}

fn skipping(line: &[u8], e: &DecodeError) -> String {
    let preview = String::from_utf8_lossy(&line[..line.len().min(120)]);
    format!("skipping an input line that is not a protocol message ({e}): {preview}")
}

/// A chunk of whole input lines, decoded.
#[derive(Debug, Default)]
pub(crate) struct Piece {
    /// The records' data texts, one after another.
    pub text: String,
    pub records: Vec<PieceRecord>,
    /// Where the top-level fields of the records' data lie (see [`Batch`](super::Batch)),
    /// one record's after another's.
    pub fields: Vec<[u32; 4]>,
    /// Everything that is not a record, each with the number of records before it.
    pub events: Vec<(usize, Event)>,
    /// The start of the last record line read (kept across chunks).
    prefix: Prefix,
}

/// A record of a [`Piece`]: its data is `text[previous end..end]`, its fields
/// `fields[previous fields_end..fields_end]` when `has_fields`.
#[derive(Debug)]
pub(crate) struct PieceRecord {
    pub end: usize,
    pub fields_end: usize,
    pub has_fields: bool,
    pub emitted_at: i64,
    pub meta: Option<Box<AirbyteRecordMessageMeta>>,
    pub stream: StreamId,
}

/// A line of a [`Piece`] that is not a record of a known stream.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message other than a record, decoded in full.
    Message(AirbyteMessage),
    /// A line that is not a protocol message: the warning to log.
    Skipped(String),
    /// A record of a stream that is not in the catalog: the load fails here, so the rest of
    /// the chunk is not decoded.
    UnknownStream(StreamDescriptor),
}

impl Piece {
    fn clear(&mut self) {
        self.text.clear();
        self.records.clear();
        self.fields.clear();
        self.events.clear();
    }

    /// Decodes the lines of `chunk`, noting where the fields of records' data lie when
    /// `want_fields`.
    fn decode(&mut self, chunk: &[u8], streams: &mut StreamIds, want_fields: bool) {
        let mut rest = chunk;
        loop {
            let (line, more) = match memchr::memchr(b'\n', rest) {
                Some(nl) => (&rest[..nl], Some(&rest[nl + 1..])),
                None => (rest, None),
            };
            if !self.line(line, streams, want_fields) {
                return;
            }
            match more {
                Some(more) => rest = more,
                None => return,
            }
        }
    }

    /// Decodes one line; false when decoding must stop.
    fn line(&mut self, line: &[u8], streams: &mut StreamIds, want_fields: bool) -> bool {
        let at = self.records.len();
        let parsed = match want_fields {
            true => parse_with_fields(line, &mut self.fields, &mut self.prefix),
            false => parse(line).map(|parsed| parsed.map(|line| (line, false))),
        };
        match parsed {
            None => {}
            Some(Ok((InputLine::Record(record), has_fields))) => {
                match streams.get(&record.stream, record.namespace.as_deref()) {
                    Ok(stream) => {
                        self.text.push_str(record.data.get());
                        self.records.push(PieceRecord {
                            end: self.text.len(),
                            fields_end: self.fields.len(),
                            has_fields,
                            emitted_at: record.emitted_at,
                            meta: boxed_meta(record.meta),
                            stream,
                        });
                    }
                    Err(descriptor) => {
                        self.events.push((at, Event::UnknownStream(descriptor)));
                        return false;
                    }
                }
            }
            Some(Ok((InputLine::Message(message), _))) => {
                self.events.push((at, Event::Message(message)))
            }
            Some(Err(warning)) => self.events.push((at, Event::Skipped(warning))),
        }
        true
    }
}

type Chunk = std::io::Result<Vec<u8>>;

/// The pieces of the input, in input order, from `threads` decoder threads.
pub(crate) struct Pieces {
    decoded: Vec<mpsc::Receiver<std::io::Result<Piece>>>,
    /// Spent pieces go back to the decoder they came from, to reuse their buffers.
    spent: Vec<sync::Sender<Piece>>,
    next: usize,
}

impl Pieces {
    /// Starts the reader thread and `threads` (at least 1) decoder threads.
    pub(crate) fn start(
        input: Input,
        threads: usize,
        streams: &StreamIds,
        want_fields: bool,
    ) -> Result<Self> {
        let threads = threads.max(1);
        let (spent_chunks, chunks_back) = sync::channel::<Vec<u8>>();
        let mut to_decoders = Vec::with_capacity(threads);
        let mut decoded = Vec::with_capacity(threads);
        let mut spent = Vec::with_capacity(threads);
        for i in 0..threads {
            let (chunk_tx, chunk_rx) = sync::sync_channel::<Chunk>(1);
            let (piece_tx, piece_rx) = mpsc::channel(2);
            let (spent_tx, spent_rx) = sync::channel::<Piece>();
            let decoder = Decoder {
                chunks: chunk_rx,
                pieces: piece_tx,
                chunks_back: spent_chunks.clone(),
                spent: spent_rx,
                streams: streams.clone(),
                want_fields,
            };
            spawn(format!("cdk-decode-{i}"), move || decoder.run())?;
            to_decoders.push(chunk_tx);
            decoded.push(piece_rx);
            spent.push(spent_tx);
        }
        let reader = input.into_inner();
        spawn("cdk-input".into(), move || {
            cut(reader, to_decoders, chunks_back)
        })?;
        Ok(Self {
            decoded,
            spent,
            next: 0,
        })
    }

    /// The next piece; `None` at the end of the input. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<std::io::Result<Piece>> {
        let piece = self.decoded[self.next].recv().await;
        self.next = (self.next + 1) % self.decoded.len();
        piece
    }

    /// Hands a spent piece back for its buffers.
    pub(crate) fn recycle(&mut self, piece: Piece) {
        let last = (self.next + self.spent.len() - 1) % self.spent.len();
        let _ = self.spent[last].send(piece);
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map(drop)
        .map_err(|e| Error::system(format!("cannot start the thread {name}: {e}")))
}

struct Decoder {
    chunks: sync::Receiver<Chunk>,
    pieces: mpsc::Sender<std::io::Result<Piece>>,
    chunks_back: sync::Sender<Vec<u8>>,
    spent: sync::Receiver<Piece>,
    streams: StreamIds,
    want_fields: bool,
}

impl Decoder {
    fn run(mut self) {
        while let Ok(chunk) = self.chunks.recv() {
            let piece = chunk.map(|chunk| {
                let mut piece = self.spent.try_recv().unwrap_or_default();
                piece.clear();
                piece.decode(&chunk, &mut self.streams, self.want_fields);
                let _ = self.chunks_back.send(chunk);
                piece
            });
            if self.pieces.blocking_send(piece).is_err() {
                return; // the loader stopped
            }
        }
    }
}

/// Reads the input on its own thread and deals out chunks of whole lines to the decoders in
/// turn. One read per chunk: the complete lines that arrived are handed on at once, so a
/// source that pauses never leaves records (and their states) waiting here; only a line not
/// yet complete waits for the rest of it. A plain thread (not a runtime blocking task), so a
/// stuck stdin never holds up shutdown. Spent chunks come back on `spent` to be reused.
fn cut(
    mut reader: Box<dyn Read + Send>,
    decoders: Vec<sync::SyncSender<Chunk>>,
    spent: sync::Receiver<Vec<u8>>,
) {
    let mut turn = 0;
    let mut deal = |chunk: Chunk| {
        let sent = decoders[turn].send(chunk).is_ok();
        turn = (turn + 1) % decoders.len();
        sent
    };
    // `buf[..filled]` holds input; the rest is room for the next read.
    let mut buf: Vec<u8> = vec![0; CHUNK];
    let mut filled = 0;
    loop {
        if buf.len() - filled < CHUNK / 4 {
            // A line longer than a chunk: the buffer grows until its end arrives.
            buf.resize(filled + CHUNK, 0);
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                deal(Err(e));
                return;
            }
        };
        if n == 0 {
            buf.truncate(filled);
            if !buf.is_empty() {
                deal(Ok(buf));
            }
            return;
        }
        let start = filled;
        filled += n;
        let Some(nl) = memchr::memrchr(b'\n', &buf[start..filled]) else {
            continue;
        };
        let end = start + nl + 1;
        let mut next = spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        next.extend_from_slice(&buf[end..filled]);
        filled = next.len();
        next.resize(CHUNK.max(filled + CHUNK / 4), 0);
        buf.truncate(end);
        if !deal(Ok(std::mem::replace(&mut buf, next))) {
            return; // the loader stopped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(names: &[&str]) -> ConfiguredAirbyteCatalog {
        let streams = names
            .iter()
            .map(|n| {
                let stream =
                    AirbyteStream::new(*n, serde_json::json!({}), vec![SyncMode::FullRefresh]);
                ConfiguredAirbyteStream::new(
                    stream,
                    SyncMode::FullRefresh,
                    DestinationSyncMode::Append,
                )
            })
            .collect();
        ConfiguredAirbyteCatalog { streams }
    }

    #[test]
    fn a_piece_keeps_records_and_events_in_order() {
        let mut streams = StreamIds::new(&catalog(&["a", "b"]));
        let chunk = concat!(
            r#"{"type":"RECORD","record":{"stream":"b","data":{"x":1},"emitted_at":5}}"#,
            "\r\n\n  \n",
            r#"{"type":"STATE","state":{"type":"GLOBAL"}}"#,
            "\nnot json\n",
            r#"{"type":"RECORD","record":{"stream":"a","data":{"y":"é"},"emitted_at":6}}"#,
            "\n",
            r#"{"type":"RECORD","record":{"stream":"c","data":{},"emitted_at":7}}"#,
            "\n",
            r#"{"type":"RECORD","record":{"stream":"a","data":{},"emitted_at":8}}"#,
        );
        let mut piece = Piece::default();
        piece.decode(chunk.as_bytes(), &mut streams, true);
        assert_eq!(piece.text, r#"{"x":1}{"y":"é"}"#);
        let records: Vec<_> = piece
            .records
            .iter()
            .map(|r| (r.end, r.emitted_at, r.stream))
            .collect();
        assert_eq!(records, [(7, 5, 1), (17, 6, 0)]);
        let events: Vec<String> = piece
            .events
            .iter()
            .map(|(at, e)| match e {
                Event::Message(m) => format!("{at} {}", serde_json::to_string(m).unwrap()),
                Event::Skipped(w) => format!("{at} skipped {}", w.ends_with(": not json")),
                Event::UnknownStream(d) => format!("{at} unknown {d}"),
            })
            .collect();
        assert_eq!(
            events,
            [
                r#"1 {"type":"STATE","state":{"type":"GLOBAL"}}"#,
                "1 skipped true",
                "2 unknown c"
            ]
        );
    }

    #[test]
    fn the_reader_cuts_at_line_ends_even_for_lines_longer_than_a_chunk() {
        let long = "x".repeat(CHUNK * 3 + 17);
        let text = format!("a\n{long}\nb\nc");
        let (tx, rx) = sync::sync_channel(64);
        let (_spent_tx, spent_rx) = sync::channel();
        cut(
            Box::new(std::io::Cursor::new(text.clone().into_bytes())),
            vec![tx],
            spent_rx,
        );
        let chunks: Vec<Vec<u8>> = rx.try_iter().map(|c| c.unwrap()).collect();
        assert!(chunks.len() >= 2);
        for chunk in &chunks[..chunks.len() - 1] {
            assert_eq!(chunk.last(), Some(&b'\n'));
        }
        assert_eq!(chunks.concat(), text.as_bytes());
    }
}
