//! `QueryProperties`, one of the last components of the manifest language once refused: given
//! or fetched property lists, chunking, merging by key, selection from the catalog (the others
//! have their own files: `token_quota.rs`, `file_uploader.rs`).

use super::*;

/// The `(path, properties, after)` of each request the server received, in order.
async fn requests_of(server: &MockServer) -> Vec<(String, Option<String>, Option<String>)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r.url.path().to_string(),
                query(r, "properties"),
                query(r, "after"),
            )
        })
        .collect()
}

/// Answers with the records of a page, each with only the asked properties (and `id`).
fn contacts(req: &Request) -> ResponseTemplate {
    let asked = query(req, "properties").unwrap_or_default();
    let page2 = query(req, "after").is_some();
    let all = if page2 {
        vec![json!({"id": "3", "a": 31, "b": 32, "c": 33})]
    } else {
        vec![
            json!({"id": "1", "a": 11, "b": 12, "c": 13, "nested": {"x": 1, "y": 2}}),
            json!({"id": "2", "a": 21, "b": 22, "c": 23}),
            json!({"a": 0, "b": 0, "c": 0}),
        ]
    };
    let pick = |rec: &Value| {
        let mut out = serde_json::Map::new();
        for (k, v) in rec.as_object().into_iter().flatten() {
            if asked.split(',').any(|f| f == k) {
                out.insert(k.clone(), v.clone());
            }
        }
        // Each chunk also returns a different part of a nested object.
        if rec.get("nested").is_some() {
            let part = if asked.contains('a') {
                json!({"x": 1})
            } else {
                json!({"y": 2})
            };
            out.insert("nested".into(), part);
        }
        Value::Object(out)
    };
    json_response(json!({
        "data": all.iter().map(pick).collect::<Vec<_>>(),
        "next": if page2 { Value::Null } else { json!("p2") },
    }))
}

const PAGINATOR: &str = r#"paginator:
  type: DefaultPaginator
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}
  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ response.next }}"
    stop_condition: "{{ not response.next }}""#;

