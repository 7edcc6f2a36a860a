//! Fields of the manifest schema that were once refused: `truncated_list_retriever`,
//! JWT algorithms and keys, `profile_assertion`, `config_normalization_rules`,
//! `lazy_read_pointer`, a pagination strategy's `decoder`, and
//! `allow_catalog_defined_cursor_field`.

use super::*;

/// `record_expander` with a `truncated_list_retriever` reading `/orders/{id}/lines`, paginated.
fn truncated_manifest() -> String {
    let expander = r#"field_path: [data]
          record_expander:
            type: RecordExpander
            expand_records_from_field: [lines, data]
            truncation_indicator_path: [lines, has_more]
            parent_fields:
              - {type: ParentFieldPath, parent_path: [id], record_path: [order_id]}
            truncated_list_retriever:
              type: SimpleRetriever
              requester:
                type: HttpRequester
                url_base: "{{ config['base_url'] }}"
                path: "/orders/{{ stream_slice['parent_record']['id'] }}/lines"
                http_method: GET
              record_selector:
                type: RecordSelector
                extractor: {type: DpathExtractor, field_path: [data]}
              paginator:
                type: DefaultPaginator
                page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}
                pagination_strategy:
                  type: CursorPagination
                  cursor_value: "{{ response.next }}"
                  stop_condition: "{{ not response.next }}""#;
    one_stream("/orders", "", "", "").replace("field_path: [data]", expander)
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_lists_are_fetched_once_per_truncated_record() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/orders",
        json_response(json!({"data": [
            {"id": "o1", "lines": {"has_more": false, "data": [{"n": 1}]}},
            {"id": "o2", "lines": {"has_more": true, "total_count": 3, "data": [{"n": 2}]}},
            {"id": "o3", "lines": {"has_more": true, "total_count": 1, "data": [{"n": 9}]}},
        ]})),
    )
    .await;
    serve(&server, "/orders/o2/lines", |r: &Request| {
        match query(r, "after").as_deref() {
            None => json_response(json!({"data": [{"n": 2}, {"n": 3}], "next": "c2"})),
            Some(_) => json_response(json!({"data": [{"n": 4}], "next": null})),
        }
    })
    .await;
    // The complete list of o3 comes back empty: its embedded items are the fallback.
    serve(
        &server,
        "/orders/o3/lines",
        json_response(json!({"data": []})),
    )
    .await;
    let out = manifest(&truncated_manifest()).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"n": 1, "order_id": "o1"}),
            &json!({"n": 2, "order_id": "o2"}),
            &json!({"n": 3, "order_id": "o2"}),
            &json!({"n": 4, "order_id": "o2"}),
            &json!({"n": 9, "order_id": "o3"}),
        ]
    );
    let requests: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or("")))
        .collect();
    assert_eq!(
        requests,
        vec![
            "/orders?",
            "/orders/o2/lines?",
            "/orders/o2/lines?after=c2",
            "/orders/o3/lines?"
        ]
    );
    // o3 reports one item in total and got none fetched: warned once.
    let warned = out
        .logs()
        .iter()
        .filter(|l| l.message.contains("returned 0 record(s)"))
        .count();
    assert_eq!(warned, 1, "{}", out.describe());
}

#[test]
fn truncated_list_retriever_refuses_what_airbyte_refuses() {
    let yaml = truncated_manifest().replace(
        "            truncation_indicator_path: [lines, has_more]\n",
        "",
    );
    let out = manifest(&yaml)
        .run()
        .check(&json!({"base_url": "http://127.0.0.1:9"}));
    let status = out.connection_status();
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("`truncation_indicator_path` is required"),
        "{}",
        out.describe()
    );
    let yaml = truncated_manifest().replace(
        "              paginator:\n",
        "              partition_router: {type: ListPartitionRouter, values: [a], cursor_field: x}\n              paginator:\n",
    );
    let out = manifest(&yaml)
        .run()
        .check(&json!({"base_url": "http://127.0.0.1:9"}));
    let status = out.connection_status();
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("`partition_router` is not supported on `truncated_list_retriever`"),
        "{}",
        out.describe()
    );
}
