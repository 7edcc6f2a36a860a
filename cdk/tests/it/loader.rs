//! The loader: state acknowledgement after commits, counts, input framing, failures.

use std::io::Read;
use std::sync::{Arc, Mutex};

use cdk::destination::{
    Batch, BatchWriter, Input, LoaderOptions, Outcome, StreamId, StreamPlan, WriteMode, load,
};
use cdk::protocol::*;
use cdk::{Error, Result};
use serde_json::{Value, json};

use super::Captured;

/// Records what the loader asks of it; can fail the n-th commit or the open of a stream.
#[derive(Default, Clone)]
struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
    plans: Arc<Mutex<Vec<StreamPlan>>>,
    fail_commit: Option<usize>,
    fail_open: Option<StreamId>,
    commits: usize,
}

impl Recorder {
    /// The events of one kind (`open`, `write`, `commit`…), in order.
    fn events_of(&self, kind: &str) -> Vec<String> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.starts_with(kind))
            .cloned()
            .collect()
    }
}

#[cdk::async_trait]
impl BatchWriter for Recorder {
    async fn open(
        &mut self,
        id: StreamId,
        stream: &ConfiguredAirbyteStream,
        plan: StreamPlan,
    ) -> Result<()> {
        self.events
            .lock()
            .unwrap()
            .push(format!("open {id} {}", stream.stream.name));
        self.plans.lock().unwrap().push(plan);
        if self.fail_open == Some(id) {
            return Err(Error::system("cannot open"));
        }
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
    async fn commit(&mut self, streams: &[StreamId]) -> Result<()> {
        self.commits += 1;
        if self.fail_commit == Some(self.commits) {
            return Err(Error::transient("disk on fire"));
        }
        let ids: Vec<String> = streams.iter().map(ToString::to_string).collect();
        self.events
            .lock()
            .unwrap()
            .push(format!("commit {}", ids.join(",")));
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

/// What destinations support by default.
const DEFAULT_MODES: &[DestinationSyncMode] =
    &[DestinationSyncMode::Append, DestinationSyncMode::Overwrite];

fn configured(name: &str, mode: DestinationSyncMode) -> ConfiguredAirbyteStream {
    let stream = AirbyteStream::new(name, json!({}), vec![SyncMode::FullRefresh]);
    ConfiguredAirbyteStream::new(stream, SyncMode::FullRefresh, mode)
}

fn catalog(names: &[&str]) -> ConfiguredAirbyteCatalog {
    ConfiguredAirbyteCatalog {
        streams: names
            .iter()
            .map(|n| configured(n, DestinationSyncMode::Append))
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
    let result = load(
        input,
        &catalog(names),
        DEFAULT_MODES,
        writer,
        options,
        &out.output(),
    )
    .await;
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
    let commits = w.events_of("commit").len();
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
    let writes: Vec<String> = w.events_of("write");
    assert_eq!(writes, ["write 0 [1,2]", "write 0 [3,4]", "write 0 [5]"]);
}

#[tokio::test]
async fn a_streams_first_batch_is_cut_short() {
    let lines: Vec<String> = (1..=6).map(|i| record("a", i)).collect();
    let mut w = Recorder::default();
    let options = LoaderOptions {
        batch_records: 4,
        first_batch_records: 1,
        ..LoaderOptions::default()
    };
    run(&lines, &["a"], &mut w, options).await.1.unwrap();
    let writes: Vec<String> = w.events_of("write");
    assert_eq!(writes, ["write 0 [1]", "write 0 [2,3,4,5]", "write 0 [6]"]);
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

fn with_generations(
    mode: DestinationSyncMode,
    generation: Option<i64>,
    minimum: Option<i64>,
) -> ConfiguredAirbyteStream {
    let mut stream = configured("people", mode);
    stream.stream.namespace = Some("crm".into());
    stream.generation_id = generation;
    stream.minimum_generation_id = minimum;
    stream
}

const ALL_MODES: &[DestinationSyncMode] = &[
    DestinationSyncMode::Append,
    DestinationSyncMode::Overwrite,
    DestinationSyncMode::AppendDedup,
];

#[test]
fn plans_follow_the_sync_mode_and_generations() {
    use DestinationSyncMode::{Append, AppendDedup, Overwrite};
    let cases = [
        // (mode, generation_id, minimum_generation_id) → write mode
        ((Append, None, None), WriteMode::Append),
        ((Append, Some(3), Some(0)), WriteMode::Append),
        ((Append, Some(3), None), WriteMode::Append),
        ((Append, Some(3), Some(3)), WriteMode::Overwrite),
        ((Overwrite, None, None), WriteMode::Overwrite),
        ((Overwrite, Some(3), Some(0)), WriteMode::Overwrite),
        ((Overwrite, Some(3), Some(3)), WriteMode::Overwrite),
        ((AppendDedup, Some(3), Some(0)), WriteMode::AppendDedup),
        ((AppendDedup, None, None), WriteMode::AppendDedup),
        ((AppendDedup, Some(3), Some(3)), WriteMode::OverwriteDedup),
    ];
    for ((mode, generation, minimum), expected) in cases {
        let stream = with_generations(mode, generation, minimum);
        let plan = StreamPlan::resolve(&stream, ALL_MODES)
            .unwrap_or_else(|e| panic!("{mode:?} {generation:?} {minimum:?}: {e}"));
        assert_eq!(
            plan,
            StreamPlan::new(expected, generation),
            "{mode:?} {generation:?} {minimum:?}"
        );
    }
    assert!(WriteMode::Overwrite.replaces() && WriteMode::OverwriteDedup.replaces());
    assert!(!WriteMode::Append.replaces() && !WriteMode::AppendDedup.replaces());
    assert!(WriteMode::AppendDedup.dedups() && WriteMode::OverwriteDedup.dedups());
    assert!(!WriteMode::Append.dedups() && !WriteMode::Overwrite.dedups());
}

/// Asserts `result` is a config error for stream `crm.people` whose message has `expected`.
fn assert_refused(result: Result<StreamPlan>, expected: &str) {
    let error = result.expect_err("the plan should be refused");
    assert_eq!(error.failure_type, FailureType::ConfigError, "{error}");
    assert!(
        error.message.starts_with("stream 'crm.people': "),
        "{}",
        error.message
    );
    assert!(error.message.contains(expected), "{}", error.message);
    assert_eq!(
        error.stream,
        Some(StreamDescriptor::new("people", Some("crm".into())))
    );
}

#[test]
fn a_hybrid_refresh_is_a_config_error_naming_the_stream() {
    use DestinationSyncMode::{Append, AppendDedup, Overwrite};
    // A minimum neither 0 nor the generation asks to keep some generations: not supported,
    // whatever the mode, and also when the generation is missing.
    for (mode, generation, minimum) in [
        (Append, Some(5), Some(3)),
        (Overwrite, Some(5), Some(3)),
        (AppendDedup, Some(5), Some(7)),
        (Append, None, Some(2)),
    ] {
        let stream = with_generations(mode, generation, minimum);
        assert_refused(
            StreamPlan::resolve(&stream, ALL_MODES),
            "hybrid refreshes are not supported",
        );
    }
}

#[test]
fn modes_the_destination_does_not_support_are_config_errors() {
    use DestinationSyncMode::{Append, AppendDedup, Update};
    let dedup = with_generations(AppendDedup, Some(1), Some(0));
    assert_refused(
        StreamPlan::resolve(&dedup, DEFAULT_MODES),
        "destination sync mode 'append_dedup' is not supported (this destination supports \
         append, overwrite)",
    );
    // The loader plans no `update`, even for a destination claiming it.
    let update = with_generations(Update, Some(1), Some(0));
    assert_refused(
        StreamPlan::resolve(&update, &[Append, Update]),
        "destination sync mode 'update' is not supported",
    );
    // A truncate refresh replaces data: an append-only destination refuses it.
    let refresh = with_generations(Append, Some(4), Some(4));
    assert_refused(
        StreamPlan::resolve(&refresh, &[Append]),
        "a truncate refresh",
    );
    assert!(StreamPlan::resolve(&with_generations(Append, Some(4), Some(0)), &[Append]).is_ok());
}

#[tokio::test]
async fn writers_get_the_resolved_plans() {
    let mut cat = catalog(&["a", "b"]);
    cat.streams[0].generation_id = Some(2);
    cat.streams[0].minimum_generation_id = Some(2);
    cat.streams[1].generation_id = Some(2);
    cat.streams[1].minimum_generation_id = Some(0);
    let mut w = Recorder::default();
    let out = Captured::default();
    let input = Input::new(std::io::Cursor::new(record("a", 1).into_bytes()));
    load(input, &cat, DEFAULT_MODES, &mut w, eager(), &out.output())
        .await
        .unwrap();
    assert_eq!(
        *w.plans.lock().unwrap(),
        [
            StreamPlan::new(WriteMode::Overwrite, Some(2)),
            StreamPlan::new(WriteMode::Append, Some(2)),
        ]
    );
}

#[tokio::test]
async fn a_refused_stream_fails_before_anything_is_opened() {
    let mut cat = catalog(&["a", "b"]);
    cat.streams[1].destination_sync_mode = DestinationSyncMode::AppendDedup;
    let mut w = Recorder::default();
    let out = Captured::default();
    let input = Input::new(std::io::Cursor::new(record("a", 1).into_bytes()));
    let error = load(input, &cat, DEFAULT_MODES, &mut w, eager(), &out.output())
        .await
        .unwrap_err();
    assert_eq!(error.failure_type, FailureType::ConfigError);
    assert!(error.message.contains("stream 'b'"), "{}", error.message);
    assert!(
        w.events.lock().unwrap().is_empty(),
        "nothing opened or closed"
    );
}

#[tokio::test]
async fn only_opened_streams_are_closed() {
    let mut w = Recorder {
        fail_open: Some(1),
        ..Recorder::default()
    };
    let (out, result) = run(&[record("a", 1)], &["a", "b", "c"], &mut w, eager()).await;
    assert_eq!(result.unwrap_err().message, "cannot open");
    assert!(echoed(&out).is_empty());
    assert_eq!(
        *w.events.lock().unwrap(),
        ["open 0 a", "open 1 b", "close 0 Failure"]
    );
}

#[tokio::test]
async fn one_commit_covers_every_stream_written_since_the_last() {
    let lines = [
        record("a", 1),
        record("c", 2),
        json!({"type": "STATE", "state": {"type": "GLOBAL", "global": {"shared_state": {"n": 1}, "stream_states": []}}}).to_string(),
        record("b", 3),
        state("b", 1),
    ];
    let mut w = Recorder::default();
    let (out, result) = run(&lines, &["a", "b", "c"], &mut w, eager()).await;
    result.unwrap();
    assert_eq!(out.messages().len(), 2, "both states echoed");
    let commits: Vec<String> = w.events_of("commit");
    assert_eq!(commits, ["commit 0,2", "commit 1"]);
}

/// Hands out its parts one per read, pausing before each after the first: a quiet source.
struct Paused(std::collections::VecDeque<Vec<u8>>, bool);

impl Read for Paused {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(part) = self.0.pop_front() else {
            return Ok(0);
        };
        if std::mem::replace(&mut self.1, true) {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        buf[..part.len()].copy_from_slice(&part);
        Ok(part.len())
    }
}

/// The writes and commits of a load whose input pauses between `parts`, committing on a
/// 20 ms timer (with `batch_records` per batch when given).
async fn commits_around_pauses_with(
    parts: &[&[String]],
    decode_threads: usize,
    batch_records: Option<usize>,
) -> Vec<String> {
    let parts = parts
        .iter()
        .map(|lines| lines.iter().map(|l| format!("{l}\n")).collect::<String>())
        .map(String::into_bytes)
        .collect();
    let mut w = Recorder::default();
    let defaults = LoaderOptions::default();
    let options = LoaderOptions {
        commit_interval: std::time::Duration::from_millis(20),
        decode_threads,
        batch_records: batch_records.unwrap_or(defaults.batch_records),
        ..defaults
    };
    let out = Captured::default();
    let input = Input::new(Paused(parts, false));
    load(
        input,
        &catalog(&["a"]),
        DEFAULT_MODES,
        &mut w,
        options,
        &out.output(),
    )
    .await
    .unwrap();
    let events = w.events.lock().unwrap();
    let kept = events
        .iter()
        .filter(|e| e.starts_with("write") || e.starts_with("commit"));
    kept.cloned().collect()
}

/// [`commits_around_pauses_with`] on this task and on decode threads.
async fn commits_around_pauses(parts: &[&[String]]) -> Vec<Vec<String>> {
    let mut seen = Vec::new();
    for decode_threads in [0, 2] {
        seen.push(commits_around_pauses_with(parts, decode_threads, None).await);
    }
    seen
}

#[tokio::test]
async fn a_quiet_input_gets_its_last_state_acknowledged_on_time() {
    let first = [record("a", 1), state("a", 1)];
    let seen = commits_around_pauses(&[&first, &[record("a", 2)]]).await;
    for events in seen {
        assert_eq!(
            events,
            ["write 0 [1]", "commit 0", "write 0 [2]", "commit 0"]
        );
    }
}

#[tokio::test]
async fn a_commit_on_time_stops_at_the_last_state() {
    // Committing record 2 during the pause would make it durable with no state to acknowledge
    // it: a sync stopped there would write it again on resume.
    let first = [record("a", 1), state("a", 1), record("a", 2)];
    let seen = commits_around_pauses(&[&first, &[record("a", 3), state("a", 2)]]).await;
    for events in seen {
        assert_eq!(
            events,
            ["write 0 [1]", "commit 0", "write 0 [2,3]", "commit 0"]
        );
    }
}

#[tokio::test]
async fn records_already_written_past_the_state_wait_for_the_next_state() {
    // A full batch handed record 2 to the writer: no cut is possible, the next state commits.
    let first = [
        record("a", 1),
        state("a", 1),
        record("a", 2),
        record("a", 3),
    ];
    let events = commits_around_pauses_with(&[&first, &[state("a", 2)]], 0, Some(2)).await;
    assert_eq!(events, ["write 0 [1,2]", "write 0 [3]", "commit 0"]);
}
