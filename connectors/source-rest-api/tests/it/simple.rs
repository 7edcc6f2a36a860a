//! The config-only ways to run: the seed's simple form (base URL, bearer token, endpoints with
//! params) and a manifest injected in the config as Airbyte's platform does.

use cdk::protocol::ConnectionStatus;
use cdk::testing::Run;
use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::*;

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
    Mock::given(matchers::any())
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_simple_config() {
    let server = seed_server().await;
    let config = seed_config(&server);
    let check = Run::new(BIN).check(&config);
    check.assert_success();
    assert_eq!(
        check.connection_status().status,
        ConnectionStatus::Succeeded,
        "{}",
        check.describe()
    );
    let discovered = Run::new(BIN).discover(&config);
    discovered.assert_success().assert_protocol();
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
