//! The read driver: checkpoints, statuses, empty streams, failures and concurrency.

use std::sync::Arc;

use cdk::protocol::*;
use cdk::source::read_streams;
use cdk::{Error, ReadContext, ReadOptions, RecordWriter, Result, Stream};
use serde_json::{Value, json};

use super::Captured;

/// Emits ids `1..=count` (failing or panicking after `fail_after` when asked).
struct Numbers {
    name: String,
    count: u64,
    fail_after: Option<u64>,
    panic: bool,
    checkpoint: bool,
}

impl Numbers {
    fn new(name: &str, count: u64) -> Self {
        Self {
            name: name.into(),
            count,
            fail_after: None,
            panic: false,
            checkpoint: true,
        }
    }
}

#[cdk::async_trait]
impl Stream for Numbers {
    fn name(&self) -> &str {
        &self.name
    }
    fn json_schema(&self) -> Value {
        json!({"type": "object", "properties": {"id": {"type": "integer"}}})
    }
    async fn read(&self, _ctx: &ReadContext, out: &mut RecordWriter) -> Result<()> {
        for id in 1..=self.count {
            if self.fail_after == Some(id - 1) {
                if self.panic {
                    panic!("boom at {id}");
                }
                return Err(Error::transient(format!("lost connection at {id}")));
            }
            if self.checkpoint {
                out.record_with_state(&json!({"id": id}), || json!({"id": id}))?;
            } else {
                out.record(&json!({"id": id}))?;
            }
            if id % 1000 == 0 {
                tokio::task::yield_now().await;
            }
        }
        if self.checkpoint {
            out.checkpoint(json!({"id": self.count}));
        }
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

async fn read(
    streams: Vec<Numbers>,
    names: &[&str],
    options: ReadOptions,
) -> (Captured, Result<()>) {
    let out = Captured::default();
    let streams = streams
        .into_iter()
        .map(|s| Arc::new(s) as Arc<dyn Stream>)
        .collect();
    let result = read_streams(
        streams,
        &catalog(names),
        &InputState::default(),
        &options,
        &out.output(),
    )
    .await;
    (out, result)
}

fn statuses(messages: &[AirbyteMessage], stream: &str) -> Vec<AirbyteStreamStatus> {
    messages
        .iter()
        .filter_map(|m| match m {
            AirbyteMessage::Trace { trace } => match &trace.payload {
                TracePayload::StreamStatus { stream_status }
                    if stream_status.stream_descriptor.name == stream =>
                {
                    Some(stream_status.status)
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn states(messages: &[AirbyteMessage], stream: &str) -> Vec<(Value, f64)> {
    messages
        .iter()
        .filter_map(|m| match m {
            AirbyteMessage::State { state } => {
                let s = state.stream.as_ref()?;
                (s.stream_descriptor.name == stream).then(|| {
                    (
                        s.stream_state.clone().unwrap(),
                        state.source_stats.unwrap().record_count.unwrap(),
                    )
                })
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn checkpoint_interval_is_honoured() {
    let options = ReadOptions {
        checkpoint_interval: 10,
        max_concurrent_streams: 1,
    };
    let (out, result) = read(vec![Numbers::new("n", 25)], &["n"], options).await;
    result.unwrap();
    let got = states(&out.messages(), "n");
    assert_eq!(
        got,
        [
            (json!({"id": 10}), 10.0),
            (json!({"id": 20}), 10.0),
            (json!({"id": 25}), 5.0)
        ]
    );
}

#[tokio::test]
async fn statuses_come_in_order() {
    let (out, result) = read(vec![Numbers::new("n", 3)], &["n"], ReadOptions::default()).await;
    result.unwrap();
    let messages = out.messages();
    use AirbyteStreamStatus::*;
    assert_eq!(statuses(&messages, "n"), [Started, Running, Complete]);
    let first_record = messages
        .iter()
        .position(|m| matches!(m, AirbyteMessage::Record { .. }))
        .unwrap();
    let running = messages
        .iter()
        .position(|m| {
            matches!(m, AirbyteMessage::Trace { trace } if matches!(&trace.payload,
            TracePayload::StreamStatus { stream_status } if stream_status.status == Running))
        })
        .unwrap();
    assert!(
        running < first_record,
        "RUNNING comes before the first record"
    );
}

#[tokio::test]
async fn an_empty_stream_still_gets_a_state() {
    let mut silent = Numbers::new("empty", 0);
    silent.checkpoint = false;
    let (out, result) = read(vec![silent], &["empty"], ReadOptions::default()).await;
    result.unwrap();
    assert_eq!(
        states(&out.messages(), "empty"),
        [(json!({"__ab_no_cursor_state_message": true}), 0.0)]
    );
}

#[tokio::test]
async fn repeated_states_are_not_emitted_twice() {
    // A stream whose cursor does not move between checkpoints.
    struct Flat;
    #[cdk::async_trait]
    impl Stream for Flat {
        fn name(&self) -> &str {
            "flat"
        }
        fn json_schema(&self) -> Value {
            json!({"type": "object"})
        }
        async fn read(&self, _: &ReadContext, out: &mut RecordWriter) -> Result<()> {
            for _ in 0..3 {
                out.record(&json!({"x": 1}))?;
                out.checkpoint(json!({"c": 1}));
            }
            Ok(())
        }
    }
    let out = Captured::default();
    let streams: Vec<Arc<dyn Stream>> = vec![Arc::new(Flat)];
    read_streams(
        streams,
        &catalog(&["flat"]),
        &InputState::default(),
        &ReadOptions::default(),
        &out.output(),
    )
    .await
    .unwrap();
    assert_eq!(states(&out.messages(), "flat"), [(json!({"c": 1}), 1.0)]);
}

#[tokio::test]
async fn a_failing_stream_does_not_stop_the_others() {
    let mut failing = Numbers::new("bad", 100);
    failing.fail_after = Some(5);
    let mut panicking = Numbers::new("worse", 100);
    panicking.fail_after = Some(7);
    panicking.panic = true;
    let options = ReadOptions {
        checkpoint_interval: 2,
        max_concurrent_streams: 3,
    };
    let streams = vec![failing, Numbers::new("good", 50), panicking];
    let (out, result) = read(streams, &["bad", "good", "worse", "absent"], options).await;
    let error = result.unwrap_err();
    assert_eq!(
        error.message,
        "During the sync, the following streams did not sync successfully: absent, bad, worse"
    );
    let messages = out.messages();
    use AirbyteStreamStatus::*;
    assert_eq!(statuses(&messages, "good"), [Started, Running, Complete]);
    assert_eq!(statuses(&messages, "bad"), [Started, Running, Incomplete]);
    assert_eq!(statuses(&messages, "worse"), [Started, Running, Incomplete]);
    assert_eq!(statuses(&messages, "absent"), [Incomplete]);
    let good_records = messages
        .iter()
        .filter(|m| matches!(m, AirbyteMessage::Record { record } if record.stream == "good"))
        .count();
    assert_eq!(good_records, 50);
    let errors: Vec<(String, String)> = messages
        .iter()
        .filter_map(|m| match m {
            AirbyteMessage::Trace { trace } => match &trace.payload {
                TracePayload::Error { error } => Some((
                    error.stream_descriptor.as_ref()?.name.clone(),
                    error.message.clone(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(
        errors.contains(&("bad".into(), "lost connection at 6".into())),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|(s, m)| s == "worse" && m.contains("boom at 8")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|(s, m)| s == "absent" && m.contains("not found")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn unsupported_sync_modes_are_refused() {
    // A stream that can only be read incrementally, asked for a full refresh.
    struct OnlyIncremental;
    #[cdk::async_trait]
    impl Stream for OnlyIncremental {
        fn name(&self) -> &str {
            "n"
        }
        fn json_schema(&self) -> Value {
            json!({"type": "object"})
        }
        fn supported_sync_modes(&self) -> Vec<SyncMode> {
            vec![SyncMode::Incremental]
        }
        async fn read(&self, _: &ReadContext, _: &mut RecordWriter) -> Result<()> {
            Ok(())
        }
    }
    let out = Captured::default();
    let streams: Vec<Arc<dyn Stream>> = vec![Arc::new(OnlyIncremental)];
    let err = read_streams(
        streams,
        &catalog(&["n"]),
        &InputState::default(),
        &ReadOptions::default(),
        &out.output(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.failure_type, FailureType::ConfigError);
    assert!(
        out.text()
            .contains("does not support sync mode FullRefresh"),
        "{}",
        out.text()
    );
    // A cursor named for a stream that cannot read incrementally.
    let out = Captured::default();
    let mut cat = catalog(&["n"]);
    cat.streams[0].sync_mode = SyncMode::Incremental;
    cat.streams[0].cursor_field = Some(vec!["id".into()]);
    let streams: Vec<Arc<dyn Stream>> = vec![Arc::new(Numbers::new("n", 3))];
    let err = read_streams(
        streams,
        &cat,
        &InputState::default(),
        &ReadOptions::default(),
        &out.output(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.failure_type, FailureType::ConfigError);
    let text = out.text();
    assert!(
        text.contains("does not support sync mode Incremental"),
        "{text}"
    );
}

/// PyAirbyte configures every stream incremental with the default cursor, which a plain table
/// lacks: such a stream is read in full, warned about, and its state says "no cursor".
#[tokio::test]
async fn incremental_without_a_cursor_reads_in_full() {
    for declares_incremental in [false, true] {
        let out = Captured::default();
        let mut cat = catalog(&["n"]);
        cat.streams[0].sync_mode = SyncMode::Incremental;
        cat.streams[0].cursor_field = None;
        if declares_incremental {
            cat.streams[0].stream.supported_sync_modes =
                vec![SyncMode::FullRefresh, SyncMode::Incremental];
        }
        let mut numbers = Numbers::new("n", 5);
        numbers.checkpoint = false;
        let streams: Vec<Arc<dyn Stream>> = vec![Arc::new(numbers)];
        // A state from an earlier sync is ignored: the stream has no cursor to resume from.
        let state = InputState::parse(
            r#"[{"type": "STREAM", "stream": {"stream_descriptor": {"name": "n"},
                "stream_state": {"id": 3}}}]"#,
        )
        .unwrap();
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        read_streams(
            streams,
            &cat,
            &state,
            &ReadOptions::default(),
            &out.output(),
        )
        .await
        .unwrap();
        let messages = out.messages();
        let records = messages
            .iter()
            .filter(|m| matches!(m, AirbyteMessage::Record { .. }))
            .count();
        assert_eq!(records, 5, "every row is read");
        assert_eq!(
            states(&messages, "n"),
            [(json!({"__ab_no_cursor_state_message": true}), 5.0)]
        );
        use AirbyteStreamStatus::*;
        assert_eq!(statuses(&messages, "n"), [Started, Running, Complete]);
        let text = logs.text();
        assert!(
            text.contains("WARN")
                && text.contains(
                    "stream 'n' is incremental but has no cursor field: reading it in full"
                )
                && text.contains("set `cursor_field`"),
            "a warning names the stream and how to choose a cursor: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_streams_never_corrupt_a_line() {
    let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let streams = names.iter().map(|n| Numbers::new(n, 20_000)).collect();
    let options = ReadOptions {
        checkpoint_interval: 3_000,
        max_concurrent_streams: 8,
    };
    let (out, result) = read(streams, &refs, options).await;
    result.unwrap();
    // `messages()` panics on any corrupt line; ids per stream must be complete and in order.
    let messages = out.messages();
    for name in &names {
        let ids: Vec<u64> = messages
            .iter()
            .filter_map(|m| match m {
                AirbyteMessage::Record { record } if &record.stream == name => {
                    record.data["id"].as_u64()
                }
                _ => None,
            })
            .collect();
        assert_eq!(ids, (1..=20_000).collect::<Vec<_>>(), "stream {name}");
    }
}

#[tokio::test]
async fn global_states_follow_the_records_of_every_stream() {
    use cdk::source::GlobalWriter;
    let out = Captured::default();
    let (a, b) = (
        StreamDescriptor::new("a", Some("public".into())),
        StreamDescriptor::new("b", None),
    );
    let mut w = GlobalWriter::new(out.output(), &[a.clone(), b.clone()], 2);
    w.record(&a, &json!({"id": 1})).unwrap();
    w.record(&b, &json!({"id": 2})).unwrap();
    assert!(w.checkpoint_due());
    let per_stream = |lsn: u64| {
        vec![AirbyteStreamState {
            stream_descriptor: a.clone(),
            stream_state: Some(json!({"lsn": lsn})),
        }]
    };
    w.checkpoint(Some(json!({"lsn": 10})), per_stream(10));
    w.checkpoint(Some(json!({"lsn": 10})), per_stream(10));
    w.record(&a, &json!({"id": 3})).unwrap();
    w.checkpoint(Some(json!({"lsn": 11})), per_stream(11));
    assert!(
        w.record(&StreamDescriptor::new("c", None), &json!({}))
            .is_err()
    );
    w.finish();
    let messages = out.messages();
    let kinds: Vec<String> = messages
        .iter()
        .map(|m| match m {
            AirbyteMessage::Record { record } => format!("record {}", record.data["id"]),
            AirbyteMessage::State { state } => format!(
                "global {} {}",
                state
                    .global
                    .as_ref()
                    .unwrap()
                    .shared_state
                    .as_ref()
                    .unwrap()["lsn"],
                state.source_stats.unwrap().record_count.unwrap()
            ),
            AirbyteMessage::Trace { .. } => "status".into(),
            other => format!("{other:?}"),
        })
        .filter(|k| k != "status")
        .collect();
    // Both records precede the first state (in stream order); the repeated state is dropped.
    assert_eq!(
        kinds,
        [
            "record 1",
            "record 2",
            "global 10 2",
            "record 3",
            "global 11 1"
        ]
    );
    let starts = messages
        .iter()
        .filter(|m| matches!(m, AirbyteMessage::Trace { .. }))
        .count();
    assert_eq!(
        starts,
        2 + 2 + 2,
        "STARTED, RUNNING and COMPLETE for each stream"
    );
}

/// A record with a file: `file_reference` beside the data, valid by the protocol's schema, read
/// back the same by the full decoder and by a destination's line decoder (which skips it).
#[test]
fn records_with_files_carry_their_file_reference() {
    let out = Captured::default();
    let file = AirbyteRecordMessageFileReference {
        staging_file_url: Some("/staging/files/docs/a \"b\".pdf".into()),
        source_file_relative_path: Some("docs/a \"b\".pdf".into()),
        file_size_bytes: Some(12),
    };
    {
        let mut w = RecordWriter::new(out.output(), StreamDescriptor::new("docs", None), 100);
        w.record_with_file(&json!({"id": 1}), &file).unwrap();
        w.record_json_with_file(cdk::TrustedJson::new(br#"{"id":2}"#), &file)
            .unwrap();
        w.record(&json!({"id": 3})).unwrap();
        w.flush();
    }
    let text = out.text();
    let records: Vec<&str> = text.lines().filter(|l| l.contains("RECORD")).collect();
    assert_eq!(records.len(), 3, "{text}");
    assert!(
        records[0].contains(r#""file_reference":{"staging_file_url":"/staging/files/docs/a \"b\".pdf","source_file_relative_path":"docs/a \"b\".pdf","file_size_bytes":12}"#),
        "{}",
        records[0]
    );
    assert!(!records[2].contains("file_reference"), "{}", records[2]);
    let schema = cdk::testing::protocol_schema();
    for (i, line) in records.iter().enumerate() {
        let value: Value = serde_json::from_str(line).unwrap();
        if let Some(schema) = schema {
            schema.validate_message(&value).unwrap();
        }
        let AirbyteMessage::Record { record } = serde_json::from_str(line).unwrap() else {
            panic!("not a record: {line}");
        };
        assert_eq!(record.data, json!({"id": i + 1}));
        let expected = (i < 2).then(|| file.clone());
        assert_eq!(record.file_reference, expected, "{line}");
        match decode_line(line.as_bytes()).unwrap() {
            InputLine::Record(r) => {
                assert_eq!(r.stream, "docs");
                assert_eq!(r.data.get(), format!(r#"{{"id":{}}}"#, i + 1));
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    // The schema rejects a file_reference of the wrong shape: the check above can fail.
    if let Some(schema) = schema {
        let bad = json!({"type": "RECORD", "record": {"stream": "docs", "data": {}, "emitted_at": 1,
            "file_reference": {"file_size_bytes": "12"}}});
        assert!(schema.validate_message(&bad).is_err());
    }
}
