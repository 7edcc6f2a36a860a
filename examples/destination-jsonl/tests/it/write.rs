//! The loader's guarantees through the real binary: states in order with counts, bad lines
//! skipped and logged, unknown streams refused, overwrite that keeps the old file on failure.

use cdk::testing::{Captured, Run};
use serde_json::{Value, json};

use super::{BIN, stored};

fn catalog(streams: &[(&str, &str)]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, mode)| {
            json!({"stream": {"name": name, "json_schema": {"type": "object"}, "supported_sync_modes": ["full_refresh"]},
                   "sync_mode": "full_refresh", "destination_sync_mode": mode})
        })
        .collect();
    json!({ "streams": streams })
}

fn record(stream: &str, id: u64) -> String {
    json!({"type": "RECORD", "record": {"stream": stream, "data": {"id": id}, "emitted_at": 1}})
        .to_string()
}

fn state(stream: &str, n: u64) -> String {
    json!({"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": {"n": n}}}}).to_string()
}

fn write(dir: &std::path::Path, cat: &Value, lines: &[String]) -> Captured {
    Run::new(BIN)
        .stdin_lines(lines)
        .write(&json!({"destination_path": dir}), cat)
}

#[test]
fn global_states_count_every_stream() {
    let dir = tempfile::tempdir().unwrap();
    let global =
        json!({"type": "STATE", "state": {"type": "GLOBAL", "global": {"shared_state": {"lsn": 7},
        "stream_states": [{"stream_descriptor": {"name": "a"}, "stream_state": {}}]}}})
        .to_string();
    let lines = [record("a", 1), record("b", 2), record("a", 3), global];
    let out = write(
        dir.path(),
        &catalog(&[("a", "append"), ("b", "append")]),
        &lines,
    );
    out.assert_success().assert_protocol();
    let states = out.states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].destination_stats.unwrap().record_count, Some(3.0));
    assert_eq!(
        states[0].global.as_ref().unwrap().shared_state,
        Some(json!({"lsn": 7}))
    );
}

#[test]
fn a_record_for_an_unknown_stream_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        record("a", 1),
        state("a", 1),
        record("ghost", 2),
        state("a", 2),
    ];
    let out = write(dir.path(), &catalog(&[("a", "append")]), &lines);
    out.assert_failure().assert_protocol();
    let error = &out.trace_errors()[0];
    assert!(
        error.message.contains("stream 'ghost'"),
        "{}",
        error.message
    );
    // It commits at each state: the state before the failure is acknowledged, none after.
    assert_eq!(
        out.states().len(),
        1,
        "no state may be echoed past the failure\n{}",
        out.describe()
    );
}

#[test]
fn a_failed_overwrite_keeps_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(&[("a", "overwrite")]);
    write(
        dir.path(),
        &cat,
        &[record("a", 1), record("a", 2), state("a", 2)],
    )
    .assert_success();
    let failed = write(dir.path(), &cat, &[record("a", 3), record("ghost", 4)]);
    failed.assert_failure();
    assert_eq!(
        stored(dir.path(), "a").unwrap(),
        [json!({"id": 1}), json!({"id": 2})]
    );
    write(dir.path(), &cat, &[record("a", 5), state("a", 5)]).assert_success();
    assert_eq!(stored(dir.path(), "a").unwrap(), [json!({"id": 5})]);
}

#[test]
fn unsupported_sync_modes_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = write(
        dir.path(),
        &catalog(&[("a", "append_dedup")]),
        &[record("a", 1)],
    );
    out.assert_failure().assert_protocol();
    assert!(
        out.trace_errors()[0]
            .message
            .contains("'append_dedup' is not supported"),
        "{}",
        out.describe()
    );
}

#[test]
fn check_reports_an_unwritable_path() {
    let out = Run::new(BIN).check(&json!({"destination_path": "/proc/cannot-write-here"}));
    out.assert_success().assert_protocol();
    let status = out.connection_status();
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .contains("/proc/cannot-write-here"),
        "{status:?}"
    );
}

/// SIGTERM between commits (how `cdk sync` and container runtimes stop a destination): the
/// acknowledged records stay, the ones after the last state are rolled back, and the exit
/// says why.
#[test]
fn sigterm_keeps_what_was_acknowledged_and_rolls_back_the_rest() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let cat = dir.path().join("catalog.json");
    let out = dir.path().join("out");
    std::fs::write(&config, json!({"destination_path": out}).to_string()).unwrap();
    std::fs::write(&cat, catalog(&[("a", "append")]).to_string()).unwrap();
    let mut child = Command::new(BIN)
        .args(["write", "--config"])
        .arg(&config)
        .arg("--catalog")
        .arg(&cat)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        record("a", 1),
        record("a", 2),
        state("a", 1),
        record("a", 3),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let acknowledged = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.contains(r#""type":"STATE""#));
    assert!(acknowledged.is_some(), "no state acknowledged");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    drop(stdin);
    assert!(!status.success(), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("stopped by SIGTERM")),
        "{rest:?}"
    );
    assert_eq!(
        stored(&out, "a").unwrap(),
        [json!({"id": 1}), json!({"id": 2})]
    );
}
