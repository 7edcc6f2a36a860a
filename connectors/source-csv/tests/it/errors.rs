//! Bad input: missing files, bad options, ragged rows and invalid text — a precise message
//! naming the file and line, or (when the options say so) the row skipped and counted.

use cdk::protocol::{FailureType, SyncMode};
use cdk::testing::Run;
use serde_json::json;

use crate::{BIN, catalog, check_fails, config, put, read, read_fails, rows};

#[test]
fn check_names_a_missing_file_or_an_empty_glob() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let message = check_fails(&config(&missing, json!({})));
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    let message = check_fails(&config(dir.path().join("*.csv"), json!({})));
    assert!(message.contains("no file matches"), "{message}");
}

#[test]
fn check_rejects_bad_options_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), "a.csv", "a\n1\n", 0);
    for (options, field) in [
        (json!({"delimiter": ";;"}), "csv_options.delimiter"),
        (json!({"quote_char": ""}), "csv_options.quote_char"),
        (json!({"encoding": "klingon"}), "csv_options.encoding"),
        (
            json!({"header_definition": {"header_definition_type": "User Provided", "column_names": ["a", "a"]}}),
            "column_names",
        ),
    ] {
        let message = check_fails(&config(&path, options));
        assert!(message.contains(field), "{field}: {message}");
    }
    // Wrong shapes are caught by the spec, naming the field.
    let message = check_fails(&config(&path, json!({"skip_rows_before_header": "two"})));
    assert!(message.contains("skip_rows_before_header"), "{message}");
}

#[test]
fn a_duplicate_header_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), "a.csv", "id,id\n1,2\n", 0);
    let message = check_fails(&config(&path, json!({})));
    assert!(
        message.contains("'id' appears more than once") && message.contains("a.csv"),
        "{message}"
    );
}

#[test]
fn ragged_rows_fail_naming_file_and_line_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), "r.csv", "a,b\n1,2\n3\n4,5,6\n7,8\n", 0);
    let cfg = config(&path, json!({}));
    // Discovery samples the same rows and fails the same way, as does check; the catalog
    // comes from a discovery that skips them.
    let message = check_fails(&cfg);
    assert!(
        message.contains("r.csv' line 3: 1 fields where the header has 2"),
        "{message}"
    );
    let skipping = config(&path, json!({"ignore_errors_on_fields_mismatch": true}));
    let cat = catalog(&skipping, SyncMode::FullRefresh);
    let message = read_fails(&cfg, &cat);
    assert!(
        message.contains("r.csv' line 3: 1 fields where the header has 2"),
        "{message}"
    );
    let run = Run::new(BIN).read(&cfg, &cat, None);
    let error = run.trace_errors()[0].clone();
    assert_eq!(error.failure_type, Some(FailureType::ConfigError));
    assert_eq!(
        run.records_of("items").len(),
        1,
        "rows before the bad one were emitted"
    );

    let run = read(&skipping);
    assert_eq!(
        rows(&run),
        [json!({"a": 1, "b": 2}), json!({"a": 7, "b": 8})]
    );
    let logs: Vec<_> = run.logs().iter().map(|l| l.message.clone()).collect();
    assert!(
        logs.iter().any(|l| l.contains("line 4: 3 fields")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("skipped 2 row(s)")),
        "{logs:?}"
    );
}

#[test]
fn invalid_utf8_fails_naming_file_and_line_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), "u.csv", b"a,b\n1,ok\n2,caf\xe9\n3,fine\n", 0);
    let cfg = config(&path, json!({"inference_type": "None"}));
    let cat = json!({"streams": [{"stream": {"name": "items", "json_schema": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}, "supported_sync_modes": ["full_refresh"]}, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]});
    let message = read_fails(&cfg, &cat);
    assert!(
        message.contains("u.csv' line 3: the row is not valid UTF-8"),
        "{message}"
    );
    let skipping = config(
        &path,
        json!({"inference_type": "None", "ignore_encoding_errors": true}),
    );
    let run = Run::new(BIN).read(&skipping, &cat, None);
    run.assert_success().assert_protocol();
    assert_eq!(
        rows(&run),
        [json!({"a": "1", "b": "ok"}), json!({"a": "3", "b": "fine"})]
    );
}

#[test]
fn a_malformed_state_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), "a.csv", "a\n1\n", 0);
    let cfg = config(&path, json!({}));
    let cat = catalog(&cfg, SyncMode::Incremental);
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "items"}, "stream_state": {"history": {"a.csv": "yesterday"}}}}]);
    let run = Run::new(BIN).read(&cfg, &cat, Some(&state));
    run.assert_failure().assert_protocol();
    let message = &run.trace_errors()[0].message;
    assert!(
        message.contains("history is invalid") && message.contains("yesterday"),
        "{message}"
    );
}
