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
    let cities: Vec<Value> = rows(&db, "public", "customers_addresses", "city")
        .await
        .iter()
        .map(|r| r["city"].clone())
        .collect();
    assert_eq!(cities, [json!("C")]);
    let parents = rows(&db, "public", "customers", "id").await;
    assert_eq!(parents.len(), 1);
    assert_eq!(parents[0]["seq"], 3);

    let overwrite = catalog("customers", customers_schema(), "overwrite", 2, 2);
    Run::new(BIN)
        .stdin_lines([record("customers", acme(4, &["G", "H"]))])
        .write(&config, &overwrite)
        .assert_success();
    let cities: Vec<Value> = rows(&db, "public", "customers_addresses", "city")
        .await
        .iter()
        .map(|r| r["city"].clone())
        .collect();
    assert_eq!(cities, [json!("G"), json!("H")]);
}
