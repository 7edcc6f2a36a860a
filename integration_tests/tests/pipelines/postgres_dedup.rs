//! source-postgres → destination-postgres, incremental on a cursor column with append_dedup on
//! the primary key: after source rows change, the destination holds one row per key with the
//! latest values, and later syncs read only the changed rows.

use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

use crate::common::{Sync, bin, run_ok, write_json};

const TABLE: &str = "
    CREATE TABLE customers (
        id integer PRIMARY KEY,
        name text NOT NULL,
        tier text,
        balance numeric(12, 2),
        updated_at timestamptz NOT NULL
    );
    INSERT INTO customers VALUES
        (1, 'Ada', 'free', 0, '2024-01-01 00:00:00+00'),
        (2, 'Brendan', 'free', 10.5, '2024-01-02 00:00:00+00'),
        (3, 'Chloé', NULL, NULL, '2024-01-03 00:00:00+00'),
        (4, 'Dmitri', 'pro', 99.99, '2024-01-04 00:00:00+00'),
        (5, 'Eun-ji', 'pro', 1234.56, '2024-01-05 00:00:00+00');
";

/// The table's rows as text, in id order, so both sides compare exactly.
async fn rows(db: &TestDatabase, table: &str) -> Vec<Vec<Option<String>>> {
    db.connect()
        .await
        .query(
            &format!(
                "SELECT id::text, name, tier, balance::text,
                        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
                 FROM {table} ORDER BY id"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (0..5).map(|i| r.get(i)).collect())
        .collect()
}

/// The configured catalog: `customers` as discovered by source-postgres, incremental on
/// `updated_at`, deduplicated on `id`.
async fn catalog(source_config: &std::path::Path) -> Value {
    let mut discover = tokio::process::Command::new(bin("source-postgres"));
    discover.arg("discover").arg("--config").arg(source_config);
    let out = run_ok(discover).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let catalog: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["type"] == "CATALOG")
        .unwrap_or_else(|| panic!("discover gave no catalog:\n{stdout}"))["catalog"]
        .clone();
    let stream = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "customers")
        .unwrap_or_else(|| panic!("no customers stream in {catalog}"))
        .clone();
    assert_eq!(stream["source_defined_primary_key"], json!([["id"]]));
    json!({"streams": [{
        "stream": stream,
        "sync_mode": "incremental",
        "cursor_field": ["updated_at"],
        "destination_sync_mode": "append_dedup",
        "primary_key": [["id"]],
        "generation_id": 0, "minimum_generation_id": 0, "sync_id": 1
    }]})
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_dedup_keeps_the_latest_row_per_key() {
    let pg = TestPostgres::shared();
    let source = pg.fresh_database("dedup_src").await;
    let destination = pg.fresh_database("dedup_dst").await;
    source.execute(TABLE).await;
    let work = tempfile::tempdir().unwrap();
    let source_config = write_json(work.path(), "source.json", &source.connector_config());
    let catalog = catalog(&source_config).await;
    let sync = Sync {
        source: "source-postgres",
        source_config,
        destination: "destination-postgres",
        destination_config: write_json(
            work.path(),
            "destination.json",
            &destination.connector_config(),
        ),
        catalog: Some(write_json(work.path(), "catalog.json", &catalog)),
        output: work.path().join("output"),
    };

    let first = sync.run().await;
    assert_eq!(first.records, 5, "{}", first.stderr);
    assert_eq!(
        rows(&destination, "public.customers").await,
        rows(&source, "customers").await
    );

    // Two updates, one rename, one new row: four rows past the saved cursor.
    source
        .execute(
            "UPDATE customers SET tier = 'pro', balance = 20, updated_at = '2024-03-01 00:00:00+00'
                 WHERE id IN (2, 3);
             UPDATE customers SET name = 'Eun-ji Park', updated_at = '2024-03-02 12:00:00+00'
                 WHERE id = 5;
             INSERT INTO customers VALUES (6, 'Farid', 'free', 0.01, '2024-03-03 00:00:00+00');",
        )
        .await;
    let second = sync.run().await;
    assert_eq!(
        second.records, 4,
        "only the changed rows should be read: {}",
        second.stderr
    );
    let expected = rows(&source, "customers").await;
    assert_eq!(expected.len(), 6);
    assert_eq!(expected[4][1].as_deref(), Some("Eun-ji Park"));
    assert_eq!(rows(&destination, "public.customers").await, expected);

    // A new row at exactly the saved cursor value: the state's `cursor_record_count` makes the
    // source read that value again (`>=`), so the row is not lost and key 6, read twice, is
    // still one row.
    source
        .execute("INSERT INTO customers VALUES (7, 'Gus', NULL, 1, '2024-03-03 00:00:00+00');")
        .await;
    let third = sync.run().await;
    assert_eq!(third.records, 2, "{}", third.stderr);
    let expected = rows(&source, "customers").await;
    assert_eq!(expected.len(), 7);
    assert_eq!(rows(&destination, "public.customers").await, expected);
}
