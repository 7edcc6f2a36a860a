//! The acceptance suite on the example manifests (`manifests/`), each against a fake of its
//! API on a local wiremock server, with the fixtures of `integration_tests/<manifest>/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cdk::testing::acceptance::SourceSuite;
use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::*;

fn root(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn fixture(dir: &str, name: &str) -> Value {
    let path = root(&format!("integration_tests/{dir}/{name}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn suite(dir: &str, manifest: &str, config: Value, invalid: Value) -> SourceSuite {
    SourceSuite {
        bin: BIN.into(),
        config,
        invalid_config: invalid,
        catalog: fixture(dir, "configured_catalog.json"),
        future_state: Some(fixture(dir, "abnormal_state.json")),
        extra_args: vec![
            "--manifest-path".into(),
            root(&format!("manifests/{manifest}")).display().to_string(),
        ],
        ..SourceSuite::default()
    }
}

fn page_params(r: &Request) -> (usize, usize) {
    let page = query(r, "page").map_or(1, |p| p.parse().unwrap());
    let per_page = query(r, "per_page").map_or(50, |p| p.parse().unwrap());
    (page, per_page)
}

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The issue tracker: 55 projects (two pages), a milestone each, 180 issues every 12 hours
/// from 2024-01-01 (filtered by `updated_since`/`updated_until`). Bearer `good-token` only.
async fn issue_tracker() -> MockServer {
    let server = MockServer::start().await;
    let authorized = || matchers::header("Authorization", "Bearer good-token");
    Mock::given(matchers::path("/projects"))
        .and(authorized())
        .respond_with(|r: &Request| {
            let (page, per_page) = page_params(r);
            let data: Vec<Value> = (1..=55usize)
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|i| json!({"id": i, "name": format!("project {i}"), "created_at": "2023-06-01T00:00:00Z"}))
                .collect();
            json_response(json!({ "data": data }))
        })
        .mount(&server)
        .await;
    Mock::given(matchers::path_regex(r"^/projects/\d+/milestones$"))
        .and(authorized())
        .respond_with(|r: &Request| {
            let p: i64 = r.url.path().split('/').nth(2).unwrap().parse().unwrap();
            json_response(json!({"data": [{"id": p * 100, "title": format!("v{p}"), "due_on": "2024-12-31"}]}))
        })
        .mount(&server)
        .await;
    Mock::given(matchers::path("/issues"))
        .and(authorized())
        .respond_with(|r: &Request| {
            let since = query(r, "updated_since").map(|s| ts(&s));
            let until = query(r, "updated_until").map(|s| ts(&s));
            let (page, per_page) = page_params(r);
            let start = ts("2024-01-01T00:00:00Z");
            let data: Vec<Value> = (0..180i64)
                .map(|i| (i, start + TimeDelta::hours(12 * i)))
                .filter(|(_, t)| since.is_none_or(|s| *t >= s) && until.is_none_or(|u| *t <= u))
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|(i, t)| json!({
                    "id": i + 1, "project_id": i % 55 + 1, "title": format!("issue {}", i + 1), "state": "open",
                    "updated_at": t.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "internal_notes": "do not export"
                }))
                .collect();
            json_response(json!({ "data": data }))
        })
        .mount(&server)
        .await;
    Mock::given(matchers::any())
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_tracker_manifest_passes_the_acceptance_suite() {
    let server = issue_tracker().await;
    let mut config = fixture("issue_tracker", "config.json");
    config["base_url"] = json!(server.uri());
    config["api_token"] = json!("good-token");
    let mut invalid = fixture("issue_tracker", "invalid_config.json");
    invalid["base_url"] = json!(server.uri());

    let report = suite(
        "issue_tracker",
        "issue_tracker.yaml",
        config.clone(),
        invalid,
    )
    .run();
    println!("{}", report.table());
    report.assert_all_passed();

    // What the suite does not look at: every page of the parent, the transformations, and
    // the default concurrency.
    config.as_object_mut().unwrap().remove("num_workers");
    let m = Manifest {
        dir: tempfile::tempdir().unwrap(),
        path: root("manifests/issue_tracker.yaml"),
    };
    let out = m.read(&config, &["projects", "milestones", "issues"]);
    out.assert_success();
    assert_eq!(out.records_of("projects").len(), 55);
    assert_eq!(out.records_of("milestones").len(), 55);
    assert!(
        out.records_of("milestones")
            .iter()
            .any(|m| m["project_id"] == 55)
    );
    assert_eq!(out.records_of("issues").len(), 180);
    assert!(
        out.records_of("issues")
            .iter()
            .all(|i| i.get("internal_notes").is_none())
    );
}

/// The CRM: OAuth (client `cid`/`good-secret`, any refresh token, a new one each time),
/// 250 contacts (cursor in the body), 230 deals (Link header), 120 email events (API key,
/// cursor in a header; every 10th has no recipient).
async fn crm() -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let refreshes = Arc::new(AtomicUsize::new(0));
    let r = refreshes.clone();
    serve_post(&server, "/oauth/token", move |req: &Request| {
            let get = |k: &str| form_field(req, k).unwrap_or_default();
            if get("client_id") != "cid" || get("client_secret") != "good-secret" || get("refresh_token").is_empty() {
                return ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}));
            }
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            json_response(json!({"access_token": format!("crm-at-{n}"), "expires_in": 1800, "refresh_token": format!("crm-rt-{n}")}))
        }).await;
    let bearer = |req: &Request| {
        req.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer crm-at-"))
    };
    serve(&server, "/crm/v3/contacts", move |r: &Request| {
            if !bearer(r) {
                return ResponseTemplate::new(401);
            }
            let after: usize = query(r, "after").map_or(0, |a| a.parse().unwrap());
            let limit: usize = query(r, "limit").map_or(10, |l| l.parse().unwrap());
            let since = query(r, "updated_after").map(|s| ts(&s));
            let start = ts("2024-01-01T00:00:00Z");
            let all: Vec<Value> = (0..250i64)
                .map(|i| (i, start + TimeDelta::minutes(90 * i) + TimeDelta::milliseconds(123)))
                .filter(|(_, t)| since.is_none_or(|s| *t >= s))
                .map(|(i, t)| json!({"id": format!("c{i}"), "email": format!("c{i}@example.com"), "updated_at": t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()}))
                .collect();
            let page: Vec<Value> = all.iter().skip(after).take(limit).cloned().collect();
            let mut body = json!({ "results": page });
            if after + limit < all.len() {
                body["paging"] = json!({"next": {"after": (after + limit).to_string()}});
            }
            json_response(body)
        }).await;
    let base = server.uri();
    serve(&server, "/crm/v3/deals", move |r: &Request| {
            if !bearer(r) {
                return ResponseTemplate::new(401);
            }
            let from: usize = query(r, "page_after").map_or(0, |a| a.parse().unwrap());
            let limit: usize = query(r, "limit").unwrap().parse().unwrap();
            let data: Vec<Value> = (from..(from + limit).min(230))
                .map(|i| json!({"id": format!("d{i}"), "name": format!("deal {i}"), "amount": i as f64 + 0.25}))
                .collect();
            let mut resp = json_response(json!({ "results": data }));
            if from + limit < 230 {
                let next = format!("{base}/crm/v3/deals?limit={limit}&page_after={}", from + limit);
                resp = resp.insert_header("Link", format!("<{next}>; rel=\"next\"").as_str());
            }
            resp
        }).await;
    Mock::given(matchers::path("/analytics/v1/events"))
        .and(matchers::header("X-Api-Key", "good-key"))
        .and(matchers::query_param("type", "email"))
        .respond_with(|r: &Request| {
            let from: usize = query(r, "cursor").map_or(0, |c| c.parse().unwrap());
            let events: Vec<Value> = (from..(from + 40).min(120))
                .map(|i| json!({"id": format!("e{i}"), "kind": "open", "recipient": if i % 10 == 0 { Value::Null } else { json!(format!("r{i}@example.com")) }}))
                .collect();
            let mut resp = json_response(json!({ "events": events }));
            if from + 40 < 120 {
                resp = resp.insert_header("X-Next-Cursor", (from + 40).to_string().as_str());
            }
            resp
        })
        .mount(&server)
        .await;
    Mock::given(matchers::any())
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(&server)
        .await;
    (server, refreshes)
}

