//! Formats other than CSV (JSON Lines, JSON, Parquet) through globs, compression and
//! incremental state; the format's name in any case; unsupported formats and reader options
//! failing `check` by name.

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use serde_json::{Value, json};

use crate::{BIN, catalog, check_fails, check_succeeds, gzip, put, zstd};

fn local(url: impl AsRef<std::path::Path>, format: &str) -> Value {
    json!({"dataset_name": "items", "format": format,
           "url": url.as_ref().display().to_string(), "provider": {"storage": "local"}})
}

fn ids(cfg: &Value, state: Option<&Value>) -> (Vec<i64>, Value) {
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
fn jsonl_glob_of_compressed_files_reads_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "a.jsonl.gz",
        gzip("{\"id\": 1, \"tags\": [\"x\"]}\n{\"id\": 2}\n"),
        1,
    );
    put(
        dir.path(),
        "b.jsonl.zst",
        zstd("{\"id\": 3, \"nested\": {\"k\": 1}}\n"),
        2,
    );
    let cfg = local(dir.path().join("*.jsonl.*"), "JSONL");
    check_succeeds(&cfg);
    let stream = crate::discover(&cfg);
    let properties = &stream["json_schema"]["properties"];
    assert_eq!(properties["id"], json!({"type": ["null", "integer"]}));
    assert_eq!(properties["tags"], json!({"type": ["null", "array"]}));
    let run = crate::read(&cfg);
    let records = run.records_of("items");
    assert_eq!(records[0]["tags"], json!(["x"]));
    assert_eq!(records[2]["nested"], json!({"k": 1}));
    assert!(
        records[0]["_ab_source_file_url"]
            .as_str()
            .unwrap()
            .ends_with("a.jsonl.gz")
    );

    let (read, state) = ids(&cfg, None);
    assert_eq!(read, [1, 2, 3]);
    let (read, state) = ids(&cfg, Some(&state));
    assert!(
        read.is_empty(),
        "unchanged files are not read again: {read:?}"
    );
    put(dir.path(), "c.jsonl.gz", gzip("{\"id\": 4}\n"), 3);
    assert_eq!(ids(&cfg, Some(&state)).0, [4]);
}

#[test]
fn json_arrays_and_single_objects() {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "a.json",
        "[{\"id\": 1}, {\"id\": 2, \"v\": 2.5}]",
        1,
    );
    put(dir.path(), "b.json", "{\"id\": 3, \"v\": null}", 2);
    let cfg = local(dir.path().join("*.json"), "json");
    assert_eq!(ids(&cfg, None).0, [1, 2, 3]);
    let stream = crate::discover(&cfg);
    assert_eq!(
        stream["json_schema"]["properties"]["v"],
        json!({"type": ["null", "number"]})
    );
    let full = catalog(&cfg, SyncMode::FullRefresh);
    put(dir.path(), "c.json", "[1, 2]", 3);
    let message = crate::read_fails(&cfg, &full);
    assert!(
        message.contains("c.json") && message.contains("not a JSON object"),
        "{message}"
    );
}

#[test]
fn parquet_types_come_from_the_file() {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let batch = |ids: Vec<i64>| {
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(ids))),
            ("name", Arc::new(StringArray::from(names))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut bytes = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        bytes
    };
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "p1.parquet", batch(vec![1, 2]), 1);
    put(dir.path(), "p2.parquet", batch(vec![3]), 2);
    let cfg = local(dir.path().join("*.parquet"), "Parquet");
    check_succeeds(&cfg);
    let properties = crate::discover(&cfg)["json_schema"]["properties"].clone();
    assert_eq!(properties["id"], json!({"type": ["null", "integer"]}));
    assert_eq!(properties["name"], json!({"type": ["null", "string"]}));
    let (read, state) = ids(&cfg, None);
    assert_eq!(read, [1, 2, 3]);
    assert!(ids(&cfg, Some(&state)).0.is_empty());
    let run = crate::read(&cfg);
    assert_eq!(run.records_of("items")[2]["name"], json!("n3"));
    put(dir.path(), "p3.parquet", "not parquet", 3);
    assert!(check_fails(&cfg).contains("p3.parquet"));
}

#[test]
fn unsupported_formats_and_options_fail_check_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), "a.csv", "a,b\n1,2\n", 0);
    for format in ["CSV", "csv", "Csv"] {
        check_succeeds(&local(&path, format));
    }
    let message = check_fails(&local(&path, "excel"));
    assert!(
        message.contains("'excel'") && message.contains("csv, json, jsonl, parquet"),
        "{message}"
    );
    let mut cfg = local(&path, "csv");
    cfg["reader_options"] = json!("{\"sep\": \";\", \"index_col\": 0}");
    let message = check_fails(&cfg);
    assert!(message.contains("'index_col'"), "{message}");
    cfg["reader_options"] = json!("{sep: ;}");
    assert!(check_fails(&cfg).contains("reader_options"));
    cfg["reader_options"] = json!("{\"sep\": \"[,;]\"}");
    assert!(check_fails(&cfg).contains("reader_options.sep"));
    cfg["reader_options"] = json!("{\"sep\": \";\"}");
    cfg["csv_options"] = json!({});
    assert!(check_fails(&cfg).contains("not both"));
}
