//! The loader decoding on several threads hands a writer exactly what it hands it decoding
//! inline: the same batches of the same records (data bytes, times, metadata) and the same
//! states after the same commits, on a file of every Airbyte type, nulls, Unicode, 1 MB values
//! and lines that are not records.

use std::io::Read;
use std::sync::{Arc, Mutex};

use cdk::destination::{
    Batch, BatchWriter, Input, LoaderOptions, Outcome, StreamId, StreamPlan, load,
};
use cdk::protocol::*;
use cdk::{Error, Result};
use serde_json::{Value, json};

use super::Captured;

/// Writes down every call and every record, byte for byte.
#[derive(Default, Clone)]
struct Keeper {
    log: Arc<Mutex<Vec<String>>>,
    fail_commit: Option<usize>,
    commits: usize,
}

#[cdk::async_trait]
impl BatchWriter for Keeper {
    async fn open(
        &mut self,
        id: StreamId,
        _: &ConfiguredAirbyteStream,
        _: StreamPlan,
    ) -> Result<()> {
        self.log.lock().unwrap().push(format!("open {id}"));
        Ok(())
    }
    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()> {
        let mut log = self.log.lock().unwrap();
        log.push(format!("write {id}: {} records", batch.len()));
        for r in batch.iter() {
            let meta = r.meta.map(|m| serde_json::to_string(m).unwrap());
            log.push(format!("{} {:?} {}", r.emitted_at, meta, r.data));
        }
        Ok(())
    }
    async fn commit(&mut self, streams: &[StreamId]) -> Result<()> {
        self.commits += 1;
        if self.fail_commit == Some(self.commits) {
            return Err(Error::transient("commit failed"));
        }
        self.log.lock().unwrap().push(format!("commit {streams:?}"));
        Ok(())
    }
    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("close {id} {outcome:?}"));
        Ok(())
    }
}

fn catalog() -> ConfiguredAirbyteCatalog {
    let stream = |name: &str, namespace: Option<&str>| {
        let mut s = AirbyteStream::new(name, json!({}), vec![SyncMode::FullRefresh]);
        s.namespace = namespace.map(str::to_string);
        ConfiguredAirbyteStream::new(s, SyncMode::FullRefresh, DestinationSyncMode::Append)
    };
    ConfiguredAirbyteCatalog {
        streams: vec![stream("typed", None), stream("other", Some("ns"))],
    }
}

/// A record's data with a value of every Airbyte type (or null, or a value of the wrong
/// type), Unicode and escapes.
fn typed_data(i: u64) -> Value {
    let null_or = |v: Value| if i % 7 == 3 { Value::Null } else { v };
    json!({
        "id": i,
        "string": null_or(json!(format!("naïve café 中文 😀 \"quoted\" \\ tab\t {i}"))),
        "integer": null_or(json!(i as i64 * -7_919)),
        "big": 9_007_199_254_740_993u64,
        "number": null_or(json!(i as f64 / 3.0)),
        "exp": 1.5e300,
        "boolean": null_or(json!(i.is_multiple_of(2))),
        "date": null_or(json!("2024-02-29")),
        "timestamp_with_timezone": "2024-01-01T12:34:56.789+05:30",
        "timestamp_without_timezone": "2024-01-01T12:34:56",
        "time_with_timezone": "12:34:56+01:00",
        "time_without_timezone": "12:34:56.123456",
        "object": {"nested": {"deep": [1, "two", null, {"x": "\u{2028}"}]}},
        "array": [1, 2.5, "three", true, null],
        "union": if i.is_multiple_of(2) { json!("text") } else { json!(42) },
        "wrong": if i.is_multiple_of(5) { json!("not a number") } else { json!(5) },
        "null": null,
    })
}

fn record(stream: &str, namespace: Option<&str>, data: Value, i: u64) -> String {
    let mut record =
        json!({"stream": stream, "data": data, "emitted_at": 1_700_000_000_000u64 + i});
    if let Some(ns) = namespace {
        record["namespace"] = json!(ns);
    }
    if i.is_multiple_of(11) {
        record["meta"] = json!({"changes": [{"field": "string", "change": "TRUNCATED",
            "reason": "SOURCE_FIELD_SIZE_LIMITATION"}]});
    }
    json!({"type": "RECORD", "record": record}).to_string()
}