fn crm_config(server: &MockServer, file: &str) -> Value {
    let mut config = fixture("crm", file);
    config["base_url"] = json!(server.uri());
    config["credentials"]["client_id"] = json!("cid");
    if file == "config.json" {
        config["credentials"]["client_secret"] = json!("good-secret");
    }
    config["credentials"]["refresh_token"] = json!("crm-rt-0");
    config["analytics_api_key"] = json!("good-key");
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn crm_manifest_passes_the_acceptance_suite() {
    let (server, refreshes) = crm().await;
    let config = crm_config(&server, "config.json");
    let invalid = crm_config(&server, "invalid_config.json");
    let report = suite("crm", "crm.yaml", config.clone(), invalid).run();
    println!("{}", report.table());
    report.assert_all_passed();

    let m = Manifest {
        dir: tempfile::tempdir().unwrap(),
        path: root("manifests/crm.yaml"),
    };
    let before = refreshes.load(Ordering::SeqCst);
    let out = m.read(&config, &["contacts", "deals", "email_events"]);
    out.assert_success();
    assert_eq!(
        refreshes.load(Ordering::SeqCst),
        before + 1,
        "one refresh shared by the OAuth streams"
    );
    assert_eq!(out.records_of("contacts").len(), 250);
    let deals = out.records_of("deals");
    assert_eq!(deals.len(), 230);
    assert_eq!(deals[3]["amount_cents"], 325);
    let events = out.records_of("email_events");
    assert_eq!(
        events.len(),
        108,
        "events without a recipient are filtered out"
    );
    assert!(
        events
            .iter()
            .all(|e| e.get("recipient").is_none()
                && e["recipient_hash"].as_str().unwrap().len() == 64)
    );
    let control = controls(&out);
    assert_eq!(control.len(), 1);
    assert_eq!(
        control[0]["connectorConfig"]["config"]["credentials"]["refresh_token"],
        format!("crm-rt-{}", before + 1)
    );
}
