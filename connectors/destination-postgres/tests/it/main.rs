//! Integration tests of destination-postgres: the real binary against a throwaway PostgreSQL.

mod acceptance;
mod check;
mod cli;
mod layout;
mod modes;
mod normalization;
mod tls;
mod tunnel;

use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_destination-postgres");

/// A fresh database and a config pointing at it.
pub async fn database(prefix: &str) -> (TestDatabase, Value) {
    let db = TestPostgres::shared().fresh_database(prefix).await;
    let mut config = db.connector_config();
    config["schema"] = json!("public");
    (db, config)
}

/// `SELECT to_jsonb(t)` of every row of `table` (`schema.name`, unquoted parts), ordered by
/// `order`; an empty list when the table does not exist.
pub async fn rows(db: &TestDatabase, schema: &str, name: &str, order: &str) -> Vec<Value> {
    let client = db.connect().await;
    let sql = format!(
        "SELECT to_jsonb(t)::text FROM \"{}\".\"{}\" t ORDER BY {order}",
        schema.replace('"', "\"\""),
        name.replace('"', "\"\"")
    );
    match client.query(&sql, &[]).await {
        Ok(rows) => rows
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
            .collect(),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Vec::new(),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// The rows with their `_airbyte_*` columns removed.
pub fn user_fields(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                o.retain(|k, _| !k.starts_with("_airbyte_"));
            }
            r
        })
        .collect()
}

/// A configured catalog of one stream.
pub fn catalog(name: &str, schema: Value, mode: &str, generation: i64, minimum: i64) -> Value {
    json!({"streams": [stream(name, None, schema, mode, generation, minimum)]})
}

pub fn stream(
    name: &str,
    namespace: Option<&str>,
    schema: Value,
    mode: &str,
    generation: i64,
    minimum: i64,
) -> Value {
    let mut stream = json!({
        "stream": {"name": name, "json_schema": schema,
                   "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": if mode == "overwrite" { "full_refresh" } else { "incremental" },
        "destination_sync_mode": mode,
        "primary_key": [["id"]],
        "cursor_field": ["seq"],
        "generation_id": generation,
        "minimum_generation_id": minimum,
        "sync_id": 1000 + generation,
    });
    if let Some(ns) = namespace {
        stream["stream"]["namespace"] = json!(ns);
    }
    stream
}

/// `{id: integer, name: string, seq: integer}`.
pub fn simple_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": ["null", "string"]}, "seq": {"type": "integer"}}})
}

pub fn record(stream: &str, data: Value) -> String {
    record_at(stream, data, 1_700_000_000_000)
}

pub fn record_at(stream: &str, data: Value, emitted_at: i64) -> String {
    json!({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": emitted_at}})
        .to_string()
}

pub fn state(stream: &str, n: i64) -> String {
    json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": stream}, "stream_state": {"n": n}}}})
    .to_string()
}
