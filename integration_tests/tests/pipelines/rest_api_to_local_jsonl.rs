//! source-rest-api (an inline low-code manifest with cursor pagination and bearer auth, against
//! a wiremock API serving two pages) → destination-s3 writing uncompressed JSONL to a local
//! directory (`file://` endpoint): the files hold exactly the API's records.

use cdk::testing::http::matchers::{header, method, path, query_param, query_param_is_missing};
use cdk::testing::http::{Mock, MockServer, ResponseTemplate};
use serde_json::{Value, json};

use crate::common::{Sync, files_ending, write_json};

const TOKEN: &str = "pipeline-token-123";

fn manifest() -> Value {
    json!({
        "version": "6.0.0",
        "type": "DeclarativeSource",
        "check": {"type": "CheckStream", "stream_names": ["orders"]},
        "streams": [{
            "type": "DeclarativeStream",
            "name": "orders",
            "primary_key": ["id"],
            "retriever": {
                "type": "SimpleRetriever",
                "requester": {
                    "type": "HttpRequester",
                    "url_base": "{{ config['base_url'] }}",
                    "path": "/orders",
                    "http_method": "GET",
                    "authenticator": {
                        "type": "BearerAuthenticator",
                        "api_token": "{{ config['api_token'] }}"
                    }
                },
                "record_selector": {
                    "type": "RecordSelector",
                    "extractor": {"type": "DpathExtractor", "field_path": ["data"]}
                },
                "paginator": {
                    "type": "DefaultPaginator",
                    "pagination_strategy": {
                        "type": "CursorPagination",
                        "cursor_value": "{{ response.next_cursor }}",
                        "stop_condition": "{{ not response.next_cursor }}"
                    },
                    "page_token_option": {
                        "type": "RequestOption",
                        "inject_into": "request_parameter",
                        "field_name": "cursor"
                    }
                }
            },
            "schema_loader": {
                "type": "InlineSchemaLoader",
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "customer": {"type": ["null", "string"]},
                        "total": {"type": ["null", "number"]},
                        "lines": {"type": ["null", "array"]}
                    }
                }
            }
        }],
        "spec": {
            "type": "Spec",
            "connection_specification": {
                "type": "object",
                "required": ["base_url", "api_token"],
                "properties": {
                    "base_url": {"type": "string"},
                    "api_token": {"type": "string", "airbyte_secret": true}
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn paginated_api_lands_in_local_jsonl_files() {
    let page1 = json!([
        {"id": 1, "customer": "Ada", "total": 12.5, "lines": [{"sku": "A-1", "qty": 2}]},
        {"id": 2, "customer": "Zoë \"Z\" Ng", "total": 0, "lines": []},
        {"id": 3, "customer": null, "total": 1e3, "lines": null, "extra": {"nested": true}}
    ]);
    let page2 = json!([
        {"id": 4, "customer": "日本", "total": -7.25, "lines": [{"sku": "B-2", "qty": 1}]},
        {"id": 5, "customer": "Eve", "total": 99.99}
    ]);
    let api = MockServer::start().await;
    // Each page must be asked for exactly once by the read, with the token; the second by the
    // cursor the first page gave. `cdk sync` checks the source first, which reads the first
    // page once more.
    Mock::given(method("GET"))
        .and(path("/orders"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": page1, "next_cursor": "c2"})),
        )
        .expect(2)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("cursor", "c2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": page2, "next_cursor": null})),
        )
        .expect(1)
        .mount(&api)
        .await;

    let work = tempfile::tempdir().unwrap();
    let lake = work.path().join("lake-root");
    std::fs::create_dir(&lake).unwrap();
    let sync = Sync {
        source: "source-rest-api",
        source_config: write_json(
            work.path(),
            "source.json",
            &json!({
                "__injected_declarative_manifest": manifest(),
                "base_url": api.uri(), "api_token": TOKEN
            }),
        ),
        destination: "destination-s3",
        destination_config: write_json(
            work.path(),
            "destination.json",
            &json!({
                "s3_bucket_name": "lake", "s3_bucket_path": "raw",
                "s3_endpoint": format!("file://{}", lake.display()),
                "format": {"format_type": "JSONL",
                           "compression": {"compression_type": "No Compression"}}
            }),
        ),
        catalog: None,
        output: work.path().join("output"),
    };
    let synced = sync.run().await;
    assert_eq!(synced.records, 5, "{}", synced.stderr);
    assert!(
        !synced.stderr.contains(TOKEN),
        "the token leaked into the logs:\n{}",
        synced.stderr
    );
    api.verify().await;

    let files = files_ending(&lake.join("lake/raw"), ".jsonl");
    assert!(!files.is_empty(), "no .jsonl file under {}", lake.display());
    let mut data = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&lake)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            relative.starts_with("lake/raw/orders/"),
            "{relative} is not in <bucket>/<bucket path>/<stream>/"
        );
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            for field in [
                "_airbyte_raw_id",
                "_airbyte_extracted_at",
                "_airbyte_meta",
                "_airbyte_generation_id",
            ] {
                assert!(record.get(field).is_some(), "no {field} in {line}");
            }
            data.push(record["_airbyte_data"].clone());
        }
    }
    let served: Vec<Value> = page1
        .as_array()
        .unwrap()
        .iter()
        .chain(page2.as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(data, served);
}
