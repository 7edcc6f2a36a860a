//! Components of the manifest language beyond the basics: schema normalization, decoders of
//! CSV, XML, gzip and zip responses, JWT and selective authentication.

use std::sync::Arc;

use cdk::testing::http::{MockServer, Request};
use serde_json::{Value, json};

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn schema_normalization_default_casts_to_the_schema() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        json_response(json!({"data": [
            {"id": "1", "price": "9.50", "count": 3.9, "flag": "yes", "tags": "solo", "note": 42, "keep": "x"},
            {"id": 2, "price": 7, "count": "many", "flag": "maybe", "tags": ["a"], "note": null, "keep": 1}
        ]})),
    )
    .await;
    let schema = r#"schema_loader:
  type: InlineSchemaLoader
  schema:
    type: object
    properties:
      id: {type: integer}
      price: {type: [number, "null"]}
      count: {type: integer}
      flag: {type: boolean}
      tags: {type: array, items: {type: [string, "null"]}}
      note: {type: [string, "null"]}"#;
    let yaml = one_stream("/items", "", "", schema).replace(
        "field_path: [data]",
        "field_path: [data]\n        schema_normalization: Default",
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"id": 1, "price": 9.5, "count": 3, "flag": true, "tags": ["solo"], "note": "42", "keep": "x"}),
            &json!({"id": 2, "price": 7.0, "count": "many", "flag": "maybe", "tags": ["a"], "note": null, "keep": 1}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grouping_partition_router_batches_partitions() {
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        let ids = query(r, "ids").unwrap_or_default();
        s.lock().unwrap().push(ids.clone());
        let data: Vec<Value> = ids
            .split(',')
            .map(|i| json!({"id": i.trim_start_matches('k').parse::<i64>().unwrap()}))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let router = r#"partition_router:
  type: GroupingPartitionRouter
  group_size: 2
  underlying_partition_router:
    type: ListPartitionRouter
    cursor_field: key
    values: [k1, k2, k3, k1, k4]"#;
    let yaml = one_stream(
        "/items",
        "request_parameters:\n  ids: \"{{ stream_partition['key'] | join(',') }}\"",
        router,
        "",
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    let mut got = ids(&out, "items");
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4]);
    let mut requests = seen.lock().unwrap().clone();
    requests.sort();
    assert_eq!(requests, vec!["k1,k2", "k3,k4"]);

    let with_option = yaml.replace(
        "    values: [k1, k2, k3, k1, k4]",
        "    values: [k1]\n          request_option: {type: RequestOption, inject_into: request_parameter, field_name: key}",
    );
    let out = manifest(&with_option).read(&config_for(&server), &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains(
            "GroupingPartitionRouter at /streams/0/retriever/partition_router: request options"
        ),
        "{message}"
    );
}
