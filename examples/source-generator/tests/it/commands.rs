//! Every command of the real binary: protocol-valid output, exit codes, error messages, and
//! secrets that never show.

use cdk::protocol::{AirbyteStreamStatus::*, ConnectionStatus, FailureType};
use cdk::testing::Run;
use serde_json::{Value, json};

use super::{BIN, fixture};

const SECRET: &str = "example-key-do-not-log";

fn catalog(streams: &[(&str, &str)]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, mode)| {
            json!({"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
                   "sync_mode": mode, "cursor_field": ["id"], "destination_sync_mode": "append"})
        })
        .collect();
    json!({ "streams": streams })
}

#[test]
fn spec_is_generated_from_the_config_type() {
    let out = Run::new(BIN).spec();
    out.assert_success().assert_protocol();
    insta::assert_json_snapshot!(out.spec());
}

#[test]
fn discover_lists_the_configured_streams() {
    let out = Run::new(BIN).discover(&fixture("config.json"));
    out.assert_success().assert_protocol();
    insta::assert_json_snapshot!(out.catalog());
}

#[test]
fn read_emits_records_states_and_statuses() {
    let config = json!({"count": 25, "streams": ["a", "b"], "checkpoint_interval": 10});
    let out = Run::new(BIN).read(
        &config,
        &catalog(&[("a", "incremental"), ("b", "full_refresh")]),
        None,
    );
    out.assert_success().assert_protocol();
    for stream in ["a", "b"] {
        let ids: Vec<u64> = out
            .records_of(stream)
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, (1..=25).collect::<Vec<_>>());
        assert_eq!(out.statuses_of(stream), [Started, Running, Complete]);
        let counts: Vec<f64> = out
            .states_of(stream)
            .iter()
            .map(|s| s.source_stats.unwrap().record_count.unwrap())
            .collect();
        assert_eq!(counts, [10.0, 10.0, 5.0], "{}", out.describe());
    }
    // Incremental from the last state: nothing new.
    let again = Run::new(BIN).read(
        &config,
        &catalog(&[("a", "incremental")]),
        Some(&out.final_state()),
    );
    again.assert_success();
    assert!(again.records_of("a").is_empty(), "{}", again.describe());
    assert_eq!(
        again.states_of("a").len(),
        1,
        "an empty stream still gets a state"
    );
}

#[test]
fn a_failing_stream_does_not_stop_the_others() {
    let config = json!({"count": 5, "streams": ["a"], "fail_after": 3});
    let cat = catalog(&[("a", "full_refresh"), ("missing", "full_refresh")]);
    let out = Run::new(BIN).read(&config, &cat, None);
    out.assert_failure().assert_protocol();
    assert_eq!(out.records_of("a").len(), 3);
    assert_eq!(out.statuses_of("a"), [Started, Running, Incomplete]);
    assert_eq!(out.statuses_of("missing"), [Incomplete]);
    let errors = out.trace_errors();
    let streams: Vec<&str> = errors
        .iter()
        .filter_map(|e| e.stream_descriptor.as_ref())
        .map(|d| d.name.as_str())
        .collect();
    assert!(
        streams.contains(&"a") && streams.contains(&"missing"),
        "{}",
        out.describe()
    );
    let last = errors.last().unwrap();
    assert!(
        last.message
            .contains("did not sync successfully: a, missing"),
        "{}",
        last.message
    );
}

#[test]
fn bad_configs_say_what_is_wrong() {
    let cases = [
        (Value::String("{not json".into()), "is not valid JSON"),
        (json!([1, 2]), "config must be a JSON object, got an array"),
        (
            json!({"count": "many"}),
            "'/count': \"many\" is not of type \"integer\"",
        ),
        (
            json!({"streams": []}),
            "'streams' must name at least one stream",
        ),
        (
            json!({"checkpoint_interval": 0}),
            "'/checkpoint_interval': 0 is less than the minimum of 1",
        ),
    ];
    for (config, expected) in cases {
        let out = Run::new(BIN).check(&config);
        out.assert_success().assert_protocol();
        let status = out.connection_status();
        assert_eq!(status.status, ConnectionStatus::Failed);
        let message = status.message.as_deref().unwrap_or_default();
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
        // Other commands fail with a config error trace and a non-zero exit.
        let out = Run::new(BIN).discover(&config);
        out.assert_failure().assert_protocol();
        assert_eq!(
            out.trace_errors()[0].failure_type,
            Some(FailureType::ConfigError)
        );
        assert!(
            out.trace_errors()[0].message.contains(expected),
            "{}",
            out.describe()
        );
        // The kit validates for `read` too: the source no longer checks its config itself.
        let out = Run::new(BIN).read(&config, &catalog(&[("a", "full_refresh")]), None);
        out.assert_failure().assert_protocol();
        assert_eq!(out.records().count(), 0, "{}", out.describe());
        assert!(
            out.trace_errors()[0].message.contains(expected),
            "{}",
            out.describe()
        );
    }
}

#[test]
fn the_secret_never_appears_in_any_output() {
    let good = json!({"count": 3, "api_key": SECRET});
    // The secret inside a violation message: masked too.
    let bad_type = json!({"count": SECRET, "api_key": SECRET});
    let failing = json!({"count": 3, "api_key": SECRET, "fail_after": 1});
    let runs = [
        Run::new(BIN).env("LOG_LEVEL", "debug").check(&good),
        Run::new(BIN).check(&bad_type),
        Run::new(BIN).discover(&good),
        Run::new(BIN).discover(&bad_type),
        Run::new(BIN)
            .arg("--debug")
            .read(&good, &catalog(&[("users", "full_refresh")]), None),
        Run::new(BIN).read(
            &failing,
            &catalog(&[("users", "full_refresh"), ("nope", "full_refresh")]),
            None,
        ),
        Run::new(BIN).read(&bad_type, &catalog(&[("users", "full_refresh")]), None),
    ];
    for out in runs {
        assert!(
            !out.stdout.contains(SECRET),
            "secret on stdout\n{}",
            out.describe()
        );
        assert!(
            !out.stderr.contains(SECRET),
            "secret on stderr\n{}",
            out.describe()
        );
        out.assert_protocol();
    }
}

#[test]
fn a_closed_stdout_ends_the_process_quietly() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    let cat = dir.path().join("cat.json");
    std::fs::write(&config, json!({"count": 5_000_000}).to_string()).unwrap();
    std::fs::write(&cat, catalog(&[("users", "full_refresh")]).to_string()).unwrap();
    let mut child = Command::new(BIN)
        .args(["read", "--config"])
        .arg(&config)
        .arg("--catalog")
        .arg(&cat)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 4096];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