/// Lines of every kind: typed records of two streams, raw-text records (key order, spacing
/// and escapes kept as written), 1 MB values, states of every type, other messages, blank,
/// CRLF and garbage lines.
fn mixed_input() -> String {
    let mut lines = Vec::new();
    let mb = "é".repeat(1 << 19); // 1 MiB of UTF-8
    for i in 0..6_000u64 {
        lines.push(record("typed", None, typed_data(i), i));
        if i.is_multiple_of(3) {
            lines.push(record(
                "other",
                Some("ns"),
                json!({"k": i, "v": [i, {"w": "ü"}]}),
                i,
            ));
        }
        if i % 500 == 7 {
            // Written by hand: odd spacing, escapes and key order stay as they are.
            lines.push(format!(
                r#"{{ "type" : "RECORD" , "record" : {{ "emitted_at" : {i}.0, "data" : {{ "z" : 1 , "a" : "\u00e9\ud83d\ude00" , "n" : -0.0e-0 }} , "stream" : "typed" }} }}"#
            ));
        }
        if i % 1_000 == 500 {
            lines.push(record("typed", None, json!({"id": i, "huge": mb}), i));
            lines.push(record(
                "other",
                Some("ns"),
                json!({"k": i, "list": vec![&mb[..1024]; 1024]}),
                i,
            ));
        }
        if i.is_multiple_of(97) {
            lines.push(
                json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
                "stream_descriptor": {"name": "typed"}, "stream_state": {"id": i}}}})
                .to_string(),
            );
        }
        if i.is_multiple_of(389) {
            lines.push(json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
                "stream_descriptor": {"name": "other", "namespace": "ns"}, "stream_state": {"k": i}}}})
            .to_string());
        }
        if i.is_multiple_of(1_201) {
            lines.push(
                json!({"type": "STATE", "state": {"type": "GLOBAL", "global": {
                "shared_state": {"lsn": i}, "stream_states": []}}})
                .to_string(),
            );
        }
        if i.is_multiple_of(2_003) {
            lines.push(json!({"type": "STATE", "state": {"data": {"legacy": i}}}).to_string());
        }
        if i.is_multiple_of(613) {
            lines.push(
                json!({"type": "LOG", "log": {"level": "INFO", "message": "hi"}}).to_string(),
            );
            lines.push(json!({"type": "HOLOGRAM", "hologram": {}}).to_string());
            lines.push("this is not json".into());
            lines.push(String::new());
            lines.push("   ".into());
        }
        if i.is_multiple_of(709) {
            let last = lines.pop().unwrap_or_default();
            lines.push(format!("{last}\r"));
        }
    }
    lines.push(
        json!({"type": "STATE", "state": {"type": "GLOBAL", "global": {
        "shared_state": {"end": true}, "stream_states": []}}})
        .to_string(),
    );
    // The last line has no newline.
    lines.push(record("typed", None, json!({"id": "last"}), 1));
    lines.join("\n")
}

/// A reader that hands out reads of varying sizes, so lines straddle reads.
struct Uneven {
    data: std::io::Cursor<Vec<u8>>,
    turn: usize,
}

impl Read for Uneven {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const SIZES: [usize; 5] = [1, 4_093, 70_001, 1 << 20, 13];
        self.turn += 1;
        let n = buf.len().min(SIZES[self.turn % SIZES.len()]);
        self.data.read(&mut buf[..n])
    }
}

/// What the writer was asked, what was echoed, and the result, with `threads` decoders.
async fn load_with(
    input: &str,
    threads: usize,
    options: &LoaderOptions,
    writer: Keeper,
) -> (Vec<String>, String, std::result::Result<(), String>) {
    let mut writer = writer;
    let out = Captured::default();
    let options = LoaderOptions {
        decode_threads: threads,
        ..options.clone()
    };
    let reader = Uneven {
        data: std::io::Cursor::new(input.as_bytes().to_vec()),
        turn: threads,
    };
    let result = load(
        Input::new(reader),
        &catalog(),
        &[DestinationSyncMode::Append],
        &mut writer,
        options,
        &out.output(),
    )
    .await;
    let log = writer.log.lock().unwrap().clone();
    (log, out.text(), result.map_err(|e| e.message))
}

async fn assert_same_as_inline(input: &str, options: LoaderOptions, writer: Keeper) {
    let inline = load_with(input, 0, &options, writer.clone()).await;
    assert!(
        inline.0.len() > 10,
        "the writer saw too little: {:?}",
        inline.0
    );
    for threads in [1, 2, 3] {
        let writer = Keeper {
            log: Arc::default(),
            ..writer.clone()
        };
        let threaded = load_with(input, threads, &options, writer).await;
        assert_eq!(threaded.2, inline.2, "{threads} threads: result");
        assert_eq!(threaded.1, inline.1, "{threads} threads: echoed states");
        assert_eq!(threaded.0.len(), inline.0.len(), "{threads} threads: calls");
        for (i, (a, b)) in threaded.0.iter().zip(&inline.0).enumerate() {
            assert!(a == b, "{threads} threads: call {i} differs");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_hand_on_the_same_batches_and_states_as_inline() {
    let input = mixed_input();
    assert!(input.len() > 8 << 20, "several MB, many chunks");
    // A commit at every state…
    let eager = LoaderOptions {
        commit_interval: std::time::Duration::ZERO,
        batch_records: 1_000,
        ..LoaderOptions::default()
    };
    assert_same_as_inline(&input, eager.clone(), Keeper::default()).await;
    // …commits by size, batches cut by size…
    let by_size = LoaderOptions {
        commit_bytes: 3 << 20,
        batch_bytes: 1 << 20,
        ..LoaderOptions::default()
    };
    assert_same_as_inline(&input, by_size, Keeper::default()).await;
    // …and a failed commit: no state past the last good one, on every path.
    let failing = Keeper {
        fail_commit: Some(5),
        ..Keeper::default()
    };
    assert_same_as_inline(&input, eager, failing).await;
}

#[tokio::test]
async fn threads_stop_at_an_unknown_stream_as_inline_does() {
    let mut input = mixed_input();
    let at = input.len() / 2 + input[input.len() / 2..].find('\n').unwrap() + 1;
    input.insert_str(at, &format!("{}\n", record("nope", None, json!({}), 1)));
    let options = LoaderOptions {
        commit_interval: std::time::Duration::ZERO,
        ..LoaderOptions::default()
    };
    let inline = load_with(&input, 0, &options, Keeper::default()).await;
    assert!(inline.2.as_ref().unwrap_err().contains("stream 'nope'"));
    assert_same_as_inline(&input, options, Keeper::default()).await;
}
