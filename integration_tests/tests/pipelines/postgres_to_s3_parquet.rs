//! source-postgres (a typed table) → destination-s3 writing SNAPPY Parquet into a bucket of the
//! in-process S3 server; the objects are read back with the `parquet` crate and compared with
//! the table's rows.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use cdk::testing::s3::TestS3;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use crate::common::{Sync, write_json};

#[derive(Debug, PartialEq)]
struct Product {
    id: i64,
    name: Option<String>,
    price: Option<f64>,
    in_stock: Option<bool>,
    qty: Option<i64>,
    added_on: Option<NaiveDate>,
    updated_at: Option<DateTime<Utc>>,
}

const TABLE: &str = "
    CREATE TABLE products (
        id bigint PRIMARY KEY,
        name text,
        price numeric(10, 2),
        in_stock boolean,
        qty integer,
        added_on date,
        updated_at timestamptz
    );
    INSERT INTO products VALUES
        (1, 'Espresso machine', 499.99, true, 3, '2024-01-15', '2024-02-01 10:00:00+00'),
        (2, 'Grinder, \"burr\"', 129.50, false, 0, '2023-12-31', '2024-02-02 23:30:00.123456+02'),
        (3, 'Crème brûlée torch ☕', 19.00, true, -7, '2000-02-29', '1999-12-31 23:59:59+00'),
        (4, NULL, NULL, NULL, NULL, NULL, NULL);
";

/// Every Parquet object under `prefix`, decoded into Products (sorted by id).
async fn products_in(store: &impl ObjectStore, prefix: &str) -> (Vec<String>, Vec<Product>) {
    let keys: Vec<String> = store
        .list(Some(&ObjectPath::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    let mut products = Vec::new();
    for key in &keys {
        let bytes = store
            .get(&ObjectPath::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap_or_else(|e| panic!("{key} is not a Parquet file: {e}"))
            .build()
            .unwrap();
        for batch in reader {
            products.extend(decode(&batch.unwrap()));
        }
    }
    products.sort_by_key(|p| p.id);
    (keys, products)
}

fn decode(batch: &RecordBatch) -> Vec<Product> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", batch.schema()))
    };
    // Columns are typed from the source's JSON schema, not left as JSON text.
    let types = [
        ("id", DataType::Int64),
        ("qty", DataType::Int64),
        ("price", DataType::Float64),
        ("in_stock", DataType::Boolean),
        ("name", DataType::Utf8),
        ("added_on", DataType::Date32),
        (
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
    ];
    for (name, ty) in types {
        assert_eq!(column(name).data_type(), &ty, "type of column {name}");
    }
    let id = column("id").as_primitive::<Int64Type>();
    let name = column("name").as_string::<i32>();
    let price = column("price").as_primitive::<Float64Type>();
    let in_stock = column("in_stock").as_boolean();
    let qty = column("qty").as_primitive::<Int64Type>();
    let added_on = column("added_on").as_primitive::<Date32Type>();
    let updated_at = column("updated_at").as_primitive::<TimestampMicrosecondType>();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (0..batch.num_rows())
        .map(|i| Product {
            id: id.value(i),
            name: name.is_valid(i).then(|| name.value(i).to_string()),
            price: price.is_valid(i).then(|| price.value(i)),
            in_stock: in_stock.is_valid(i).then(|| in_stock.value(i)),
            qty: qty.is_valid(i).then(|| qty.value(i)),
            added_on: added_on
                .is_valid(i)
                .then(|| epoch + chrono::TimeDelta::days(added_on.value(i).into())),
            updated_at: updated_at
                .is_valid(i)
                .then(|| DateTime::from_timestamp_micros(updated_at.value(i)).unwrap()),
        })
        .collect()
}

async fn source_rows(client: &tokio_postgres::Client) -> Vec<Product> {
    client
        .query(
            "SELECT id, name, price::float8, in_stock, qty::int8, added_on, updated_at
             FROM products ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Product {
            id: r.get(0),
            name: r.get(1),
            price: r.get(2),
            in_stock: r.get(3),
            qty: r.get(4),
            added_on: r.get(5),
            updated_at: r.get(6),
        })
        .collect()
}

/// A fresh table and bucket, and a sync between them (its temp dir lives as long as it).
async fn setup(name: &str) -> (TestDatabase, String, tempfile::TempDir, Sync) {
    let db = TestPostgres::shared().fresh_database(name).await;
    db.execute(TABLE).await;
    let s3 = TestS3::shared();
    let bucket = s3.fresh_bucket(name);
    let work = tempfile::tempdir().unwrap();
    let mut source = db.connector_config();
    // A state every 2 rows: the counts the destination acknowledges must still add up.
    source["sync_checkpoint_records"] = json!(2);
    let sync = Sync {
        source: "source-postgres",
        source_config: write_json(work.path(), "source.json", &source),
        destination: "destination-s3",
        destination_config: write_json(
            work.path(),
            "destination.json",
            &json!({
                "s3_bucket_name": bucket, "s3_bucket_path": "lake",
                "s3_bucket_region": s3.region, "s3_endpoint": s3.endpoint,
                "access_key_id": s3.access_key, "secret_access_key": s3.secret_key,
                "format": {"format_type": "Parquet", "compression_codec": "SNAPPY"}
            }),
        ),
        // No catalog: discovered, full refresh + overwrite (no default cursor).
        catalog: None,
        output: work.path().join("output"),
    };
    (db, bucket, work, sync)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_table_lands_in_s3_as_typed_parquet() {
    let (db, bucket, _work, sync) = setup("pg-parquet").await;
    let synced = sync.run().await;
    assert_eq!(synced.records, 4, "{}", synced.stderr);
    assert_eq!(synced.acknowledged, 4.0, "{}", synced.stderr);

    let expected = source_rows(&db.connect().await).await;
    assert_eq!(expected.len(), 4);
    // A spot check that the source side reads what was inserted (offset folded into UTC).
    assert_eq!(
        expected[1].updated_at.unwrap().to_rfc3339(),
        "2024-02-02T21:30:00.123456+00:00"
    );
    let (keys, products) = products_in(&TestS3::shared().store(&bucket), "lake").await;
    assert!(!keys.is_empty(), "no Parquet object in bucket {bucket}");
    for key in &keys {
        assert!(
            key.starts_with("lake/public/products/"),
            "{key} is not in <bucket path>/<namespace>/<stream>/"
        );
    }
    assert_eq!(products, expected);
}

/// A second sync of a full-refresh + overwrite stream leaves the whole table in the bucket:
/// `cdk sync` forgets a completed full refresh's state (as the platform does), so the source
/// reads from the start rather than resuming after the last row.
#[tokio::test(flavor = "multi_thread")]
async fn second_full_refresh_sync_keeps_every_row() {
    let (db, bucket, _work, sync) = setup("pg-parquet-resync").await;
    sync.run().await;
    db.execute(
        "INSERT INTO products VALUES (5, 'Tamper', 25, true, 9, '2024-03-01', '2024-03-01 09:00:00+00');",
    )
    .await;
    let second = sync.run().await;
    let (_, products) = products_in(&TestS3::shared().store(&bucket), "lake").await;
    let expected = source_rows(&db.connect().await).await;
    assert_eq!(
        products.iter().map(|p| p.id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5],
        "{}",
        second.stderr
    );
    assert_eq!(products, expected);
}
