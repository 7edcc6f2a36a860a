//! `normalization: flattened` — the seed's basic-normalization example, and child rows that
//! follow their parent under dedup and overwrite.

use cdk::testing::Run;
use serde_json::{Value, json};

use super::*;

fn customers_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "seq": {"type": "integer"},
        "contact": {"type": "object", "properties": {
            "email": {"type": "string"}, "phone": {"type": "string"}}},
        "addresses": {"type": "array", "items": {"type": "object", "properties": {
            "type": {"type": "string"}, "city": {"type": "string"}}}},
    }})
}

fn acme(seq: i64, cities: &[&str]) -> Value {
    let kinds = ["billing", "shipping", "other"];
    json!({
        "id": 1, "name": "Acme Corp", "seq": seq,
        "contact": {"email": "info@acme.com", "phone": "+1234567890"},
        "addresses": cities.iter().zip(kinds).map(|(c, k)| json!({"type": k, "city": c})).collect::<Vec<_>>(),
    })
}

fn flattened(config: &Value) -> Value {
    let mut c = config.clone();
    c["normalization"] = json!({"mode": "flattened"});
    c
}

#[tokio::test]
async fn the_seed_example_becomes_customers_and_customers_addresses() {
    let (db, config) = database("seed_normalization").await;
    let cat = catalog("customers", customers_schema(), "append", 1, 0);
    let out = Run::new(BIN)
        .stdin_lines([
            record("customers", acme(1, &["New York", "Boston"])),
            state("customers", 1),
        ])
        .write(&flattened(&config), &cat);
    out.assert_success();

    let customers = rows(&db, "public", "customers", "id").await;
    assert_eq!(customers.len(), 1);
    let hashid = customers[0]["_airbyte_customers_hashid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hashid.len(), 32);
    assert_eq!(
        user_fields(&customers),
        [json!({"id": 1, "name": "Acme Corp", "seq": 1,
                "contact_email": "info@acme.com", "contact_phone": "+1234567890"})]
    );
    let addresses = rows(&db, "public", "customers_addresses", "city DESC").await;
    let got: Vec<Value> = addresses
        .iter()
        .map(|r| {
            json!({"hashid": r["_airbyte_customers_hashid"], "type": r["type"], "city": r["city"]})
        })
        .collect();
    assert_eq!(
        got,
        [
            json!({"hashid": hashid, "type": "billing", "city": "New York"}),
            json!({"hashid": hashid, "type": "shipping", "city": "Boston"}),
        ]
    );
    // The seed's dbt-style join works.
    let client = db.connect().await;
    let joined: i64 = client
        .query_one(
            "SELECT count(*) FROM customers c JOIN customers_addresses a \
             ON a._airbyte_customers_hashid = c._airbyte_customers_hashid",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(joined, 2);
}

#[tokio::test]
async fn child_rows_follow_their_parent_under_dedup_and_overwrite() {
    let (db, config) = database("flattened_modes").await;
    let config = flattened(&config);
    let dedup = catalog("customers", customers_schema(), "append_dedup", 1, 0);
    Run::new(BIN)
        .stdin_lines([record_at("customers", acme(1, &["A", "B"]), 1)])
        .write(&config, &dedup)
        .assert_success();
    // A newer version with other addresses, an older one that must lose, in one sync.
    Run::new(BIN)
        .stdin_lines([
            record_at("customers", acme(3, &["C"]), 3),
            record_at("customers", acme(2, &["D", "E", "F"]), 2),
        ])
        .write(&config, &dedup)
        .assert_success();
    let cities = address_cities(&db).await;
    assert_eq!(cities, [json!("C")]);
    let parents = rows(&db, "public", "customers", "id").await;
    assert_eq!(parents.len(), 1);
    assert_eq!(parents[0]["seq"], 3);

    let overwrite = catalog("customers", customers_schema(), "overwrite", 2, 2);
    Run::new(BIN)
        .stdin_lines([record("customers", acme(4, &["G", "H"]))])
        .write(&config, &overwrite)
        .assert_success();
    let cities = address_cities(&db).await;
    assert_eq!(cities, [json!("G"), json!("H")]);
}

/// The seed's `Normalization: Basic` with the API form's `ssl: false`: accepted by the spec,
/// the flattened tables, and `_airbyte_normalized_at` on each.
#[tokio::test]
async fn the_seed_basic_normalization() {
    let (db, mut config) = database("seed_basic").await;
    config["ssl"] = json!(false);
    config["normalization"] = json!({"mode": "basic"});
    let check = Run::new(BIN).check(&config);
    assert_eq!(
        check.connection_status().status,
        cdk::protocol::ConnectionStatus::Succeeded,
        "{}",
        check.describe()
    );
    let cat = catalog("customers", customers_schema(), "append", 1, 0);
    let before = chrono_now(&db).await;
    Run::new(BIN)
        .stdin_lines([record("customers", acme(1, &["New York", "Boston"]))])
        .write(&config, &cat)
        .assert_success();
    let customers = rows(&db, "public", "customers", "id").await;
    assert_eq!(
        user_fields(&customers),
        [json!({"id": 1, "name": "Acme Corp", "seq": 1,
                "contact_email": "info@acme.com", "contact_phone": "+1234567890"})]
    );
    let client = db.connect().await;
    for table in ["customers", "customers_addresses"] {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE _airbyte_normalized_at >= $1::text::timestamptz), count(*) FROM {table}"
        );
        let row = client.query_one(&sql, &[&before]).await.unwrap();
        let (recent, all): (i64, i64) = (row.get(0), row.get(1));
        assert!(all > 0 && recent == all, "{table}: {recent} of {all}");
    }
    let last: String = client
        .query_one(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns \
             WHERE table_name = 'customers_addresses'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        last.ends_with("_airbyte_customers_hashid,city,type,_airbyte_normalized_at"),
        "{last}"
    );

    let mut wrong = config.clone();
    wrong["normalization"] = json!({"mode": "advanced"});
    let check = Run::new(BIN).check(&wrong);
    let message = check
        .connection_status()
        .message
        .clone()
        .unwrap_or_default();
    insta::assert_snapshot!(
        message,
        @"config validation error: normalization.mode must be one of: none, flattened, basic; got 'advanced'"
    );
}

