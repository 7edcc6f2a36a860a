//! Overwrite and append across syncs: older generations go only after a successful sync; a
//! failed sync leaves what was there (and its own completed files, which a retry of the same
//! generation keeps); other streams' objects are never touched.

use serde_json::{Value, json};

use super::{Place, catalog, record, state};
use cdk::testing::{Captured, Run};

fn ids(rows: Vec<Value>) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids
}

/// A sync that acknowledges (commits) at every state.
fn run(config: &Value, catalog: &Value, lines: &[String]) -> Captured {
    Run::new(super::BIN)
        .env("CDK_COMMIT_INTERVAL_MS", "0")
        .stdin_lines(lines)
        .write(config, catalog)
}

fn records(stream: &str, ids: std::ops::RangeInclusive<i64>) -> Vec<String> {
    ids.map(|i| record(stream, json!({"id": i}))).collect()
}

async fn overwrite_generations(place: Place, format: Value) {
    let config = place.config("ow", format);
    let cat = |generation| {
        catalog(
            "users",
            json!({"type": "object", "properties": {"id": {"type": "integer"}}}),
            "overwrite",
            generation,
            generation,
        )
    };

    let mut lines = records("users", 1..=3);
    lines.push(state("users", 3));
    run(&config, &cat(1), &lines).assert_success();
    assert_eq!(ids(place.data("ow/users").await), [1, 2, 3]);

    // Generation 2 fails after committing 10..=11: generation 1 is still there.
    let mut lines = records("users", 10..=11);
    lines.push(state("users", 11));
    lines.extend(records("users", 12..=12));
    lines.push(record("ghost", json!({"id": 0})));
    let failed = run(&config, &cat(2), &lines);
    failed.assert_failure();
    assert_eq!(failed.states().len(), 1, "{}", failed.describe());
    assert_eq!(ids(place.data("ow/users").await), [1, 2, 3, 10, 11]);

    // The retry of generation 2 resumes: generation 1 goes, generation 2's files stay.
    let mut lines = records("users", 12..=13);
    lines.push(state("users", 13));
    run(&config, &cat(2), &lines).assert_success();
    assert_eq!(ids(place.data("ow/users").await), [10, 11, 12, 13]);

    // A new generation replaces everything.
    let mut lines = records("users", 20..=20);
    lines.push(state("users", 20));
    run(&config, &cat(3), &lines).assert_success();
    assert_eq!(ids(place.data("ow/users").await), [20]);
}

#[tokio::test]
async fn overwrite_on_s3_removes_older_generations_only_after_success() {
    overwrite_generations(Place::s3("overwrite"), json!({"format_type": "Parquet"})).await;
}

#[tokio::test]
async fn overwrite_on_local_files_removes_older_generations_only_after_success() {
    overwrite_generations(Place::local(), json!({"format_type": "JSONL"})).await;
}

#[tokio::test]
async fn overwrite_touches_only_the_stream_s_own_objects() {
    let place = Place::s3("overwrite-scope");
    let mut config = place.config("shared", json!({"format_type": "JSONL"}));
    config["s3_path_format"] = json!("${STREAM_NAME}_${EPOCH}_");
    let schema = json!({});
    let both = json!({"streams": [
        catalog("users", schema.clone(), "append", 1, 0)["streams"][0],
        catalog("users_v2", schema.clone(), "append", 1, 0)["streams"][0]]});
    let mut lines = records("users", 1..=1);
    lines.extend(records("users_v2", 2..=2));
    lines.push(state("users", 1));
    run(&config, &both, &lines).assert_success();
    let Place::S3 { bucket } = &place else {
        unreachable!()
    };
    let store = cdk::testing::s3::TestS3::shared().store(bucket);
    object_store::ObjectStoreExt::put(
        &store,
        &object_store::path::Path::from("shared/users_notes.txt"),
        object_store::PutPayload::from_static(b"keep me"),
    )
    .await
    .unwrap();

    let mut lines = records("users", 3..=3);
    lines.push(state("users", 3));
    run(
        &config,
        &catalog("users", schema, "overwrite", 2, 2),
        &lines,
    )
    .assert_success();
    let keys = place.keys("shared").await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&"shared/users_notes.txt".to_string()));
    let mut users = Vec::new();
    for key in keys.iter().filter(|k| k.ends_with(".gz")) {
        for row in super::decode(key, &place.get(key).await) {
            users.push((
                key.starts_with("shared/users_v2"),
                row["_airbyte_data"]["id"].as_i64().unwrap(),
            ));
        }
    }
    users.sort();
    assert_eq!(users, [(false, 3), (true, 2)]);
}

#[tokio::test]
async fn append_keeps_every_sync_and_an_empty_sync_writes_nothing() {
    let place = Place::local();
    let config = place.config("ap", json!({"format_type": "CSV"}));
    let cat = catalog("events", json!({}), "append", 0, 0);
    for batch in [1..=2, 3..=3] {
        let mut lines = records("events", batch);
        lines.push(state("events", 0));
        run(&config, &cat, &lines).assert_success();
    }
    run(&config, &cat, &[state("events", 9)]).assert_success();
    assert_eq!(place.keys("ap/events").await.len(), 2);
    assert_eq!(ids(place.data("ap/events").await), [1, 2, 3]);
}

#[tokio::test]
async fn unsupported_modes_and_generations_are_config_errors() {
    let place = Place::local();
    let config = place.config("x", json!({"format_type": "JSONL"}));
    let out = run(
        &config,
        &catalog("s", json!({}), "append_dedup", 1, 0),
        &records("s", 1..=1),
    );
    out.assert_failure().assert_protocol();
    assert!(
        out.trace_errors()[0]
            .message
            .contains("'append_dedup' is not supported")
    );
    let out = run(
        &config,
        &catalog("s", json!({}), "overwrite", 3, 2),
        &records("s", 1..=1),
    );
    out.assert_failure();
    assert!(
        out.trace_errors()[0]
            .message
            .contains("minimum_generation_id 2"),
        "{}",
        out.describe()
    );
}

#[tokio::test]
async fn a_failed_sync_leaves_no_partial_object() {
    let place = Place::s3("partial");
    let config = place.config(
        "part",
        json!({"format_type": "JSONL", "compression": {"compression_type": "No Compression"}}),
    );
    // Over one 8 MiB part, so a multipart upload is under way when the sync fails.
    let filler = "y".repeat(1000);
    let mut lines: Vec<String> = (0..12_000)
        .map(|i| record("big", json!({"id": i, "filler": filler})))
        .collect();
    lines.push(record("ghost", json!({"id": 0})));
    let out = super::write(&config, &catalog("big", json!({}), "append", 1, 0), &lines);
    out.assert_failure();
    assert!(out.states().is_empty());
    assert_eq!(place.keys("part").await, Vec::<String>::new());
}
