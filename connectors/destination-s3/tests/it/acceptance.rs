//! The kit's destination suite against the in-process S3 server and a local directory, in
//! several formats.

use cdk::testing::acceptance::{DestinationReader, DestinationSuite, Verdict};
use serde_json::{Value, json};

use super::{BIN, Place};

struct Reader {
    place: Place,
    bucket_path: &'static str,
}

#[cdk::async_trait]
impl DestinationReader for Reader {
    async fn read(&self, stream: &str) -> Result<Vec<Value>, String> {
        Ok(self
            .place
            .data(&format!("{}/{stream}", self.bucket_path))
            .await)
    }
}

async fn passes(place: Place, format: Value) {
    let reader = Reader {
        place,
        bucket_path: "acceptance/data",
    };
    let config = reader.place.config(reader.bucket_path, format.clone());
    let report = DestinationSuite {
        bin: BIN.into(),
        config,
        supports_dedup: false,
        ..DestinationSuite::default()
    }
    .run(&reader)
    .await;
    println!("{format}\n{}", report.table());
    report.assert_all_passed();
    assert_eq!(
        report.verdict("destination: state acknowledged after its records"),
        Some(&Verdict::Pass),
        "states must be echoed while input is still open, after their files are complete"
    );
}

#[tokio::test]
async fn s3_jsonl_gzip() {
    passes(Place::s3("acc-jsonl"), json!({"format_type": "JSONL"})).await;
}

#[tokio::test]
async fn s3_parquet_snappy() {
    passes(
        Place::s3("acc-parquet"),
        json!({"format_type": "Parquet", "compression_codec": "SNAPPY"}),
    )
    .await;
}

#[tokio::test]
async fn local_csv_flattened() {
    passes(
        Place::local(),
        json!({"format_type": "CSV", "flattening": "Root level flattening",
               "compression": {"compression_type": "No Compression"}}),
    )
    .await;
}

#[tokio::test]
async fn local_parquet_zstd() {
    passes(
        Place::local(),
        json!({"format_type": "Parquet", "compression_codec": "zstd"}),
    )
    .await;
}
