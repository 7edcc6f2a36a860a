//! Every authenticator: API key (header, query parameter, deprecated `header`), bearer, basic,
//! OAuth with refresh (single-use refresh token rotated via a CONTROL message, tokens masked,
//! refresh on 401) and session tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cdk::testing::http::{Match, Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::*;

fn items() -> ResponseTemplate {
    json_response(json!({"data": [{"id": 1}]}))
}

/// Serves one record at `/items` to requests that carry the credential `matcher` checks.
async fn serve_items_when(server: &MockServer, matcher: impl Match + 'static) {
    Mock::given(matchers::path("/items"))
        .and(matcher)
        .respond_with(items())
        .mount(server)
        .await;
}

async fn read_with(
    server: &MockServer,
    requester_extra: &str,
    config: &Value,
) -> cdk::testing::Captured {
    Mock::given(matchers::any())
        .respond_with(ResponseTemplate::new(401).set_body_string("no credentials"))
        .with_priority(10)
        .mount(server)
        .await;
    let m = manifest(&one_stream("/items", requester_extra, "", ""));
    m.read(config, &["items"])
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_in_a_header_and_in_the_query() {
    let server = MockServer::start().await;
    serve_items_when(&server, matchers::header("X-Api-Key", "sekrit-key-123")).await;
    serve_items_when(&server, matchers::query_param("key", "sekrit-key-123")).await;
    for auth in [
        r#"authenticator: {type: ApiKeyAuthenticator, api_token: "{{ config['api_key'] }}", inject_into: {type: RequestOption, inject_into: header, field_name: X-Api-Key}}"#,
        r#"authenticator: {type: ApiKeyAuthenticator, api_token: "{{ config['api_key'] }}", header: X-Api-Key}"#,
        r#"authenticator: {type: ApiKeyAuthenticator, api_token: "{{ config['api_key'] }}", inject_into: {type: RequestOption, inject_into: request_parameter, field_name: key}}"#,
    ] {
        let out = read_with(&server, auth, &config_for(&server)).await;
        out.assert_success();
        assert_eq!(ids(&out, "items"), vec![1], "{auth}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_and_basic() {
    let server = MockServer::start().await;
    serve_items_when(
        &server,
        matchers::header("Authorization", "Bearer sekrit-key-123"),
    )
    .await;
    let out = read_with(
        &server,
        r#"authenticator: {type: BearerAuthenticator, api_token: "{{ config['api_key'] }}"}"#,
        &config_for(&server),
    )
    .await;
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);

    let server = MockServer::start().await;
    // base64("ann:pw-1")
    serve_items_when(
        &server,
        matchers::header("Authorization", "Basic YW5uOnB3LTE="),
    )
    .await;
    let mut cfg = config_for(&server);
    cfg["user"] = json!("ann");
    cfg["password"] = json!("pw-1");
    let out = read_with(&server, r#"authenticator: {type: BasicHttpAuthenticator, username: "{{ config['user'] }}", password: "{{ config['password'] }}"}"#, &cfg).await;
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
}

const OAUTH: &str = r#"authenticator:
  type: OAuthAuthenticator
  token_refresh_endpoint: "{{ config['base_url'] }}/oauth/token"
  client_id: "{{ config['credentials']['client_id'] }}"
  client_secret: "{{ config['credentials']['client_secret'] }}"
  refresh_token: "{{ config['credentials']['refresh_token'] }}"
  refresh_token_updater:
    refresh_token_name: refresh_token"#;

#[tokio::test(flavor = "multi_thread")]
async fn oauth_refresh_rotates_the_refresh_token_through_a_control_message() {
    let server = MockServer::start().await;
    let refreshes = Arc::new(AtomicUsize::new(0));
    let r = refreshes.clone();
    serve_post(&server, "/oauth/token", move |req: &Request| {
            let get = |k: &str| form_field(req, k);
            assert_eq!(get("grant_type").as_deref(), Some("refresh_token"));
            assert_eq!(get("client_id").as_deref(), Some("cid"));
            assert_eq!(get("client_secret").as_deref(), Some("csecret-xyz"));
            assert_eq!(get("refresh_token").as_deref(), Some("rt-one-abc"));
            r.fetch_add(1, Ordering::SeqCst);
            json_response(json!({"access_token": "at-new-987", "expires_in": 3600, "refresh_token": "rt-two-def"}))
        }).await;
    serve_items_when(
        &server,
        matchers::header("Authorization", "Bearer at-new-987"),
    )
    .await;
    let mut cfg = config_for(&server);
    cfg["credentials"] =
        json!({"client_id": "cid", "client_secret": "csecret-xyz", "refresh_token": "rt-one-abc"});
    let out = read_with(&server, OAUTH, &cfg).await;
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    let controls = controls(&out);
    assert_eq!(controls.len(), 1, "{}", out.describe());
    let new_config = &controls[0]["connectorConfig"]["config"];
    assert_eq!(new_config["credentials"]["refresh_token"], "rt-two-def");
    assert_eq!(new_config["credentials"]["access_token"], "at-new-987");
    assert!(new_config["credentials"]["token_expiry_date"].is_string());
    assert_eq!(
        new_config["base_url"], cfg["base_url"],
        "the whole config is sent"
    );
    for line in out.stdout.lines().filter(|l| !l.contains("\"CONTROL\"")) {
        assert!(
            !line.contains("at-new-987") && !line.contains("rt-two-def"),
            "token leaked: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_client_credentials_and_refresh_on_401() {
    let server = MockServer::start().await;
    let (n, respond) = counting(|i, req| {
        let body = String::from_utf8_lossy(&req.body).to_string();
        assert!(
            body.contains("grant_type=client_credentials") && !body.contains("refresh_token"),
            "{body}"
        );
        json_response(json!({"data": {"token": format!("tok-{}", i + 1)}}))
    });
    serve(&server, "/token", respond).await;
    // The first token is refused: the handler asks for a new one.
    serve_items_when(&server, matchers::header("Authorization", "Bearer tok-2")).await;
    Mock::given(matchers::path("/items"))
        .and(matchers::header("Authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let auth = r#"authenticator:
  type: OAuthAuthenticator
  token_refresh_endpoint: "{{ config['base_url'] }}/token"
  grant_type: client_credentials
  client_id: id
  client_secret: "{{ config['api_key'] }}"
  access_token_name: token
error_handler:
  type: DefaultErrorHandler
  response_filters: [{type: HttpResponseFilter, http_codes: [401], action: REFRESH_TOKEN_THEN_RETRY}]"#;
    let out = read_with(&server, auth, &config_for(&server)).await;
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
    assert_eq!(n.load(Ordering::SeqCst), 2);
    assert!(controls(&out).is_empty(), "no updater, no CONTROL");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_token_from_a_login_request() {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/login"))
        .and(matchers::method("POST"))
        .and(matchers::header("Authorization", "Basic YW5uOnB3LTE="))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["scope"], "read");
            json_response(json!({"session": {"token": "sess-4242"}}))
        })
        .mount(&server)
        .await;
    serve_items_when(&server, matchers::header("X-Session", "sess-4242")).await;
    let auth = r#"authenticator:
  type: SessionTokenAuthenticator
  login_requester:
    type: HttpRequester
    url_base: "{{ config['base_url'] }}"
    path: /login
    http_method: POST
    request_body_json: {scope: read}
    authenticator: {type: BasicHttpAuthenticator, username: "{{ config['user'] }}", password: "{{ config['password'] }}"}
  session_token_path: [session, token]
  expiration_duration: PT1H
  request_authentication:
    type: ApiKey
    inject_into: {type: RequestOption, inject_into: header, field_name: X-Session}"#;
    let mut cfg = config_for(&server);
    cfg["user"] = json!("ann");
    cfg["password"] = json!("pw-1");
    let out = read_with(&server, auth, &cfg).await;
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
}