/// The database's clock, as text (rows written after this are newer).
async fn chrono_now(db: &cdk::testing::postgres::TestDatabase) -> String {
    db.connect()
        .await
        .query_one("SELECT now()::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// A fixture of `integration_tests/seed/` pointed at the test database (its own schema and
/// options kept).
fn seed_fixture(name: &str, db_config: &Value) -> Value {
    let path = format!(
        "{}/integration_tests/seed/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut config: Value = if name.ends_with(".yaml") {
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
    } else {
        serde_json::from_str(&text).unwrap()
    };
    for key in ["host", "port", "database", "username", "password"] {
        config[key] = db_config[key].clone();
    }
    config
}

/// The seed's PostgreSQL destination, YAML and API forms as written in
/// `integration_tests/seed/`: both pass check, and the YAML form's basic normalization writes
/// the seed's tables.
#[tokio::test]
async fn the_seed_examples_run_as_written() {
    let (db, db_config) = database("seed_examples").await;
    for name in ["config.yaml", "api_form.json"] {
        let config = seed_fixture(name, &db_config);
        let check = Run::new(BIN).check(&config);
        assert_eq!(
            check.connection_status().status,
            cdk::protocol::ConnectionStatus::Succeeded,
            "{name}: {}",
            check.describe()
        );
    }
    let yaml = seed_fixture("config.yaml", &db_config);
    let cat = catalog("customers", customers_schema(), "append", 1, 0);
    Run::new(BIN)
        .stdin_lines([record("customers", acme(1, &["New York", "Boston"]))])
        .write(&yaml, &cat)
        .assert_success();
    let cities = address_cities(&db).await;
    assert_eq!(cities, [json!("Boston"), json!("New York")]);
    let api = seed_fixture("api_form.json", &db_config);
    Run::new(BIN)
        .stdin_lines([record("customers", acme(1, &["New York"]))])
        .write(&api, &cat)
        .assert_success();
    let raw_schema = rows(&db, "raw", "customers", "id").await;
    assert_eq!(raw_schema.len(), 1, "the API form writes to schema 'raw'");
    assert!(
        raw_schema[0]["addresses"].is_array(),
        "no normalization: JSONB"
    );
}

/// `keep_raw_tables`: `_airbyte_raw_customers` beside the normalized tables holds every record's
/// JSON (appended under dedup too), readable as the seed's dbt model reads it.
#[tokio::test]
async fn basic_normalization_keeps_the_raw_table_on_request() {
    let (db, mut config) = database("seed_keep_raw").await;
    config["normalization"] = json!({"mode": "basic", "keep_raw_tables": true});
    let dedup = catalog("customers", customers_schema(), "append_dedup", 1, 0);
    for seq in [1, 2] {
        Run::new(BIN)
            .stdin_lines([record_at(
                "customers",
                acme(seq, &["New York", "Boston"]),
                seq,
            )])
            .write(&config, &dedup)
            .assert_success();
    }
    let client = db.connect().await;
    let raw = client
        .query(
            "SELECT _airbyte_data->>'id', _airbyte_data->'contact'->>'email', (_airbyte_data->>'seq')::int \
             FROM _airbyte_raw_customers ORDER BY 3",
            &[],
        )
        .await
        .unwrap();
    let raw: Vec<(String, String, i32)> =
        raw.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        raw,
        [
            ("1".to_string(), "info@acme.com".to_string(), 1),
            ("1".to_string(), "info@acme.com".to_string(), 2)
        ]
    );
    let customers = rows(&db, "public", "customers", "id").await;
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["seq"], 2);
    assert_eq!(address_cities(&db).await.len(), 2);
    // The raw row and the normalized row share the record's raw id.
    let linked: i64 = client
        .query_one(
            "SELECT count(*) FROM customers c JOIN _airbyte_raw_customers r USING (_airbyte_raw_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(linked, 1);
}

/// The `city` of every row of `customers_addresses`, in order.
async fn address_cities(db: &TestDatabase) -> Vec<Value> {
    rows(db, "public", "customers_addresses", "city")
        .await
        .iter()
        .map(|r| r["city"].clone())
        .collect()
}
