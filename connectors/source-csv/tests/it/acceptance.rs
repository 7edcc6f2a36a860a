//! The kit's acceptance suite: with the bundled fixtures (as `cdk test` runs it), and with a
//! glob of compressed and plain files whose last-modified times are set.

use cdk::protocol::SyncMode;
use cdk::testing::acceptance::SourceSuite;
use serde_json::{Value, json};

use crate::{BIN, catalog, config, gzip, put, zstd};

fn fixture(name: &str) -> Value {
    let path = format!("integration_tests/{name}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn acceptance_suite_passes_on_the_bundled_fixtures() {
    let report = SourceSuite {
        bin: BIN.into(),
        config: fixture("config.json"),
        invalid_config: fixture("invalid_config.json"),
        catalog: fixture("configured_catalog.json"),
        future_state: Some(fixture("abnormal_state.json")),
        ..SourceSuite::default()
    }
    .run();
    println!("{}", report.table());
    report.assert_all_passed();
}

#[test]
fn acceptance_suite_passes_on_a_glob_of_compressed_files() {
    let dir = tempfile::tempdir().unwrap();
    let body = |from: u32| {
        let mut s = String::from("id,name,amount,day\n");
        for i in from..from + 30 {
            s.push_str(&format!(
                "{i},name {i},{}.5,2024-02-{:02}\n",
                i * 3,
                i % 28 + 1
            ));
        }
        s
    };
    put(dir.path(), "part-1.csv", body(0), 10);
    put(dir.path(), "part-2.csv.gz", gzip(&body(30)), 20);
    put(dir.path(), "nested/part-3.csv.zst", zstd(&body(60)), 30);
    let cfg = config(dir.path().join("**/part-*"), json!({}));
    let future: Value = json!([{"type": "STREAM", "stream": {
    "stream_descriptor": {"name": "items"},
    "stream_state": {"history": {
        dir.path().join("part-1.csv").display().to_string(): "2999-01-01T00:00:00.000000Z",
        dir.path().join("part-2.csv.gz").display().to_string(): "2999-01-01T00:00:00.000000Z",
        dir.path().join("nested/part-3.csv.zst").display().to_string(): "2999-01-01T00:00:00.000000Z",
    }}}}]);
    let report = SourceSuite {
        bin: BIN.into(),
        config: cfg.clone(),
        invalid_config: config(dir.path().join("*.tsv"), json!({})),
        catalog: catalog(&cfg, SyncMode::Incremental),
        future_state: Some(future),
        ..SourceSuite::default()
    }
    .run();
    println!("{}", report.table());
    report.assert_all_passed();
}
