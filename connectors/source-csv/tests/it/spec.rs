//! The spec and the discovered catalog of the bundled sample, as snapshots.

use cdk::testing::Run;
use serde_json::json;

use crate::{BIN, discover};

#[test]
fn spec_snapshot() {
    let run = Run::new(BIN).spec();
    run.assert_success().assert_protocol();
    insta::assert_json_snapshot!("spec", run.spec());
}

#[test]
fn discover_snapshot_of_the_sample() {
    let config = json!({
        "dataset_name": "sales_data",
        "url": "integration_tests/sample/sales_*.csv",
        "provider": {"storage": "local"},
    });
    insta::assert_json_snapshot!("discover_sample", discover(&config));
}

#[test]
fn the_seeds_config_shape_is_accepted() {
    // The seed's example names dataset, URL, format and an HTTPS provider; the same shape
    // with the local provider must validate and read.
    let config = json!({
        "dataset_name": "sales_data",
        "format": "csv",
        "url": "integration_tests/sample/sales_2024_01.csv",
        "provider": {"storage": "local"},
    });
    crate::check_succeeds(&config);
    let run = crate::read(&config);
    assert_eq!(run.records_of("sales_data").len(), 20);
}
