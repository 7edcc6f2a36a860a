//! Components of the manifest language beyond the basics: schema normalization, decoders of
//! CSV, XML, gzip and zip responses, JWT and selective authentication.

use serde_json::json;

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
