//! The kit's acceptance suite against a fixture database: spec, check, discover, basic read,
//! full refresh twice, incremental (second read, resume from the middle, future state) and
//! bad catalogs.

use cdk::protocol::SyncMode;
use cdk::testing::acceptance::SourceSuite;
use serde_json::json;

use crate::{BIN, config, configure, database, discover};

#[tokio::test]
async fn acceptance_suite_passes() {
    let db = database("acceptance").await;
    db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
         INSERT INTO users SELECT i, 'user ' || i, '2024-01-01'::timestamptz + i * interval '1 minute'
           FROM generate_series(1, 120) i;
         CREATE TABLE orders (id int PRIMARY KEY, user_id int, amount numeric(10, 2), created_at date);
         INSERT INTO orders SELECT i, i % 7, i * 1.25, '2024-01-01'::date + i FROM generate_series(1, 40) i;",
    )
    .await;
    let cfg = config(&db, json!({"sync_checkpoint_records": 25}));
    let catalog = configure(
        &discover(&cfg),
        &[
            ("users", SyncMode::Incremental, Some("updated_at")),
            ("orders", SyncMode::FullRefresh, None),
        ],
    );
    let future = json!([{"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "users", "namespace": "public"},
        "stream_state": {"state_type": "cursor_based", "version": 2, "stream_name": "users",
            "stream_namespace": "public", "cursor_field": ["updated_at"],
            "cursor": "2999-01-01T00:00:00.000000Z", "cursor_record_count": 1}}}]);
    let report = SourceSuite {
        bin: BIN.into(),
        config: cfg.clone(),
        invalid_config: config(&db, json!({"password": "not-the-password"})),
        catalog,
        future_state: Some(future),
        ..SourceSuite::default()
    }
    .run();
    println!("{}", report.table());
    report.assert_all_passed();
}

#[tokio::test]
async fn acceptance_suite_passes_in_cdc_mode() {
    let (db, cfg, slot) = crate::cdc::cdc_database(
        "acceptance_cdc",
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
         INSERT INTO users SELECT i, 'user ' || i, '2024-01-01'::timestamptz + i * interval '1 minute'
           FROM generate_series(1, 120) i;
         CREATE TABLE orders (id int PRIMARY KEY, user_id int, amount numeric(10, 2), created_at date);
         INSERT INTO orders SELECT i, i % 7, i * 1.25, '2024-01-01'::date + i FROM generate_series(1, 40) i;",
        "users, orders",
    )
    .await;
    let mut cfg = cfg;
    cfg["sync_checkpoint_records"] = json!(25);
    let catalog = configure(
        &discover(&cfg),
        &[
            ("users", SyncMode::Incremental, None),
            ("orders", SyncMode::FullRefresh, None),
        ],
    );
    let future = json!([{"type": "GLOBAL", "global": {
        "shared_state": {"state_type": "cdc", "version": 1, "lsn": 1u64 << 62},
        "stream_states": [{"stream_descriptor": {"name": "users", "namespace": "public"},
            "stream_state": {"state_type": "cdc", "version": 1}}]}}]);
    let mut invalid = cfg.clone();
    invalid["password"] = json!("not-the-password");
    let report = SourceSuite {
        bin: BIN.into(),
        config: cfg.clone(),
        invalid_config: invalid,
        catalog,
        future_state: Some(future),
        ..SourceSuite::default()
    }
    .run();
    println!("{}", report.table());
    report.assert_all_passed();
    crate::cdc::drop_slot(&db, &slot).await;
}
