//! The config-only ways to run: the seed's simple form (base URL, bearer token, endpoints with
//! params) and a manifest injected in the config as Airbyte's platform does.

use cdk::protocol::ConnectionStatus;
use cdk::testing::Run;
use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::*;

/// Runs `check` (which must succeed) and `discover` (which must give valid messages) on a config.
fn check_then_discover(config: &Value, label: &str) -> cdk::testing::Captured {
    let check = Run::new(BIN).check(config);
    assert_eq!(
        check.connection_status().status,
        ConnectionStatus::Succeeded,
        "{label}: {}",
        check.describe()
    );
    let discovered = Run::new(BIN).discover(config);
    discovered.assert_success().assert_protocol();
    discovered
}

/// The seed's REST API source: bearer token, customers and orders (orders since start_date).
fn seed_config(server: &MockServer) -> Value {
    json!({
        "url_base": format!("{}/v1", server.uri()),
        "authentication": {"type": "bearer", "token": "api-token-seed-1"},
        "start_date": "2024-01-01",
        "endpoints": [
            {"name": "customers", "path": "/customers", "http_method": "GET", "record_path": ["data"], "primary_key": ["id"]},
            {"name": "orders", "path": "/orders", "http_method": "GET", "record_path": ["data"],
             "params": {"start_date": "{{ config['start_date'] }}"}}
        ]
    })
}

