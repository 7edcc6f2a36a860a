//! The loader: state acknowledgement after commits, counts, input framing, failures.

use std::io::Read;
use std::sync::{Arc, Mutex};

use cdk::destination::{Batch, BatchWriter, Input, LoaderOptions, Outcome, StreamId, load};
use cdk::protocol::*;
use cdk::{Error, Result};
use serde_json::{Value, json};

use super::Captured;

/// Records what the loader asks of it; can fail the n-th commit.
#[derive(Default, Clone)]
struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
    fail_commit: Option<usize>,
    commits: usize,
}

#[cdk::async_trait]
impl BatchWriter for Recorder {
    async fn open(&mut self, id: StreamId, stream: &ConfiguredAirbyteStream) -> Result<()> {
        self.events
            .lock()
            .unwrap()
            .push(format!("open {id} {}", stream.stream.name));
        Ok(())
    }
    async fn write(&mut self, id: StreamId, batch: Batch) -> Result<()> {
        let ids: Vec<String> = batch
            .iter()
            .map(|r| serde_json::from_str::<Value>(r.data).unwrap()["id"].to_string())
            .collect();
        self.events
            .lock()
            .unwrap()
            .push(format!("write {id} [{}]", ids.join(",")));
        Ok(())
    }
    async fn commit(&mut self, id: StreamId) -> Result<()> {
        self.commits += 1;
        if self.fail_commit == Some(self.commits) {
            return Err(Error::transient("disk on fire"));
        }
        self.events.lock().unwrap().push(format!("commit {id}"));
        Ok(())
    }
    async fn close(&mut self, id: StreamId, outcome: Outcome) -> Result<()> {
        self.events
            .lock()
            .unwrap()
            .push(format!("close {id} {outcome:?}"));
        Ok(())
    }
}

fn catalog(names: &[&str]) -> ConfiguredAirbyteCatalog {
    ConfiguredAirbyteCatalog {
        streams: names
            .iter()
            .map(|n| {
                let stream = AirbyteStream::new(*n, json!({}), vec![SyncMode::FullRefresh]);
                ConfiguredAirbyteStream::new(
                    stream,
                    SyncMode::FullRefresh,
                    DestinationSyncMode::Append,
                )
            })
            .collect(),
    }
}

fn record(stream: &str, id: u64) -> String {
    json!({"type": "RECORD", "record": {"stream": stream, "data": {"id": id}, "emitted_at": 1}})
        .to_string()
}

fn state(stream: &str, n: u64) -> String {
    json!({"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": {"n": n}}}}).to_string()
}

/// Every state acknowledged at once (commit at each state).
fn eager() -> LoaderOptions {
    LoaderOptions {
        commit_interval: std::time::Duration::ZERO,
        ..LoaderOptions::default()
    }
}

/// A reader that hands out a few bytes at a time, so lines straddle reads.
struct Trickle(std::io::Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7);
        self.0.read(&mut buf[..n])
    }
}

async fn run(
    lines: &[String],
    names: &[&str],
    writer: &mut Recorder,
    options: LoaderOptions,
) -> (Captured, Result<()>) {
    let out = Captured::default();
    let input = Input::new(Trickle(std::io::Cursor::new(lines.join("\n").into_bytes())));
    let result = load(input, &catalog(names), writer, options, &out.output()).await;
    (out, result)
}

fn echoed(out: &Captured) -> Vec<(String, Value, f64)> {
    out.messages()
        .into_iter()
        .filter_map(|m| match m {
            AirbyteMessage::State { state } => {
                let s = state.stream?;
                Some((
                    s.stream_descriptor.name,
                    s.stream_state?,
                    state.destination_stats?.record_count?,
                ))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn states_come_back_in_order_with_counts() {
    let lines = [
        record("a", 1),
        record("a", 2),
        state("a", 1),
        record("b", 3),
        "garbage {".into(),
        state("b", 1),
        record("a", 4),
        record("b", 5),
        record("b", 6),
        state("b", 2),
        state("a", 2),
        "".into(),
    ];
    let mut w = Recorder::default();
    let (out, result) = run(&lines, &["a", "b"], &mut w, eager()).await;
    result.unwrap();
    assert_eq!(
        echoed(&out),
        [
            ("a".into(), json!({"n": 1}), 2.0),
            ("b".into(), json!({"n": 1}), 1.0),
            ("b".into(), json!({"n": 2}), 2.0),
            ("a".into(), json!({"n": 2}), 1.0),
        ]
    );
    let events = w.events.lock().unwrap().join("; ");
    assert!(
        events.starts_with("open 0 a; open 1 b; write 0 [1,2]; commit 0"),
        "{events}"
    );
    assert!(
        events.ends_with("close 0 Success; close 1 Success"),
        "{events}"
    );
}

#[tokio::test]
async fn no_state_is_echoed_past_a_failed_commit() {
    let lines = [
        record("a", 1),
        state("a", 1),
        record("a", 2),
        state("a", 2),
        record("a", 3),
        state("a", 3),
    ];
    let mut w = Recorder {
        fail_commit: Some(2),
        ..Recorder::default()
    };
    let (out, result) = run(&lines, &["a"], &mut w, eager()).await;
    assert_eq!(result.unwrap_err().message, "disk on fire");
    assert_eq!(echoed(&out), [("a".into(), json!({"n": 1}), 1.0)]);
    assert!(
        w.events
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .ends_with("Failure")
    );
}

#[tokio::test]
async fn states_wait_for_the_commit_threshold() {
    // With a long interval, nothing is acknowledged until the end of the input…
    let lines = [record("a", 1), state("a", 1), record("a", 2), state("a", 2)];
    let mut w = Recorder::default();
    let (out, result) = run(&lines, &["a"], &mut w, LoaderOptions::default()).await;
    result.unwrap();
    // …where one commit covers both states, still echoed one by one in order.
    assert_eq!(echoed(&out).len(), 2);
    let commits = w
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with("commit"))
        .count();
    assert_eq!(commits, 1);
}

#[tokio::test]
async fn batches_are_cut_at_the_record_limit() {
    let lines: Vec<String> = (1..=5).map(|i| record("a", i)).collect();
    let mut w = Recorder::default();
    let options = LoaderOptions {
        batch_records: 2,
        ..LoaderOptions::default()
    };
    run(&lines, &["a"], &mut w, options).await.1.unwrap();
    let writes: Vec<String> = w
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with("write"))
        .cloned()
        .collect();
    assert_eq!(writes, ["write 0 [1,2]", "write 0 [3,4]", "write 0 [5]"]);
}

#[tokio::test]
async fn an_unknown_stream_fails_naming_it() {
    let lines = [record("a", 1), record("nope", 2)];
    let mut w = Recorder::default();
    let (_, result) = run(&lines, &["a"], &mut w, eager()).await;
    let error = result.unwrap_err();
    assert!(error.message.contains("stream 'nope'"), "{}", error.message);
    assert!(
        error.message.contains("not in the configured catalog"),
        "{}",
        error.message
    );
}
