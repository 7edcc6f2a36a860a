//! The acceptance checks catch broken output: each check is fed a deliberately broken run.

use std::collections::HashMap;

use cdk::protocol::*;
use cdk::testing::Captured;
use cdk::testing::acceptance::{Verdict, checks, destination_checks};
use serde_json::{Value, json};

fn captured(exit: i32, lines: &[Value]) -> Captured {
    let stdout: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Captured::new(
        "fixture".into(),
        Some(exit),
        stdout.into_bytes(),
        Vec::new(),
        Vec::new(),
    )
}

fn status(stream: &str, s: &str) -> Value {
    json!({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0,
        "stream_status": {"stream_descriptor": {"name": stream}, "status": s}}})
}

fn record(stream: &str, data: Value) -> Value {
    json!({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1}})
}

fn state(stream: &str, blob: Value) -> Value {
    json!({"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": stream},
        "stream_state": blob}, "sourceStats": {"recordCount": 1.0}}})
}

fn catalog() -> (ConfiguredAirbyteCatalog, HashMap<StreamDescriptor, Value>) {
    let schema = json!({"type": "object", "properties": {"id": {"type": "integer"}}});
    let mut stream = AirbyteStream::new("s", schema.clone(), vec![SyncMode::FullRefresh]);
    stream.source_defined_primary_key = Some(vec![vec!["id".into()]]);
    let configured =
        ConfiguredAirbyteStream::new(stream, SyncMode::FullRefresh, DestinationSyncMode::Append);
    let schemas = HashMap::from([(StreamDescriptor::new("s", None), schema)]);
    (
        ConfiguredAirbyteCatalog {
            streams: vec![configured],
        },
        schemas,
    )
}

fn fails_with(v: Verdict, text: &str) {
    match v {
        Verdict::Fail(reason) => assert!(reason.contains(text), "expected {text:?} in {reason:?}"),
        other => panic!("expected a failure mentioning {text:?}, got {other:?}"),
    }
}

fn good_read() -> Vec<Value> {
    vec![
        status("s", "STARTED"),
        status("s", "RUNNING"),
        record("s", json!({"id": 1})),
        state("s", json!({"id": 1})),
        status("s", "COMPLETE"),
    ]
}

/// The basic read check's verdict on `c`, against the catalog of stream `s`.
fn basic_read(c: &Captured) -> Verdict {
    let (cat, schemas) = catalog();
    checks::basic_read(c, &cat, &schemas, &[])
}

#[test]
fn basic_read_accepts_a_good_read() {
    assert_eq!(basic_read(&captured(0, &good_read())), Verdict::Pass);
}

#[test]
fn basic_read_catches_a_record_of_the_wrong_type() {
    let mut lines = good_read();
    lines[2] = record("s", json!({"id": "one"}));
    fails_with(
        basic_read(&captured(0, &lines)),
        "does not match its schema",
    );
}

#[test]
fn basic_read_catches_a_missing_state() {
    let mut lines = good_read();
    lines.remove(3);
    fails_with(basic_read(&captured(0, &lines)), "no STATE message");
}

#[test]
fn basic_read_catches_statuses_out_of_order_and_null_keys() {
    let mut lines = good_read();
    lines.swap(0, 4);
    fails_with(basic_read(&captured(0, &lines)), "statuses");
    let mut lines = good_read();
    lines[2] = record("s", json!({"id": null}));
    fails_with(basic_read(&captured(0, &lines)), "primary key");
}

#[test]
fn basic_read_catches_non_protocol_lines() {
    let mut c = captured(0, &good_read());
    c.bad_lines.push("print debugging".into());
    fails_with(basic_read(&c), "not protocol messages");
}

#[test]
fn check_catches_a_crash_on_a_bad_config() {
    let crashed = Captured::new(
        "fixture".into(),
        Some(101),
        Vec::new(),
        b"thread 'main' panicked".to_vec(),
        Vec::new(),
    );
    fails_with(
        checks::connection_status(&crashed, ConnectionStatus::Failed),
        "panicked",
    );
    let ok = captured(
        0,
        &[json!({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}})],
    );
    fails_with(
        checks::connection_status(&ok, ConnectionStatus::Failed),
        "expected Failed",
    );
}

