//! Parity of the retriever's answers to refused requests (`manifests/shipments.yaml`): a page
//! too big for the API is asked again smaller (`REDUCE_PAGE_SIZE`), a window too long is read
//! again in halves (`SPLIT_REQUEST_WINDOW`), and `pagination_reset` restarts a slice from the
//! highest cursor value read. The routes are mounted by `api::start`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cdk::testing::http::{Request, ResponseTemplate};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::api::{API_KEY, Variant};
use crate::reads::parity;

/// The largest page and the longest window `/shipments` accepts.
const MAX_PAGE: usize = 4;
const MAX_WINDOW_DAYS: i64 = 4;

/// Every request to these routes: whether Airbyte's engine sent it (its user agent is
/// python-requests'), and its query parameters in a fixed order. Only the test below reads them.
static SEEN: Mutex<Vec<(bool, String)>> = Mutex::new(Vec::new());

fn log(req: &Request) {
    let theirs = req
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("python-requests"));
    let mut params: Vec<String> = req
        .url
        .query_pairs()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    params.sort();
    let line = format!("{} {}", req.url.path(), params.join("&"));
    SEEN.lock().expect("lock").push((theirs, line));
}

/// How often each engine sent each request.
fn requests_by_engine() -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let (mut ours, mut theirs) = (BTreeMap::new(), BTreeMap::new());
    for (python, line) in SEEN.lock().expect("lock").iter() {
        let side = if *python { &mut theirs } else { &mut ours };
        *side.entry(line.clone()).or_insert(0) += 1;
    }
    (ours, theirs)
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn at(req: &Request, key: &str) -> Option<DateTime<Utc>> {
    let v = req.url.query_pairs().find(|(k, _)| k == key)?.1;
    DateTime::parse_from_rfc3339(&v)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn number(req: &Request, key: &str, default: usize) -> usize {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": message }))
}

/// Shipments 1..=40, one every 11 hours from 2024-01-01.
pub fn shipments() -> Vec<Value> {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    (1..=40_i64)
        .map(|i| json!({"id": i, "weight": i * 3, "updated_at": time(start + Duration::hours(11 * (i - 1)))}))
        .collect()
}

/// Parcels 1..=12, one a day at noon from 2024-01-01.
pub fn parcels() -> Vec<Value> {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
    (1..=12_i64)
        .map(|i| json!({"id": i, "updated_at": time(start + Duration::days(i - 1))}))
        .collect()
}

fn in_window(all: &[Value], since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Vec<&Value> {
    all.iter()
        .filter(|s| {
            let t = DateTime::parse_from_rfc3339(s["updated_at"].as_str().unwrap_or_default())
                .map(|t| t.with_timezone(&Utc));
            t.is_ok_and(|t| since <= t && until.is_none_or(|u| t <= u))
        })
        .collect()
}

fn authorized(req: &Request) -> bool {
    req.headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY)
}

/// `/shipments?since&until&offset&limit`: 400 for a window longer than 4 days, 413 for a page
/// of more than 4.
pub fn shipments_page(req: &Request) -> ResponseTemplate {
    log(req);
    if !authorized(req) {
        return error(401, "bad api key");
    }
    let (Some(since), Some(until)) = (at(req, "since"), at(req, "until")) else {
        return error(422, "since and until are required");
    };
    if until - since > Duration::days(MAX_WINDOW_DAYS) {
        return error(400, "window too large");
    }
    let (offset, limit) = (number(req, "offset", 0), number(req, "limit", 10));
    if limit > MAX_PAGE {
        return error(413, "page too large");
    }
    let all = shipments();
    let data: Vec<&Value> = in_window(&all, since, Some(until))
        .into_iter()
        .skip(offset)
        .take(limit)
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
}

/// `/parcels?since&offset`: pages of 3 from `since`, in cursor order.
pub fn parcels_page(req: &Request) -> ResponseTemplate {
    log(req);
    if !authorized(req) {
        return error(401, "bad api key");
    }
    let Some(since) = at(req, "since") else {
        return error(422, "since is required");
    };
    let all = parcels();
    let data: Vec<&Value> = in_window(&all, since, None)
        .into_iter()
        .skip(number(req, "offset", 0))
        .take(3)
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
}

#[tokio::test(flavor = "multi_thread")]
async fn shipments_reduce_page_size_split_request_window_pagination_reset() {
    let records = parity(
        "shipments.yaml",
        Variant::Standard,
        &[
            ("shipments", Some("updated_at")),
            ("parcels", Some("updated_at")),
        ],
    )
    .await;
    // Every shipment once (up to 2024-01-19), read in pages of 2 from windows of 2.5 days.
    let until = "2024-01-19T00:00:00Z";
    let expected = shipments()
        .iter()
        .filter(|s| s["updated_at"].as_str().unwrap_or_default() <= until)
        .count();
    assert_eq!(records.get("shipments").map_or(0, Vec::len), expected);
    // The 6th and 11th parcels twice: a slice restarts at them after 6 records.
    assert_eq!(records.get("parcels").map_or(0, Vec::len), 12 + 2);
    // Both engines asked for the same pages and windows, as often: the refused ones included.
    let (ours, theirs) = requests_by_engine();
    assert_eq!(ours, theirs);
    let refused_page = "/shipments limit=10&since=2024-01-01T00:00:00Z&until=2024-01-03T11:59:59Z";
    let smaller_page =
        "/shipments limit=2&offset=2&since=2024-01-01T00:00:00Z&until=2024-01-03T11:59:59Z";
    let split_window = "/shipments limit=10&since=2024-01-01T00:00:00Z&until=2024-01-05T23:59:59Z";
    let restarted = "/parcels since=2024-01-06T12:00:00Z";
    for request in [refused_page, smaller_page, split_window, restarted] {
        assert!(ours.contains_key(request), "{request} not in {ours:#?}");
    }
}
