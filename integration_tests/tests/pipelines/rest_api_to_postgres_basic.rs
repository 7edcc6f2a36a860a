//! The seed's main example end to end: customers with a `contact` object and an `addresses`
//! array, served by a wiremock API → source-rest-api's simple form (schema detected from the
//! first page, incremental on `updated_at`) → destination-postgres with basic normalization →
//! `customers` and `customers_addresses`; a second, incremental sync keeps one row per id and
//! rewrites the child rows of the customer that changed.

use std::sync::{Arc, Mutex};

use cdk::testing::http::matchers::{header, path};
use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate};
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

use crate::common::{Sync, bin, run_ok, write_json};

const TOKEN: &str = "seed-api-token";

/// The API's customers; the mock serves those updated at or after `updated_since`.
type Customers = Arc<Mutex<Vec<Value>>>;

async fn api(customers: Customers) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/v1/customers"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(move |r: &Request| {
            let since = r
                .url
                .query_pairs()
                .find(|(k, _)| k == "updated_since")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let data: Vec<Value> = customers
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c["updated_at"].as_str().unwrap_or_default() >= since.as_str())
                .cloned()
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
        })
        .mount(&server)
        .await;
    server
}

fn acme(updated_at: &str, addresses: Value) -> Value {
    json!({"id": 1, "name": "Acme Corp", "updated_at": updated_at,
           "contact": {"email": "info@acme.com", "phone": "+1234567890"},
           "addresses": addresses})
}

fn globex() -> Value {
    json!({"id": 2, "name": "Globex", "updated_at": "2025-10-16T11:00:00Z",
           "contact": {"email": "hello@globex.com", "phone": null},
           "addresses": [{"type": "billing", "city": "Springfield"}]})
}

/// The catalog discover offers, incremental on its cursor and deduplicated on its key.
async fn catalog(source_config: &std::path::Path) -> Value {
    let mut discover = tokio::process::Command::new(bin("source-rest-api"));
    discover.arg("discover").arg("--config").arg(source_config);
    let out = run_ok(discover).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let catalog: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["type"] == "CATALOG")
        .unwrap_or_else(|| panic!("discover gave no catalog:\n{stdout}"))["catalog"]
        .clone();
    let stream = catalog["streams"][0].clone();
    assert_eq!(stream["default_cursor_field"], json!(["updated_at"]));
    assert_eq!(
        stream["json_schema"]["properties"]["addresses"]["items"]["properties"]["city"],
        json!({"type": "string"})
    );
    json!({"streams": [{
        "stream": stream,
        "sync_mode": "incremental",
        "cursor_field": ["updated_at"],
        "destination_sync_mode": "append_dedup",
        "primary_key": [["id"]],
        "generation_id": 0, "minimum_generation_id": 0, "sync_id": 1
    }]})
}

async fn query(db: &TestDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    db.connect()
        .await
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
        .collect()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| (*v != "NULL").then(|| v.to_string()))
                .collect()
        })
        .collect()
}

/// `customers` as the seed shows it (plus `updated_at`), in id order.
async fn customers(db: &TestDatabase) -> Vec<Vec<Option<String>>> {
    query(
        db,
        "SELECT id::text, name, contact_email, contact_phone, updated_at,
                (_airbyte_normalized_at IS NOT NULL)::text
         FROM public.customers ORDER BY id",
    )
    .await
}

/// `customers_addresses` joined to its parent by `_airbyte_customers_hashid`.
async fn addresses(db: &TestDatabase) -> Vec<Vec<Option<String>>> {
    query(
        db,
        "SELECT c.id::text, a.type, a.city
         FROM public.customers_addresses a
         JOIN public.customers c USING (_airbyte_customers_hashid)
         ORDER BY c.id, a.city",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_customers_land_normalized_and_dedup_on_the_second_sync() {
    let data: Customers = Arc::new(Mutex::new(vec![
        acme(
            "2025-10-16T10:00:00Z",
            json!([{"type": "billing", "city": "New York"}, {"type": "shipping", "city": "Boston"}]),
        ),
        globex(),
    ]));
    let server = api(data.clone()).await;
    let destination = TestPostgres::shared().fresh_database("rest_basic").await;
    let work = tempfile::tempdir().unwrap();
    let source_config = json!({
        "url_base": format!("{}/v1", server.uri()),
        "authentication": {"type": "bearer", "token": TOKEN},
        "endpoints": [{
            "name": "customers", "path": "/customers", "http_method": "GET",
            "record_path": ["data"], "primary_key": ["id"],
            "incremental": {"cursor_field": "updated_at", "request_param": "updated_since"}
        }]
    });
    let source_config = write_json(work.path(), "source.json", &source_config);
    let mut destination_config = destination.connector_config();
    destination_config["schema"] = json!("public");
    destination_config["ssl"] = json!(false);
    destination_config["normalization"] = json!({"mode": "basic"});
    let catalog = catalog(&source_config).await;
    let sync = Sync {
        source: "source-rest-api",
        source_config,
        destination: "destination-postgres",
        destination_config: write_json(work.path(), "destination.json", &destination_config),
        catalog: Some(write_json(work.path(), "catalog.json", &catalog)),
        output: work.path().join("output"),
    };

    let first = sync.run().await;
    assert_eq!(first.records, 2, "{}", first.stderr);
    assert_eq!(
        customers(&destination).await,
        strings(&[
            &[
                "1",
                "Acme Corp",
                "info@acme.com",
                "+1234567890",
                "2025-10-16T10:00:00Z",
                "true"
            ],
            &[
                "2",
                "Globex",
                "hello@globex.com",
                "NULL",
                "2025-10-16T11:00:00Z",
                "true"
            ],
        ])
    );
    assert_eq!(
        addresses(&destination).await,
        strings(&[
            &["1", "shipping", "Boston"],
            &["1", "billing", "New York"],
            &["2", "billing", "Springfield"],
        ])
    );
    assert_eq!(
        sync.state()[0]["stream"]["stream_state"],
        json!({"updated_at": "2025-10-16T11:00:00Z"}),
        "the declarative engine's state shape"
    );

    // Acme moves: a newer version with one address. The second sync asks from the saved cursor,
    // so Globex (at the cursor) comes again and must stay one row with one address.
    data.lock().unwrap()[0] = acme(
        "2025-10-17T09:00:00Z",
        json!([{"type": "billing", "city": "Chicago"}]),
    );
    let second = sync.run().await;
    assert_eq!(second.records, 2, "{}", second.stderr);
    assert_eq!(
        customers(&destination).await,
        strings(&[
            &[
                "1",
                "Acme Corp",
                "info@acme.com",
                "+1234567890",
                "2025-10-17T09:00:00Z",
                "true"
            ],
            &[
                "2",
                "Globex",
                "hello@globex.com",
                "NULL",
                "2025-10-16T11:00:00Z",
                "true"
            ],
        ])
    );
    assert_eq!(
        addresses(&destination).await,
        strings(&[
            &["1", "billing", "Chicago"],
            &["2", "billing", "Springfield"]
        ])
    );
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "updated_since")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(
        asked.last().map(String::as_str),
        Some("2025-10-16T11:00:00Z"),
        "the second sync starts at the saved cursor: {asked:?}"
    );
}
