//! The seed's connection example run through `cdk sync CONNECTION`: PostgreSQL → S3 (Parquet)
//! with the namespace format `production_${SOURCE_NAMESPACE}`, customers full refresh +
//! overwrite, orders incremental + append, products full refresh + overwrite; from its JSON
//! form (Airbyte's API shape, with only source and destination added) and a YAML form. The job
//! records must carry the seed's fields with exact counts.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use cdk::testing::s3::TestS3;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::common::{bin, cdk_sync, jobs, last_job};

const TABLES: &str = "
    CREATE TABLE customers (customer_id int PRIMARY KEY, name text, updated_at timestamptz);
    CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int, amount numeric(10, 2),
                         created_at timestamptz);
    CREATE TABLE products (product_id int PRIMARY KEY, name text, price numeric(10, 2));
    INSERT INTO customers VALUES (1, 'Acme Corp', '2025-10-16 10:00:00+00'),
        (2, 'Globex', '2025-10-16 11:00:00+00'), (3, 'Initech', '2025-10-16 12:00:00+00');
    INSERT INTO orders SELECT i, 1 + i % 3, i * 1.5, '2025-10-01'::timestamptz + i * interval '1 hour'
        FROM generate_series(1, 5) i;
    INSERT INTO products VALUES (1, 'Widget', 9.99), (2, 'Gadget', 19.99);
";

/// Source and destination as the connection file gives them (the password from the
/// environment).
fn endpoints(db: &TestDatabase, bucket: &str) -> (Value, Value) {
    let s3 = TestS3::shared();
    let mut source = db.connector_config();
    source["password"] = json!("${SEED_PG_PASSWORD}");
    source["sync_checkpoint_records"] = json!(2);
    let destination = json!({
        "s3_bucket_name": bucket, "s3_bucket_path": "bronze/",
        "s3_bucket_region": s3.region, "s3_endpoint": s3.endpoint,
        "access_key_id": s3.access_key, "secret_access_key": s3.secret_key,
        "format": {"format_type": "Parquet", "compression_codec": "snappy"}
    });
    (
        json!({"connector": bin("source-postgres"), "config": source}),
        json!({"connector": bin("destination-s3"), "config": destination}),
    )
}

/// The seed's JSON example, extended to its three streams, plus source and destination.
fn seed_json(source: Value, destination: Value) -> Value {
    let stream = |name: &str, config: Value| json!({"stream": {"name": name, "namespace": "public"}, "config": config});
    json!({
        "name": "PostgreSQL → MinIO",
        "source": source,
        "destination": destination,
        "syncCatalog": {"streams": [
            stream("customers", json!({"syncMode": "full_refresh", "cursorField": ["updated_at"],
                "destinationSyncMode": "overwrite", "primaryKey": [["customer_id"]], "selected": true})),
            stream("orders", json!({"syncMode": "incremental", "cursorField": ["created_at"],
                "destinationSyncMode": "append", "primaryKey": [["order_id"]], "selected": true})),
            stream("products", json!({"syncMode": "full_refresh",
                "destinationSyncMode": "overwrite", "primaryKey": [["product_id"]], "selected": true})),
        ]},
        "schedule": {"units": 24, "timeUnit": "hours"},
        "namespaceDefinition": "customformat",
        "namespaceFormat": "production_${SOURCE_NAMESPACE}",
        "status": "active"
    })
}

/// The same connection in the YAML form.
fn seed_yaml(source: &Value, destination: &Value) -> String {
    let inline = |v: &Value| serde_json::to_string(v).unwrap();
    format!(
        "name: PostgreSQL → MinIO
source: {}
destination: {}
namespaceDefinition: customformat
namespaceFormat: production_${{SOURCE_NAMESPACE}}
schedule: {{units: 24, timeUnit: hours}}
streams:
  - {{name: customers, namespace: public, syncMode: full_refresh, destinationSyncMode: overwrite,
     cursorField: [updated_at], primaryKey: [[customer_id]]}}
  - {{name: orders, namespace: public, syncMode: incremental, destinationSyncMode: append,
     cursorField: [created_at], primaryKey: [[order_id]]}}
  - {{name: products, namespace: public, syncMode: full_refresh, destinationSyncMode: overwrite,
     primaryKey: [[product_id]]}}
",
        inline(source),
        inline(destination)
    )
}

/// Rows of every Parquet object under `prefix`, by the id column.
pub async fn parquet_ids(store: &impl ObjectStore, prefix: &str, id: &str) -> Vec<i64> {
    let keys: Vec<String> = store
        .list(Some(&ObjectPath::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for key in keys.iter().filter(|k| k.ends_with(".parquet")) {
        let bytes = store.get(&ObjectPath::from(key.as_str())).await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.bytes().await.unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch
                .column_by_name(id)
                .unwrap_or_else(|| panic!("no {id} in {key}"));
            ids.extend(column.as_primitive::<Int64Type>().values().iter().copied());
        }
    }
    ids.sort();
    ids
}

fn stream<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stream {name} in {job}"))
}