#[test]
fn incremental_checks_catch_going_back() {
    let cursors = HashMap::from([(StreamDescriptor::new("s", None), vec!["id".to_string()])]);
    let first = captured(
        0,
        &[record("s", json!({"id": 5})), state("s", json!({"id": 5}))],
    );
    let second = captured(0, &[record("s", json!({"id": 3}))]);
    fails_with(
        checks::second_read(&first, &second, &cursors),
        "below the state",
    );
    let future = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "s"}, "stream_state": {"id": 1e9}}}]);
    fails_with(checks::no_records(&second, &future), "returned 1 records");
}

#[test]
fn resume_checks_catch_lost_records() {
    let first = captured(
        0,
        &[
            record("s", json!({"id": 1})),
            state("s", json!({"id": 1})),
            record("s", json!({"id": 2})),
            state("s", json!({"id": 2})),
            record("s", json!({"id": 3})),
            state("s", json!({"id": 3})),
        ],
    );
    let lost = captured(0, &[record("s", json!({"id": 3}))]);
    let d = StreamDescriptor::new("s", None);
    fails_with(
        checks::resume_from_middle(&first, &lost, &d, 0, &["id".into()]),
        "lost records",
    );
    let whole = captured(
        0,
        &[record("s", json!({"id": 2})), record("s", json!({"id": 3}))],
    );
    assert_eq!(
        checks::resume_from_middle(&first, &whole, &d, 0, &["id".into()]),
        Verdict::Pass
    );
}

#[test]
fn full_refresh_twice_catches_missing_records() {
    let first = captured(
        0,
        &[record("s", json!({"id": 1})), record("s", json!({"id": 2}))],
    );
    let second = captured(0, &[record("s", json!({"id": 1}))]);
    fails_with(checks::same_records(&first, &second), "lacks records");
}

#[test]
fn bad_catalog_check_needs_a_trace_and_an_exit_code() {
    fails_with(checks::fails_with_trace(&captured(0, &[])), "exit code 0");
    fails_with(
        checks::fails_with_trace(&captured(1, &[])),
        "no TRACE ERROR",
    );
}

#[test]
fn dedup_check_catches_a_duplicate() {
    let rows = vec![
        json!({"id": 1, "name": "a", "seq": 1}),
        json!({"id": 1, "name": "a", "seq": 1}),
    ];
    fails_with(
        destination_checks::rows_equal(Ok(rows), &[(1, "a", 1)]),
        "stored rows",
    );
}

#[test]
fn states_echo_check_catches_reordering_and_wrong_counts() {
    let sent: Vec<(Value, f64)> = vec![
        (state("s", json!({"n": 1})), 2.0),
        (state("s", json!({"n": 2})), 1.0),
    ];
    let with_stats = |blob: Value, n: f64| {
        json!({"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": "s"},
            "stream_state": blob}, "destinationStats": {"recordCount": n}}})
    };
    // The destination's echo of states `n` with these record counts.
    let echo = |echoed: &[(i64, f64)]| {
        let lines: Vec<Value> = echoed
            .iter()
            .map(|&(n, count)| with_stats(json!({ "n": n }), count))
            .collect();
        captured(0, &lines)
    };
    fails_with(
        destination_checks::states_echoed(&echo(&[(2, 1.0), (1, 2.0)]), &sent),
        "out of order",
    );
    fails_with(
        destination_checks::states_echoed(&echo(&[(1, 5.0), (2, 1.0)]), &sent),
        "recordCount",
    );
}

#[test]
fn written_messages_match_the_protocol_definition() {
    let Some(schema) = cdk::testing::protocol_schema() else {
        println!("SKIPPED: airbyte_protocol.yaml not found");
        return;
    };
    for line in good_read() {
        schema.validate_message(&line).unwrap();
    }
    let bad =
        json!({"type": "STATE", "state": {"type": "STREAM", "sourceStats": {"recordCount": "1"}}});
    assert!(
        schema.validate_message(&bad).is_err(),
        "the validator must reject a string count"
    );
}
