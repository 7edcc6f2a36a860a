//! Incremental reads by file last-modified time: a new or changed file is read, an unchanged
//! one is not; the state has Airbyte's file-based shape.

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use serde_json::{Value, json};

use crate::{BIN, catalog, config, put, touch};

fn sync(cfg: &Value, state: Option<&Value>) -> (Vec<i64>, Value) {
    let run = Run::new(BIN).read(cfg, &catalog(cfg, SyncMode::Incremental), state);
    run.assert_success().assert_protocol();
    let ids = run
        .records_of("items")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    (ids, run.final_state())
}

#[test]
fn new_and_changed_files_are_read_unchanged_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let a = put(dir.path(), "a.csv", "id\n1\n2\n", 1);
    put(dir.path(), "b.csv", "id\n3\n", 2);
    let cfg = config(dir.path().join("*.csv"), json!({}));

    let (ids, state) = sync(&cfg, None);
    assert_eq!(ids, [1, 2, 3]);
    let stream_state = &state[0]["stream"]["stream_state"];
    assert_eq!(
        stream_state["history"],
        json!({
            a.display().to_string(): "2024-01-01T00:01:00.000000Z",
            dir.path().join("b.csv").display().to_string(): "2024-01-01T00:02:00.000000Z",
        })
    );
    assert_eq!(
        stream_state["_ab_source_file_last_modified"],
        json!(format!(
            "2024-01-01T00:02:00.000000Z_{}",
            dir.path().join("b.csv").display()
        ))
    );

    let (ids, state) = sync(&cfg, Some(&state));
    assert!(ids.is_empty(), "nothing changed: {ids:?}");

    put(dir.path(), "c.csv", "id\n4\n", 0);
    std::fs::write(&a, "id\n1\n2\n5\n").unwrap();
    touch(&a, 3);
    let (ids, state) = sync(&cfg, Some(&state));
    assert_eq!(
        ids,
        [4, 1, 2, 5],
        "a new file (even an older one) and a changed file"
    );

    let (ids, _) = sync(&cfg, Some(&state));
    assert!(ids.is_empty());
}

#[test]
fn a_state_follows_every_file_so_a_sync_resumes_after_the_last_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["a.csv", "b.csv", "c.csv"].iter().enumerate() {
        put(dir.path(), name, format!("id\n{i}\n"), i as u64);
    }
    let cfg = config(dir.path().join("*.csv"), json!({}));
    let run = Run::new(BIN).read(&cfg, &catalog(&cfg, SyncMode::Incremental), None);
    run.assert_success();
    let states = run.states();
    assert_eq!(states.len(), 3);
    let after_first = json!([{"type": "STREAM", "stream": states[0].stream.clone().unwrap()}]);
    let (ids, _) = sync(&cfg, Some(&after_first));
    assert_eq!(ids, [1, 2]);
}

#[test]
fn full_refresh_reads_everything_every_time() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "a.csv", "id\n1\n", 1);
    let cfg = config(dir.path().join("a.csv"), json!({}));
    let cat = catalog(&cfg, SyncMode::FullRefresh);
    let first = Run::new(BIN).read(&cfg, &cat, None);
    first.assert_success();
    let second = Run::new(BIN).read(&cfg, &cat, Some(&first.final_state()));
    second.assert_success();
    assert_eq!(second.records_of("items").len(), 1);
}