async fn run_seed(file: &Path, state_dir: &Path, db: &TestDatabase, bucket: &str) {
    let password = db.connector_config()["password"]
        .as_str()
        .unwrap()
        .to_string();
    let env = [("SEED_PG_PASSWORD", password.as_str())];
    let args = [
        file.as_os_str(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
    ];
    let out = cdk_sync(&args, &env).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let dir = state_dir.join(file.file_stem().unwrap());
    let job = last_job(&dir);
    // The job printed on stdout is the one recorded.
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, job);
    for field in [
        "id",
        "status",
        "startedAt",
        "endedAt",
        "duration",
        "recordsSynced",
        "bytesSynced",
    ] {
        assert!(!job[field].is_null(), "no {field} in {job}");
    }
    assert_eq!(job["status"], "succeeded", "{stderr}");
    assert_eq!(job["recordsSynced"], 10, "{job}\n{stderr}");
    assert_eq!(job["recordsEmitted"], 10, "{job}");
    assert!(job["bytesSynced"].as_u64().unwrap() > 100, "{job}");
    for (name, count) in [("customers", 3), ("orders", 5), ("products", 2)] {
        assert_eq!(stream(&job, name)["recordsSynced"], count, "{job}");
        assert_eq!(stream(&job, name)["status"], "complete", "{job}");
    }
    let store = TestS3::shared().store(bucket);
    for (name, id, count) in [("customers", "customer_id", 3), ("orders", "order_id", 5)] {
        let ids = parquet_ids(&store, &format!("bronze/production_public/{name}"), id).await;
        assert_eq!(ids.len(), count, "{name}: {ids:?}");
    }

    // Second job: orders only reads the new rows; the full refreshes read everything again.
    db.execute("INSERT INTO orders VALUES (6, 1, 3.0, '2025-11-01 00:00:00+00');")
        .await;
    let out = cdk_sync(&args, &env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = jobs(&dir);
    let second = all.last().unwrap();
    assert_eq!(second["id"], 2);
    assert_eq!(stream(second, "orders")["recordsSynced"], 1, "{second}");
    assert_eq!(stream(second, "customers")["recordsSynced"], 3, "{second}");
    assert_eq!(second["recordsSynced"], 6, "{second}");
    let orders = parquet_ids(&store, "bronze/production_public/orders", "order_id").await;
    assert_eq!(orders, [1, 2, 3, 4, 5, 6]);
    let customers = parquet_ids(&store, "bronze/production_public/customers", "customer_id").await;
    assert_eq!(customers, [1, 2, 3], "overwrite keeps one copy");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_connection_from_its_json_form() {
    let db = TestPostgres::shared().fresh_database("seed_json").await;
    db.execute(TABLES).await;
    let bucket = TestS3::shared().fresh_bucket("seed-json");
    let work = tempfile::tempdir().unwrap();
    let (source, destination) = endpoints(&db, &bucket);
    let file = work.path().join("postgres-to-minio.json");
    std::fs::write(&file, seed_json(source, destination).to_string()).unwrap();
    run_seed(&file, &work.path().join("state"), &db, &bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_connection_from_its_yaml_form() {
    let db = TestPostgres::shared().fresh_database("seed_yaml").await;
    db.execute(TABLES).await;
    let bucket = TestS3::shared().fresh_bucket("seed-yaml");
    let work = tempfile::tempdir().unwrap();
    let (source, destination) = endpoints(&db, &bucket);
    let file = work.path().join("postgres-to-minio.yaml");
    std::fs::write(&file, seed_yaml(&source, &destination)).unwrap();
    run_seed(&file, &work.path().join("state"), &db, &bucket).await;
}

/// A bad config fails the job at `check`, with the connector's message, before any read.
#[tokio::test(flavor = "multi_thread")]
async fn bad_connector_config_fails_before_any_read() {
    let db = TestPostgres::shared().fresh_database("seed_bad").await;
    db.execute(TABLES).await;
    let bucket = TestS3::shared().fresh_bucket("seed-bad");
    let work = tempfile::tempdir().unwrap();
    let (source, mut destination) = endpoints(&db, &bucket);
    destination["config"]["secret_access_key"] = json!("wrong-secret");
    let file = work.path().join("bad.json");
    std::fs::write(&file, seed_json(source, destination).to_string()).unwrap();
    let password = db.connector_config()["password"]
        .as_str()
        .unwrap()
        .to_string();
    let state = work.path().join("state");
    let args = [file.as_os_str(), "--state-dir".as_ref(), state.as_os_str()];
    let out = cdk_sync(&args, &[("SEED_PG_PASSWORD", &password)]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let job = last_job(&state.join("bad"));
    assert_eq!(job["status"], "failed");
    assert_eq!(job["failure"]["origin"], "destination", "{job}");
    assert_eq!(job["failure"]["failureType"], "config_error", "{job}");
    let message = job["failure"]["message"].as_str().unwrap();
    assert!(message.contains("check failed"), "{message}");
    assert!(
        !message.contains("\"type\""),
        "a raw protocol line: {message}"
    );
    assert_eq!(job["recordsEmitted"], 0);
    assert_eq!(job["streams"], json!([]), "nothing was read: {job}");
    assert!(!state.join("bad/state.json").exists());
    let keys: Vec<_> = TestS3::shared()
        .store(&bucket)
        .list(None)
        .try_collect()
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");

    // An unset variable is named.
    let out = cdk_sync(&args, &[]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'SEED_PG_PASSWORD' is not set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
