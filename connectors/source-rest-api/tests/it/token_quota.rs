//! `RateLimitedMultipleTokenAuthenticator`: tokens rotate as their quotas run out, pools are
//! matched by URL and reconciled from response headers, a rate-limited request is retried at
//! once on another token, spent tokens wait for the reset or fail, untracked quotas take turns,
//! and the definitions airbyte-cdk refuses are refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::*;

fn epoch_in(secs: u64) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + secs
}

fn header_of(req: &Request, name: &str) -> String {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The credential of each request to `/items`, in order, and the number of its page.
type Log = Arc<Mutex<Vec<(String, String)>>>;

/// Serves `/rate_limit` with `status(token, read number)` and `/items` pages of one record
/// (pages 1..=`pages`, then an empty page) answered by `answer(token, n)` when it gives one.
async fn fake_api(
    server: &MockServer,
    header: &'static str,
    status: impl Fn(&str, usize) -> ResponseTemplate + Send + Sync + 'static,
    pages: usize,
    answer: impl Fn(&str, usize) -> Option<ResponseTemplate> + Send + Sync + 'static,
) -> (Log, Log) {
    let status_log: Log = Arc::new(Mutex::new(Vec::new()));
    let items_log: Log = Arc::new(Mutex::new(Vec::new()));
    let sl = status_log.clone();
    serve(server, "/rate_limit", move |req: &Request| {
        let token = header_of(req, header);
        let mut log = sl.lock().unwrap();
        log.push((token.clone(), String::new()));
        status(&token, log.len() - 1)
    })
    .await;
    let il = items_log.clone();
    serve(server, "/items", move |req: &Request| {
        let token = header_of(req, header);
        let page = query(req, "page").unwrap_or_else(|| "1".into());
        let n = {
            let mut log = il.lock().unwrap();
            log.push((token.clone(), page.clone()));
            log.len() - 1
        };
        if let Some(r) = answer(&token, n) {
            return r;
        }
        let p: usize = page.parse().unwrap_or(1);
        let data = if p <= pages {
            vec![json!({"id": p})]
        } else {
            vec![]
        };
        json_response(json!({ "data": data }))
    })
    .await;
    (status_log, items_log)
}

/// A quota status body: the `core` pool with `remaining` calls, reset in `reset_in` seconds.
fn quota_body(remaining: i64, reset_in: u64) -> ResponseTemplate {
    json_response(json!({"resources": {
        "core": {"remaining": remaining, "reset": epoch_in(reset_in), "limit": 5000},
        "search": {"remaining": 0, "reset": epoch_in(3600), "limit": 30}
    }}))
}

/// A manifest of `items` (one record a page) signed by the authenticator `auth`.
fn manifest_with(auth: &str) -> String {
    one_stream(
        "/items",
        &format!("authenticator:\n{}", indent(auth, 2)),
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: PageIncrement, page_size: 1, start_from_page: 1}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}"#,
        "",
    )
}

