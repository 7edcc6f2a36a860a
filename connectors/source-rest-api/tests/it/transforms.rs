//! A record filter with AddFields and RemoveFields (the bench's general path): simple
//! templates evaluated without the template engine give the records the engine gives.

use cdk::testing::http::MockServer;
use serde_json::{Value, json};

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn filter_add_and_remove_give_the_expected_records() {
    let server = MockServer::start().await;
    let data = json!([
        {"id": 1, "age": 10, "name": "a", "score": 1.5, "o": {"k": "v1"}, "tags": ["x"]},
        {"id": 2, "age": 30, "name": "True", "score": 2.0, "o": {"k": "12"}, "tags": []},
        {"id": 3, "age": 45.5, "name": "ü", "score": 1e20, "o": {}, "tags": ["y"], "keep": null},
        {"id": 4, "age": 29, "name": "", "score": -0.25, "o": {"k": null}},
        {"id": 5, "age": 31, "name": "[1, 2]", "score": 0, "o": {"k": "None"}, "tags": null}
    ]);
    serve(&server, "/items", move |_: &_| {
        json_response(json!({ "data": data.clone() }))
    })
    .await;
    let yaml = one_stream("/items", "", "", r#"transformations:
  - type: AddFields
    fields:
      - {type: AddedFieldDefinition, path: [id_text], value: "{{ record['id'] }}", value_type: string}
      - {type: AddedFieldDefinition, path: [name_value], value: "{{ record.name }}"}
      - {type: AddedFieldDefinition, path: [score_text], value: "{{ record['score'] }}"}
      - {type: AddedFieldDefinition, path: [deep, k], value: "{{ record['o']['k'] }}"}
      - {type: AddedFieldDefinition, path: [piped], value: "{{ record['id'] | string }}"}
      - {type: AddedFieldDefinition, path: [adult], value: "{{ record['age'] >= 30 and record['name'] != '' }}"}
  - type: RemoveFields
    field_pointers: [[tags], [o]]"#)
    .replace(
        "          field_path: [data]\n",
        "          field_path: [data]\n        record_filter:\n          type: RecordFilter\n          condition: \"{{ record['age'] >= 30 }}\"\n",
    );
    assert!(yaml.contains("RecordFilter"));
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    let records: Vec<Value> = out.records_of("items").into_iter().cloned().collect();
    assert_eq!(
        records,
        vec![
            json!({"id": 2, "age": 30, "name": "True", "score": 2.0, "id_text": "2",
                "name_value": true, "score_text": 2.0, "deep": {"k": 12}, "piped": "2", "adult": true}),
            json!({"id": 3, "age": 45.5, "name": "ü", "score": 1e20, "keep": null, "id_text": "3",
                "name_value": "ü", "score_text": 1e20, "deep": {"k": null}, "piped": "3", "adult": true}),
            json!({"id": 5, "age": 31, "name": "[1, 2]", "score": 0, "id_text": "5",
                "name_value": [1, 2], "score_text": 0, "deep": {"k": null}, "piped": "5", "adult": true}),
        ]
    );
}