#[tokio::test(flavor = "multi_thread")]
async fn query_properties_chunk_each_page_and_merge_records_by_key() {
    let server = MockServer::start().await;
    serve(&server, "/contacts", contacts).await;
    let params = r#"request_parameters:
  limit: "2"
  properties:
    type: QueryProperties
    property_list: [a, b, c]
    always_include_properties: [id]
    property_chunking:
      type: PropertyChunking
      property_limit_type: property_count
      property_limit: 2
      record_merge_strategy: {type: GroupByKeyMergeStrategy, key: [id]}"#;
    let yaml = one_stream("/contacts", params, PAGINATOR, "");
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        requests_of(&server).await,
        vec![
            ("/contacts".into(), s("id,a,b"), None),
            ("/contacts".into(), s("id,c"), None),
            ("/contacts".into(), s("id,a,b"), s("p2")),
            ("/contacts".into(), s("id,c"), s("p2")),
        ]
    );
    // Records without a merge key come as they are, first; then the merged ones by key.
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"a": 0, "b": 0}),
            &json!({"c": 0}),
            &json!({"id": "1", "a": 11, "b": 12, "c": 13, "nested": {"x": 1, "y": 2}}),
            &json!({"id": "2", "a": 21, "b": 22, "c": 23}),
            &json!({"id": "3", "a": 31, "b": 32, "c": 33}),
        ]
    );
    let limits: Vec<Option<String>> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| query(r, "limit"))
        .collect();
    assert_eq!(limits, vec![s("2"); 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn query_properties_without_chunking_send_one_request_per_page() {
    let server = MockServer::start().await;
    serve(&server, "/contacts", contacts).await;
    let params = r#"request_parameters:
  properties:
    type: QueryProperties
    property_list: [a, c]
    always_include_properties: [id]"#;
    let yaml = one_stream("/contacts", params, PAGINATOR, "");
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        requests_of(&server).await,
        vec![
            ("/contacts".into(), s("id,a,c"), None),
            ("/contacts".into(), s("id,a,c"), s("p2")),
        ]
    );
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"id": "1", "a": 11, "c": 13, "nested": {"x": 1}}),
            &json!({"id": "2", "a": 21, "c": 23}),
            &json!({"a": 0, "c": 0}),
            &json!({"id": "3", "a": 31, "c": 33}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn properties_from_endpoint_are_read_once_selected_by_the_catalog_and_chunked_by_characters()
{
    let server = MockServer::start().await;
    serve(
        &server,
        "/properties",
        json_response(json!({"results": [
            {"name": "alpha"}, {"name": "beta"}, {"name": "gamma"}, {"name": "delta"}
        ]})),
    )
    .await;
    let region = |r: &Request| {
        let asked = query(r, "properties").unwrap_or_default();
        let id = if r.url.path().ends_with("eu") {
            "e1"
        } else {
            "u1"
        };
        let rec = match asked.as_str() {
            "id,alpha,beta" => json!({"id": id, "alpha": 1, "beta": 2}),
            "id,delta" => json!({"id": id, "delta": 4}),
            other => json!({"id": id, "unexpected": other}),
        };
        json_response(json!({"data": [rec]}))
    };
    serve(&server, "/contacts/eu", region).await;
    serve(&server, "/contacts/us", region).await;
    let params = r#"request_parameters:
  properties:
    type: QueryProperties
    property_list:
      type: PropertiesFromEndpoint
      property_field_path: [name]
      retriever:
        type: SimpleRetriever
        requester:
          type: HttpRequester
          url_base: "{{ config['base_url'] }}"
          path: /properties
        record_selector:
          type: RecordSelector
          extractor: {type: DpathExtractor, field_path: [results]}
    always_include_properties: [id]
    property_chunking:
      type: PropertyChunking
      property_limit_type: characters
      property_limit: 16
    property_selector:
      type: JsonSchemaPropertySelector
      transformations:
        - type: RemoveFields
          field_pointers: [[gamma]]"#;
    let router = r#"partition_router:
  type: ListPartitionRouter
  values: [eu, us]
  cursor_field: region"#;
    let yaml = one_stream(
        "\"/contacts/{{ stream_slice['region'] }}\"",
        params,
        router,
        "",
    );
    let mut catalog = catalog(&["items"], false);
    let props = ["id", "alpha", "beta", "gamma", "delta"]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                json!({"type": ["null", "string", "integer"]}),
            )
        })
        .collect::<serde_json::Map<_, _>>();
    catalog["streams"][0]["stream"]["json_schema"] = json!({"type": "object", "properties": props});
    let m = manifest(&yaml);
    let out = m.run().read(&config_for(&server), &catalog, None);
    out.assert_protocol();
    out.assert_success();
    let s = |v: &str| Some(v.to_string());
    // Partitions may be read at once: the endpoint is read once, first; then any order.
    let mut seen = requests_of(&server).await;
    assert_eq!(seen.first(), Some(&("/properties".into(), None, None)));
    seen[1..].sort();
    assert_eq!(
        seen,
        vec![
            ("/properties".into(), None, None),
            ("/contacts/eu".into(), s("id,alpha,beta"), None),
            ("/contacts/eu".into(), s("id,delta"), None),
            ("/contacts/us".into(), s("id,alpha,beta"), None),
            ("/contacts/us".into(), s("id,delta"), None),
        ]
    );
    let mut records: Vec<Value> = out.records_of("items").into_iter().cloned().collect();
    records.sort_by_key(|r| r["id"].to_string());
    assert_eq!(
        records,
        vec![
            json!({"id": "e1", "alpha": 1, "beta": 2, "delta": 4}),
            json!({"id": "u1", "alpha": 1, "beta": 2, "delta": 4}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ignored_last_chunk_keeps_the_earlier_chunks_records_and_ends_the_read() {
    let server = MockServer::start().await;
    serve(&server, "/contacts", |r: &Request| {
        if query(r, "properties").as_deref() == Some("id,c") {
            ResponseTemplate::new(404)
        } else {
            contacts(r)
        }
    })
    .await;
    let params = r#"request_parameters:
  properties:
    type: QueryProperties
    property_list: [a, b, c]
    always_include_properties: [id]
    property_chunking: {type: PropertyChunking, property_limit_type: property_count, property_limit: 2}
error_handler:
  type: DefaultErrorHandler
  response_filters:
    - {type: HttpResponseFilter, action: IGNORE, http_codes: [404]}"#;
    let yaml = one_stream("/contacts", params, PAGINATOR, "");
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        requests_of(&server).await,
        vec![
            ("/contacts".into(), s("id,a,b"), None),
            ("/contacts".into(), s("id,c"), None),
        ]
    );
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"a": 0, "b": 0}),
            &json!({"id": "1", "a": 11, "b": 12, "nested": {"x": 1}}),
            &json!({"id": "2", "a": 21, "b": 22}),
        ]
    );
}