fn indent(s: &str, n: usize) -> String {
    s.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tokens and quota status source most tests use.
const HEAD: &str = r#"tokens: "{{ config['tokens'] }}"
quota_status_source:
  type: QuotaStatusSource
  url: "{{ config['base_url'] }}/rate_limit""#;

/// The authenticator with `extra` fields and the `core` pool with `pool_extra` fields.
fn auth(extra: &str, pool_extra: &str) -> String {
    auth_with(HEAD, extra, pool_extra)
}

/// [`auth`] with other tokens and quota status source (`head`).
fn auth_with(head: &str, extra: &str, pool_extra: &str) -> String {
    format!(
        r#"type: RateLimitedMultipleTokenAuthenticator
{head}
budget_reserve_fraction: 0
budget_min_reserve: 0
quotas:
  - type: TokenQuota
    name: search
    remaining_path: [resources, search, remaining]
    reset_path: [resources, search, reset]
    matchers:
      - type: HttpRequestRegexMatcher
        url_path_pattern: "/search"
  - type: TokenQuota
    name: core
    remaining_path: [resources, core, remaining]
    reset_path: [resources, core, reset]
    limit_path: [resources, core, limit]
{pool}
{extra}"#,
        pool = indent(pool_extra, 4),
    )
}

fn config(server: &MockServer, tokens: &str) -> Value {
    json!({"base_url": server.uri(), "tokens": tokens})
}

fn tokens_of(log: &Log) -> Vec<String> {
    log.lock().unwrap().iter().map(|(t, _)| t.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_rotate_as_their_quotas_are_used_up() {
    let server = MockServer::start().await;
    let (status, items) = fake_api(
        &server,
        "authorization",
        |token, _| quota_body(if token == "Bearer t1" { 2 } else { 3 }, 3600),
        4,
        |_, _| None,
    )
    .await;
    let out =
        manifest(&manifest_with(&auth("", ""))).read(&config(&server, " t1 , t2 ,"), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1, 2, 3, 4]);
    // Each token's quotas are read once, with that token; the search pool (0 left) is not
    // charged for `/items`, which the `core` pool without matchers takes.
    assert_eq!(tokens_of(&status), vec!["Bearer t1", "Bearer t2"]);
    assert_eq!(
        tokens_of(&items),
        vec![
            "Bearer t1",
            "Bearer t1",
            "Bearer t2",
            "Bearer t2",
            "Bearer t2"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pools_follow_the_remaining_count_of_responses() {
    let server = MockServer::start().await;
    let (_, items) = fake_api(
        &server,
        "x-token",
        |_, _| quota_body(100, 3600),
        3,
        // The first answer says t1 has no call left (its local count says 99).
        |_, n| {
            (n == 0).then(|| {
                json_response(json!({"data": [{"id": 1}]}))
                    .insert_header("X-RateLimit-Remaining", "0")
            })
        },
    )
    .await;
    let yaml = manifest_with(&auth(
        "header: X-Token\nauth_method: token",
        "remaining_header: X-RateLimit-Remaining",
    ));
    let out = manifest(&yaml).read(&config(&server, "t1,t2"), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1, 2, 3]);
    assert_eq!(
        tokens_of(&items),
        vec!["token t1", "token t2", "token t2", "token t2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_request_is_retried_at_once_on_another_token() {
    let server = MockServer::start().await;
    let (_, items) = fake_api(
        &server,
        "authorization",
        |_, _| quota_body(100, 3600),
        2,
        // t1 is refused for an hour; without rotation the retry would wait that long.
        |token, _| {
            (token == "Bearer t1").then(|| {
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "3600")
                    .set_body_string("slow down")
            })
        },
    )
    .await;
    let yaml = manifest_with(&auth("", "exhaustion_status_codes: [429]"));
    let started = Instant::now();
    let out = manifest(&yaml).read(&config(&server, "t1,t2"), &["items"]);
    out.assert_success();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(ids(&out, "items"), vec![1, 2]);
    assert_eq!(
        tokens_of(&items),
        vec!["Bearer t1", "Bearer t2", "Bearer t2", "Bearer t2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spent_tokens_fail_when_the_reset_is_beyond_max_wait_time() {
    let server = MockServer::start().await;
    let (status, items) = fake_api(
        &server,
        "authorization",
        |_, _| quota_body(0, 3 * 3600),
        2,
        |_, _| None,
    )
    .await;
    let out = manifest(&manifest_with(&auth("", ""))).read(&config(&server, "t1,t2"), &["items"]);
    out.assert_failure();
    let (message, kind) = trace_error(&out);
    assert!(
        message.contains("rate limit is exceeded for all provided tokens"),
        "{message}"
    );
    assert_eq!(kind, Some(FailureType::TransientError));
    assert_eq!(tokens_of(&status).len(), 2);
    assert!(tokens_of(&items).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn spent_tokens_wait_for_the_reset_and_read_the_quotas_again() {
    let server = MockServer::start().await;
    // First reading: nothing left, reset in 1 s (waited at least 5 s); then 10 calls each.
    let (status, items) = fake_api(
        &server,
        "authorization",
        |_, n| {
            if n < 2 {
                quota_body(0, 1)
            } else {
                quota_body(10, 3600)
            }
        },
        2,
        |_, _| None,
    )
    .await;
    let started = Instant::now();
    let out = manifest(&manifest_with(&auth("", ""))).read(&config(&server, "t1,t2"), &["items"]);
    out.assert_success();
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(ids(&out, "items"), vec![1, 2]);
    assert_eq!(tokens_of(&status).len(), 4);
    assert_eq!(tokens_of(&items), vec!["Bearer t1"; 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn untracked_quotas_take_turns() {
    let server = MockServer::start().await;
    let (_, items) = fake_api(
        &server,
        "x-key",
        |_, _| ResponseTemplate::new(404).set_body_string("rate limiting is disabled"),
        3,
        |_, _| None,
    )
    .await;
    let head = "tokens: [\"{{ config['tokens'] }}\", b2]\nquota_status_source: {type: QuotaStatusSource, url: \"{{ config['base_url'] }}/rate_limit\", unavailable_status_codes: [404]}";
    let yaml = manifest_with(&auth_with(head, "header: X-Key\nauth_method: \"\"", ""));
    let out = manifest(&yaml).read(&config(&server, "a1"), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1, 2, 3]);
    // An empty auth_method is the default `Bearer`, as in airbyte-cdk.
    assert_eq!(
        tokens_of(&items),
        vec!["Bearer a1", "Bearer b2", "Bearer a1", "Bearer b2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_quota_status_fails_the_read() {
    let server = MockServer::start().await;
    let (_, items) = fake_api(
        &server,
        "authorization",
        |_, _| ResponseTemplate::new(404).set_body_string("no such endpoint"),
        1,
        |_, _| None,
    )
    .await;
    let out = manifest(&manifest_with(&auth("", ""))).read(&config(&server, "t1"), &["items"]);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(message.contains("quota status"), "{message}");
    assert!(tokens_of(&items).is_empty());
    // A path the answer lacks is an error too.
    let server = MockServer::start().await;
    fake_api(
        &server,
        "authorization",
        |_, _| json_response(json!({"resources": {}})),
        1,
        |_, _| None,
    )
    .await;
    let out = manifest(&manifest_with(&auth("", ""))).read(&config(&server, "t1"), &["items"]);
    out.assert_failure();
    let (message, kind) = trace_error(&out);
    assert!(
        message.contains("does not contain the remaining path"),
        "{message}"
    );
    assert_eq!(kind, Some(FailureType::SystemError));
}

#[test]
fn definitions_airbyte_refuses_are_refused() {
    let base = json!({"base_url": "http://127.0.0.1:9", "tokens": "t1"});
    let no_url = "tokens: [a]\nquota_status_source: {type: QuotaStatusSource}";
    let cases: [(&str, &str, Value, &str); 4] = [
        (
            HEAD,
            "",
            json!({"base_url": "http://127.0.0.1:9", "tokens": " , "}),
            "tokens are missing",
        ),
        (
            HEAD,
            "max_wait_time: P1M",
            base.clone(),
            "calendar-unit durations",
        ),
        (HEAD, "max_wait_time: soon", base.clone(), "max_wait_time"),
        (no_url, "", base.clone(), "url"),
    ];
    for (head, extra, config, expected) in cases {
        let yaml = manifest_with(&auth_with(head, extra, ""));
        let out = manifest(&yaml).run().discover(&config);
        out.assert_failure();
        let (message, _) = trace_error(&out);
        assert!(message.contains(expected), "{extra}: {message}");
    }
    // No quota pool at all.
    let yaml = manifest_with(
        "type: RateLimitedMultipleTokenAuthenticator\ntokens: [a]\nquota_status_source: {type: QuotaStatusSource, url: http://x/r}\nquotas: []",
    );
    let out = manifest(&yaml).run().discover(&base);
    out.assert_failure();
    assert!(trace_error(&out).0.contains("quota"), "{}", out.describe());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quota_status_is_read_as_its_source_says_inside_a_selective_authenticator() {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/rate_limit"))
        .and(matchers::method("POST"))
        .and(matchers::header("X-Api-Version", "v-2024"))
        .and(matchers::header("Authorization", "Bearer t1"))
        .respond_with(quota_body(5, 3600))
        .mount(&server)
        .await;
    serve(&server, "/items", |req: &Request| {
        match header_of(req, "authorization").as_str() {
            "Bearer t1" => json_response(json!({"data": [{"id": 1}]})),
            _ => ResponseTemplate::new(401),
        }
    })
    .await;
    let head = r#"tokens: ["{{ config['tokens'] }}"]
quota_status_source:
  type: QuotaStatusSource
  url: "{{ config['base_url'] }}/rate_limit"
  http_method: POST
  request_headers: {X-Api-Version: "v-{{ config['version'] }}"}"#;
    let selective = format!(
        "type: SelectiveAuthenticator\nauthenticator_selection_path: [mode]\nauthenticators:\n  quotas:\n{}\n  none: {{type: NoAuth}}",
        indent(&auth_with(head, "", ""), 4)
    );
    let yaml = one_stream(
        "/items",
        &format!("authenticator:\n{}", indent(&selective, 2)),
        "",
        "",
    );
    let mut config = config(&server, "t1");
    config["version"] = json!(2024);
    config["mode"] = json!("quotas");
    let out = manifest(&yaml).read(&config, &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
}
