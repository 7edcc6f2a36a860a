//! Objects in S3 (the in-process test S3 server): key globs, both URL forms, compression,
//! incremental reads, and a missing bucket or bad keys failing check without the secret.

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use cdk::testing::s3::TestS3;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};

use crate::{BIN, catalog, check_fails, check_succeeds, gzip, read, rows, zstd};

fn s3_config(url: String, extra: Value) -> Value {
    let s3 = TestS3::shared();
    let mut provider = json!({
        "storage": "S3",
        "region": s3.region,
        "endpoint": s3.endpoint,
        "aws_access_key_id": s3.access_key,
        "aws_secret_access_key": s3.secret_key,
    });
    for (k, v) in extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    json!({"dataset_name": "items", "format": "csv", "url": url, "provider": provider})
}

async fn put(bucket: &str, key: &str, bytes: Vec<u8>) {
    TestS3::shared()
        .store(bucket)
        .put(&Path::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_glob_reads_matching_objects_in_both_url_forms() {
    let bucket = TestS3::shared().fresh_bucket("csv-glob");
    put(&bucket, "sales/2024/01.csv", b"id,v\n1,a\n".to_vec()).await;
    put(&bucket, "sales/2024/02.csv.gz", gzip("id,v\n2,b\n")).await;
    put(&bucket, "sales/2025/01.csv.zst", zstd("id,v\n3,c\n")).await;
    put(&bucket, "sales/readme.txt", b"not csv".to_vec()).await;
    put(&bucket, "other/01.csv", b"id,v\n9,z\n".to_vec()).await;

    let cfg = s3_config(format!("s3://{bucket}/sales/*/*.csv*"), json!({}));
    check_succeeds(&cfg);
    let run = read(&cfg);
    let mut ids: Vec<_> = rows(&run)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    let urls: Vec<_> = run
        .records_of("items")
        .iter()
        .map(|r| r["_ab_source_file_url"].clone())
        .collect();
    assert!(urls.contains(&json!("sales/2024/01.csv")), "{urls:?}");

    let by_bucket = s3_config("sales/2024/01.csv".into(), json!({"bucket": bucket}));
    assert_eq!(rows(&read(&by_bucket)), [json!({"id": 1, "v": "a"})]);
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_reads_skip_objects_already_read() {
    let bucket = TestS3::shared().fresh_bucket("csv-incr");
    put(&bucket, "in/a.csv", b"id\n1\n".to_vec()).await;
    let cfg = s3_config(format!("s3://{bucket}/in/*.csv"), json!({}));
    let cat = catalog(&cfg, SyncMode::Incremental);
    let first = Run::new(BIN).read(&cfg, &cat, None);
    first.assert_success().assert_protocol();
    assert_eq!(first.records_of("items").len(), 1);
    put(&bucket, "in/b.csv", b"id\n2\n".to_vec()).await;
    let second = Run::new(BIN).read(&cfg, &cat, Some(&first.final_state()));
    second.assert_success();
    assert_eq!(rows(&second), [json!({"id": 2})]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_objects_buckets_and_bad_keys_fail_check_clearly() {
    let bucket = TestS3::shared().fresh_bucket("csv-errors");
    put(&bucket, "a.csv", b"id\n1\n".to_vec()).await;

    let message = check_fails(&s3_config(format!("s3://{bucket}/missing.csv"), json!({})));
    assert!(
        message.contains(&format!("s3://{bucket}/missing.csv")) && message.contains("not found"),
        "{message}"
    );
    let message = check_fails(&s3_config(format!("s3://{bucket}/*.tsv"), json!({})));
    assert!(message.contains("no object matches"), "{message}");

    let message = check_fails(&s3_config(
        "s3://no-such-bucket-here/a.csv".into(),
        json!({}),
    ));
    assert!(
        message.contains("s3://no-such-bucket-here/a.csv"),
        "{message}"
    );
    let message = check_fails(&s3_config(
        "s3://no-such-bucket-here/*.csv".into(),
        json!({}),
    ));
    assert!(message.contains("no-such-bucket-here"), "{message}");

    let bad_secret = "definitely-not-the-secret-key";
    let cfg = s3_config(
        format!("s3://{bucket}/a.csv"),
        json!({"aws_secret_access_key": bad_secret}),
    );
    let run = Run::new(BIN).check(&cfg);
    run.assert_success().assert_protocol();
    let message = run.connection_status().message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("s3://{bucket}/a.csv")),
        "{message}"
    );
    assert!(!run.stdout.contains(bad_secret) && !run.stderr.contains(bad_secret));

    let message = check_fails(&s3_config("s3://only-a-bucket".into(), json!({})));
    assert!(message.contains("expected s3://bucket/key"), "{message}");
}