async fn seed_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/v1/customers"))
        .and(matchers::header("Authorization", "Bearer api-token-seed-1"))
        .respond_with(json_response(
            json!({"data": [{"id": 1, "name": "Acme Corp"}, {"id": 2, "name": "Globex"}]}),
        ))
        .mount(&server)
        .await;
    Mock::given(matchers::path("/v1/orders"))
        .and(matchers::header("Authorization", "Bearer api-token-seed-1"))
        .respond_with(|r: &Request| {
            assert_eq!(query(r, "start_date").as_deref(), Some("2024-01-01"));
            json_response(json!({"data": [{"id": 10, "customer_id": 1}]}))
        })
        .mount(&server)
        .await;
    refuse_the_rest(&server).await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_simple_config() {
    let server = seed_server().await;
    let config = seed_config(&server);
    let discovered = check_then_discover(&config, "seed");
    let names: Vec<&str> = discovered
        .catalog()
        .streams
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["customers", "orders"]);
    assert_eq!(
        discovered.catalog().streams[0].source_defined_primary_key,
        Some(vec![vec!["id".to_string()]])
    );
    let out = Run::new(BIN).read(&config, &catalog(&["customers", "orders"], false), None);
    out.assert_success().assert_protocol();
    assert_eq!(ids(&out, "customers"), vec![1, 2]);
    assert_eq!(ids(&out, "orders"), vec![10]);
    assert!(
        !out.stdout.contains("api-token-seed-1"),
        "the token never reaches the output"
    );

    let mut bad = config.clone();
    bad["authentication"]["token"] = json!("wrong");
    let check = Run::new(BIN).check(&bad);
    check.assert_success();
    assert_eq!(check.connection_status().status, ConnectionStatus::Failed);
    let incomplete = Run::new(BIN).check(&json!({"endpoints": []}));
    assert_eq!(
        incomplete.connection_status().status,
        ConnectionStatus::Failed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_injected_in_the_config() {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/items"))
        .and(matchers::header("X-Key", "sekrit-key-123"))
        .respond_with(json_response(json!({"data": [{"id": 5}]})))
        .mount(&server)
        .await;
    let yaml = format!(
        "{}\nspec:\n  type: Spec\n  connection_specification:\n    type: object\n    required: [base_url, api_key]\n    properties:\n      base_url: {{type: string}}\n      api_key: {{type: string, airbyte_secret: true}}\n",
        one_stream(
            "/items",
            "authenticator: {type: ApiKeyAuthenticator, api_token: \"{{ config['api_key'] }}\", header: X-Key}",
            "",
            ""
        )
    );
    let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let mut config = config_for(&server);
    config["__injected_declarative_manifest"] = serde_json::to_value(parsed).unwrap();
    let out = Run::new(BIN).read(&config, &catalog(&["items"], false), None);
    out.assert_success().assert_protocol();
    assert_eq!(ids(&out, "items"), vec![5]);
    // The injected manifest's spec applies: a missing key fails the check.
    config.as_object_mut().unwrap().remove("api_key");
    let check = Run::new(BIN).check(&config);
    assert_eq!(check.connection_status().status, ConnectionStatus::Failed);
    assert!(
        check
            .connection_status()
            .message
            .clone()
            .unwrap_or_default()
            .contains("api_key")
    );
}

/// The seed's customers: a `contact` object and an `addresses` array.
fn seed_customers() -> Value {
    json!([
        {"id": 1, "name": "Acme Corp", "updated_at": "2025-10-16T10:00:00Z",
         "contact": {"email": "info@acme.com", "phone": "+1234567890"},
         "addresses": [{"type": "billing", "city": "New York"}, {"type": "shipping", "city": "Boston"}]},
        {"id": 2, "name": "Globex", "updated_at": "2025-10-16T11:00:00Z",
         "contact": {"email": "hi@globex.com", "phone": null},
         "addresses": []}
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_infers_schemas_from_the_first_page() {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/v1/customers"))
        .respond_with(json_response(json!({"data": seed_customers()})))
        .mount(&server)
        .await;
    Mock::given(matchers::path("/v1/orders"))
        .respond_with(json_response(json!({"data": [{"id": 10, "total": 2.5}]})))
        .mount(&server)
        .await;
    let config = json!({
        "url_base": format!("{}/v1", server.uri()),
        "endpoints": [
            {"name": "customers", "path": "/customers", "record_path": ["data"], "primary_key": ["id"],
             "incremental": {"cursor_field": "updated_at", "request_param": "since"}},
            {"name": "orders", "path": "/orders", "record_path": ["data"],
             "schema": {"type": "object", "properties": {"id": {"type": "integer"}, "total": {"type": ["null", "number"]}}}}
        ]
    });
    let discovered = Run::new(BIN).discover(&config);
    discovered.assert_success().assert_protocol();
    let catalog = serde_json::to_value(discovered.catalog()).unwrap();
    insta::assert_json_snapshot!("simple_discover", catalog);
    // The explicit schema won: orders was never asked for.
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(asked, ["/v1/customers"]);
}

/// One endpoint per pagination kind, each serving ids 1..=5 two at a time.
#[tokio::test(flavor = "multi_thread")]
async fn pagination_of_the_simple_form() {
    let server = MockServer::start().await;
    let page_of = |from: i64| -> Vec<Value> {
        (from..(from + 2).min(6))
            .map(|i| json!({"id": i}))
            .collect()
    };
    Mock::given(matchers::path("/paged"))
        .respond_with(move |r: &Request| {
            assert_eq!(query(r, "per_page").as_deref(), Some("2"));
            let page: i64 = query(r, "page").expect("page sent").parse().unwrap();
            json_response(json!({"data": page_of((page - 1) * 2 + 1)}))
        })
        .mount(&server)
        .await;
    Mock::given(matchers::path("/offset"))
        .respond_with(move |r: &Request| {
            assert_eq!(query(r, "limit").as_deref(), Some("2"));
            let offset: i64 = query(r, "offset").expect("offset sent").parse().unwrap();
            json_response(json!({"data": page_of(offset + 1)}))
        })
        .mount(&server)
        .await;
    Mock::given(matchers::path("/cursor"))
        .respond_with(move |r: &Request| {
            let from: i64 = query(r, "after").map_or(1, |c| c.parse().unwrap());
            let next = if from + 2 <= 5 {
                json!((from + 2).to_string())
            } else {
                Value::Null
            };
            json_response(json!({"data": page_of(from), "meta": {"next": next}}))
        })
        .mount(&server)
        .await;
    let base = server.uri();
    Mock::given(matchers::path("/link"))
        .respond_with(move |r: &Request| {
            let from: i64 = query(r, "from").map_or(1, |c| c.parse().unwrap());
            let mut resp = json_response(json!({"data": page_of(from)}));
            if from + 2 <= 5 {
                let link = format!("<{base}/link?from={}>; rel=\"next\"", from + 2);
                resp = resp.insert_header("Link", link.as_str());
            }
            resp
        })
        .mount(&server)
        .await;
    let endpoint = |name: &str, pagination: Value| {
        json!({"name": name, "path": format!("/{name}"), "record_path": ["data"], "pagination": pagination,
               "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}})
    };
    let config = json!({
        "url_base": server.uri(),
        "endpoints": [
            endpoint("paged", json!({"type": "page", "page_size": 2, "size_param": "per_page"})),
            endpoint("offset", json!({"type": "offset", "page_size": 2})),
            endpoint("cursor", json!({"type": "cursor", "cursor_path": ["meta", "next"], "cursor_param": "after"})),
            endpoint("link", json!({"type": "link"})),
        ]
    });
    let names = ["paged", "offset", "cursor", "link"];
    let out = Run::new(BIN).read(&config, &catalog(&names, false), None);
    out.assert_success().assert_protocol();
    for name in names {
        assert_eq!(
            ids(&out, name),
            vec![1, 2, 3, 4, 5],
            "{name}\n{}",
            out.describe()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_sends_the_last_cursor_value() {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/customers"))
        .respond_with(|r: &Request| {
            let since = query(r, "updated_since").expect("updated_since sent");
            let records: Vec<Value> = seed_customers()
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["updated_at"].as_str().unwrap() >= since.as_str())
                .cloned()
                .collect();
            json_response(json!(records))
        })
        .mount(&server)
        .await;
    let config = json!({
        "url_base": server.uri(),
        "endpoints": [{"name": "customers", "path": "/customers", "primary_key": ["id"],
            "incremental": {"cursor_field": "updated_at", "request_param": "updated_since",
                            "start_value": "2025-01-01T00:00:00Z"}}]
    });
    let discovered = Run::new(BIN).discover(&config);
    let stream = &discovered.catalog().streams[0];
    assert_eq!(
        stream.default_cursor_field,
        Some(vec!["updated_at".to_string()])
    );
    let first = Run::new(BIN).read(&config, &catalog(&["customers"], true), None);
    first.assert_success().assert_protocol();
    assert_eq!(ids(&first, "customers"), vec![1, 2]);
    let last = states(&first, "customers").pop().expect("a state");
    assert_eq!(last, json!({"updated_at": "2025-10-16T11:00:00Z"}));
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "customers"},
                                                    "stream_state": last}}]);
    let second = Run::new(BIN).read(&config, &catalog(&["customers"], true), Some(&state));
    second.assert_success().assert_protocol();
    assert_eq!(ids(&second, "customers"), vec![2]);
    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| query(r, "updated_since"))
        .collect();
    assert_eq!(
        sent,
        [
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
            "2025-10-16T11:00:00Z"
        ],
        "discover's first page, then each read"
    );
}

/// The seed's API form: `{"url": …, "api_key": …, "method": "GET"}`.
#[tokio::test(flavor = "multi_thread")]
async fn the_seed_api_form() {
    let server = MockServer::start().await;
    serve_customers(&server, "/customers", ("X-API-Key", "your-api-key")).await;
    refuse_the_rest(&server).await;
    let config = json!({"url": format!("{}/customers", server.uri()), "api_key": "your-api-key", "method": "GET"});
    let discovered = check_then_discover(&config, "api form");
    let stream = &discovered.catalog().streams[0];
    assert_eq!(stream.name, "customers");
    assert_eq!(
        stream.json_schema["properties"]["contact"]["properties"]["email"],
        json!({"type": "string"})
    );
    let out = Run::new(BIN).read(&config, &catalog(&["customers"], false), None);
    out.assert_success().assert_protocol();
    assert_eq!(ids(&out, "customers"), vec![1, 2]);
    assert!(!out.stdout.contains("your-api-key"));
    let mut bad = config.clone();
    bad["api_key"] = json!("wrong");
    let check = Run::new(BIN).check(&bad);
    assert_eq!(check.connection_status().status, ConnectionStatus::Failed);
}

/// A failing check shows the status and the start of the body, not a whole HTML page.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_check_shows_the_status_and_a_short_body() {
    let server = MockServer::start().await;
    let page = format!(
        "<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1><p>{}</p></body></html>",
        "You do not have access to this resource. ".repeat(40)
    );
    Mock::given(matchers::any())
        .respond_with(ResponseTemplate::new(403).set_body_raw(page, "text/html"))
        .mount(&server)
        .await;
    let config =
        json!({"url": format!("{}/customers", server.uri()), "api_key": "k", "method": "GET"});
    let check = Run::new(BIN).check(&config);
    check.assert_success();
    let message = check
        .connection_status()
        .message
        .clone()
        .unwrap_or_default();
    let message = message.replace(&server.uri(), "http://[server]");
    insta::assert_snapshot!("check_failure_message", message);
}

/// A fixture of `integration_tests/seed/` with the seed's host pointed at `server`.
fn seed_fixture(name: &str, server: &MockServer) -> Value {
    let path = format!(
        "{}/integration_tests/seed/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = text.replace("https://api.example.com", &server.uri());
    if name.ends_with(".yaml") {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        serde_json::to_value(yaml).unwrap()
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// The seed's REST examples, YAML and API forms, as written in `integration_tests/seed/`.
#[tokio::test(flavor = "multi_thread")]
async fn the_seed_examples_run_as_written() {
    let server = MockServer::start().await;
    serve_customers(
        &server,
        "/v1/customers",
        ("Authorization", "Bearer API_TOKEN"),
    )
    .await;
    Mock::given(matchers::path("/v1/orders"))
        .and(matchers::query_param("start_date", "2024-01-01"))
        .respond_with(json_response(json!([{"id": 10, "customer_id": 1}])))
        .mount(&server)
        .await;
    serve_customers(&server, "/customers", ("X-API-Key", "your-api-key")).await;
    for (fixture, streams, ids_of) in [
        (
            "config.yaml",
            vec!["customers", "orders"],
            vec![vec![1, 2], vec![10]],
        ),
        ("api_form.json", vec!["customers"], vec![vec![1, 2]]),
    ] {
        let config = seed_fixture(fixture, &server);
        check_then_discover(&config, fixture);
        let out = Run::new(BIN).read(&config, &catalog(&streams, false), None);
        out.assert_success().assert_protocol();
        for (stream, expected) in streams.iter().zip(ids_of) {
            assert_eq!(ids(&out, stream), expected, "{fixture} {stream}");
        }
    }
}

/// Serves the seed's customers at `path` to requests with the `header`.
async fn serve_customers(server: &MockServer, path: &str, header: (&str, &str)) {
    Mock::given(matchers::path(path))
        .and(matchers::header(header.0, header.1))
        .respond_with(json_response(seed_customers()))
        .mount(server)
        .await;
}

/// Answers 401 to any request no other mock takes (a missing credential, a wrong path).
async fn refuse_the_rest(server: &MockServer) {
    Mock::given(matchers::any())
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(server)
        .await;
}
