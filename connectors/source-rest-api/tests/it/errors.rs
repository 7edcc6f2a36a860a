//! Error handling: rate limits with Retry-After, retried server errors, giving up with a clear
//! error, 401 as a config error, response filters, backoff strategies, composite handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cdk::protocol::{AirbyteStreamStatus, ConnectionStatus, FailureType, TracePayload};
use cdk::testing::http::{MockServer, ResponseTemplate};
use serde_json::json;

use crate::*;

/// Serves `first` at `path` for the first `n` requests, then a good page; counts requests.
async fn serve_flaky(
    server: &MockServer,
    path: &str,
    n: usize,
    first: ResponseTemplate,
) -> Arc<AtomicUsize> {
    let (count, respond) = counting(move |i, _| if i < n { first.clone() } else { ok_page() });
    serve(server, path, respond).await;
    count
}

fn ok_page() -> ResponseTemplate {
    json_response(json!({"data": [{"id": 1}, {"id": 2}]}))
}

fn handler(yaml: &str) -> String {
    format!(
        "error_handler:\n{}",
        yaml.lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

const FAST_RETRIES: &str = "type: DefaultErrorHandler\nmax_retries: 2\nbackoff_strategies:\n  - type: ConstantBackoffStrategy\n    backoff_time_in_seconds: 0.05";

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_with_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    let count = serve_flaky(
        &server,
        "/items",
        1,
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
    )
    .await;
    let m = manifest(&one_stream("/items", "", "", ""));
    let started = Instant::now();
    let out = m.read(&config_for(&server), &["items"]);
    out.assert_success();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(ids(&out, "items"), vec![1, 2]);
    let rate_limited = out.traces().any(|t| match &t.payload {
        TracePayload::StreamStatus { stream_status } => {
            stream_status.status == AirbyteStreamStatus::Running
                && stream_status.reasons.iter().any(|r| {
                    r.rate_limited
                        .as_ref()
                        .is_some_and(|x| x.quota_reset.is_some())
                })
        }
        _ => false,
    });
    assert!(
        rate_limited,
        "a RUNNING status with a RATE_LIMITED reason\n{}",
        out.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_retried_then_succeeds() {
    let server = MockServer::start().await;
    let count = serve_flaky(
        &server,
        "/items",
        2,
        ResponseTemplate::new(500).set_body_string("boom"),
    )
    .await;
    let m = manifest(&one_stream("/items", &handler(FAST_RETRIES), "", ""));
    let out = m.read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(ids(&out, "items"), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_until_the_limit_is_a_clear_transient_error() {
    let server = MockServer::start().await;
    let count = serve_flaky(
        &server,
        "/items",
        100,
        ResponseTemplate::new(503).set_body_string("down for maintenance"),
    )
    .await;
    let m = manifest(&one_stream("/items", &handler(FAST_RETRIES), "", ""));
    let out = m.read(&config_for(&server), &["items"]);
    out.assert_failure();
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "the first try and max_retries retries"
    );
    let (message, kind) = trace_error(&out);
    assert_eq!(kind, Some(FailureType::TransientError));
    assert!(
        message.contains("gave up after 3 attempts")
            && message.contains("HTTP 503")
            && message.contains("down for maintenance"),
        "{message}"
    );
    assert_eq!(
        out.statuses_of("items").last(),
        Some(&AirbyteStreamStatus::Incomplete)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthorized_is_a_config_error() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        ResponseTemplate::new(401).set_body_string("bad key"),
    )
    .await;
    let m = manifest(&one_stream("/items", "", "", ""));
    let out = m.read(&config_for(&server), &["items"]);
    out.assert_failure();
    let errors = out.trace_errors();
    assert!(
        errors
            .iter()
            .all(|e| e.failure_type == Some(FailureType::ConfigError)),
        "{}",
        out.describe()
    );
    assert!(
        errors[0].message.contains("HTTP 401"),
        "{}",
        errors[0].message
    );
    let check = m.run().check(&config_for(&server));
    check.assert_success();
    assert_eq!(check.connection_status().status, ConnectionStatus::Failed);
    assert!(
        check
            .connection_status()
            .message
            .as_deref()
            .unwrap_or("")
            .contains("401")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn response_filters() {
    let server = MockServer::start().await;
    serve(&server, "/gone", ResponseTemplate::new(404)).await;
    serve(
        &server,
        "/quota",
        ResponseTemplate::new(400).set_body_json(json!({"error": "quota exceeded for account"})),
    )
    .await;
    let count = serve_flaky(
        &server,
        "/soft",
        1,
        json_response(json!({"status": "pending"})),
    )
    .await;
    let filters = r#"type: DefaultErrorHandler
backoff_strategies: [{type: ConstantBackoffStrategy, backoff_time_in_seconds: 0.01}]
response_filters:
  - {type: HttpResponseFilter, action: IGNORE, http_codes: [404]}
  - type: HttpResponseFilter
    action: FAIL
    failure_type: config_error
    error_message_contains: quota exceeded
    error_message: "Quota: {{ response['error'] }}"
  - {type: HttpResponseFilter, action: RETRY, predicate: "{{ response.status == 'pending' }}"}"#;
    let cfg = config_for(&server);
    let out = manifest(&one_stream("/gone", &handler(filters), "", "")).read(&cfg, &["items"]);
    out.assert_success();
    assert!(out.records_of("items").is_empty());
    let out = manifest(&one_stream("/quota", &handler(filters), "", "")).read(&cfg, &["items"]);
    out.assert_failure();
    let (message, kind) = trace_error(&out);
    assert_eq!(kind, Some(FailureType::ConfigError));
    assert!(
        message.contains("Quota: quota exceeded for account"),
        "{message}"
    );
    let out = manifest(&one_stream("/soft", &handler(filters), "", "")).read(&cfg, &["items"]);
    out.assert_success();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(ids(&out, "items"), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_time_from_header_and_its_maximum() {
    let server = MockServer::start().await;
    serve_flaky(
        &server,
        "/items",
        1,
        ResponseTemplate::new(503).insert_header("X-Wait", "wait=0.3s"),
    )
    .await;
    serve(
        &server,
        "/long",
        ResponseTemplate::new(503).insert_header("X-Wait", "wait=120s"),
    )
    .await;
    let h = handler(
        "type: DefaultErrorHandler\nbackoff_strategies:\n  - {type: WaitTimeFromHeader, header: X-Wait, regex: \"([0-9.]+)\", max_waiting_time_in_seconds: 60}",
    );
    let started = Instant::now();
    let out = manifest(&one_stream("/items", &h, "", "")).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let out = manifest(&one_stream("/long", &h, "", "")).read(&config_for(&server), &["items"]);
    out.assert_failure();
    assert!(
        trace_error(&out).0.contains("max_waiting_time_in_seconds"),
        "{}",
        trace_error(&out).0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_until_time_from_header() {
    let server = MockServer::start().await;
    let (count, respond) = counting(|i, _| {
        if i == 0 {
            let reset = chrono::Utc::now().timestamp() + 1;
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Reset", reset.to_string().as_str())
        } else {
            ok_page()
        }
    });
    serve(&server, "/items", respond).await;
    let h = handler(
        "type: DefaultErrorHandler\nbackoff_strategies:\n  - {type: WaitUntilTimeFromHeader, header: X-RateLimit-Reset, min_wait: 0.2}",
    );
    let started = Instant::now();
    let out = manifest(&one_stream("/items", &h, "", "")).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn exponential_backoff_and_composite_handlers() {
    let server = MockServer::start().await;
    let count = serve_flaky(&server, "/items", 2, ResponseTemplate::new(418)).await;
    serve(&server, "/gone", ResponseTemplate::new(404)).await;
    let h = handler(
        r#"type: CompositeErrorHandler
error_handlers:
  - type: DefaultErrorHandler
    response_filters: [{type: HttpResponseFilter, action: RETRY, http_codes: [418]}]
    backoff_strategies: [{type: ExponentialBackoffStrategy, factor: 0.05}]
  - type: DefaultErrorHandler
    response_filters: [{type: HttpResponseFilter, action: IGNORE, http_codes: [404]}]"#,
    );
    let started = Instant::now();
    let out = manifest(&one_stream("/items", &h, "", "")).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "0.05·2 + 0.05·4 seconds"
    );
    let out = manifest(&one_stream("/gone", &h, "", "")).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert!(out.records_of("items").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_retried_then_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = json!({"base_url": format!("http://127.0.0.1:{port}")});
    let m = manifest(&one_stream("/items", &handler(FAST_RETRIES), "", ""));
    let out = m.read(&config, &["items"]);
    out.assert_failure();
    let (message, kind) = trace_error(&out);
    assert_eq!(kind, Some(FailureType::TransientError));
    assert!(message.contains("gave up after 3 attempts"), "{message}");
}
