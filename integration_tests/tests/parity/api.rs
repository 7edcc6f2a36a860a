//! The fake API both engines read: deterministic orders (offset pages, date-window filter, API
//! key), projects and their tasks (cursor pages, bearer token), events (page numbers, basic
//! auth, required parameters and header) and regions (one object each, one archived).

use base64::Engine;
use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

/// The credentials the API accepts.
pub const API_KEY: &str = "k1";
pub const TOKEN: &str = "t1";

/// The data set served: the standard one, or one with a twist that shows an open difference.
#[derive(Clone, Copy, PartialEq)]
pub enum Variant {
    /// Orders cancelled (dropped by the orders manifest's record filter) only on the last
    /// non-empty page of each 30-day window, where a filter ends no pagination early whatever an
    /// engine counts; contacts' nested keys without dashes.
    Standard,
    /// Every third order cancelled: pages shortened by the filter in the middle of each window.
    EveryThirdCancelled,
    /// Contacts with dashes in nested keys too (`Profile.home-city`), for `KeysReplace`.
    NestedDashedKeys,
}

fn query(req: &Request, key: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn number(req: &Request, key: &str, default: usize) -> usize {
    query(req, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": message }))
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Orders 1..=57, one every 37 hours from 2024-01-01.
pub fn orders(variant: Variant) -> Vec<Value> {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    (1..=57_i64)
        .map(|i| {
            let dropped = match variant {
                Variant::EveryThirdCancelled => i % 3 == 0,
                _ => [12, 17, 33, 38, 51, 56].contains(&i),
            };
            let status = match (dropped, i % 2) {
                (true, _) => "cancelled",
                (false, 0) => "paid",
                _ => "pending",
            };
            json!({
                "id": i,
                "status": status,
                "amount": i as f64 * 1.25,
                "note": if i % 4 == 0 { Value::Null } else { json!(format!("n{i}")) },
                "internal": {"cost": i},
                "updated_at": time(start + Duration::hours(37 * (i - 1))),
            })
        })
        .collect()
}

/// `/orders?updated_since&updated_before&offset&limit`, with `X-Api-Key`.
fn orders_page(all: &[Value], req: &Request) -> ResponseTemplate {
    if header(req, "x-api-key").as_deref() != Some(API_KEY) {
        return error(401, "bad api key");
    }
    let bound = |k: &str| query(req, k).and_then(|v| parse_time(&v));
    let (Some(since), Some(before)) = (bound("updated_since"), bound("updated_before")) else {
        return error(400, "updated_since and updated_before are required");
    };
    let in_window: Vec<&Value> = all
        .iter()
        .filter(|o| {
            let t = parse_time(o["updated_at"].as_str().unwrap_or_default());
            t.is_some_and(|t| since <= t && t <= before)
        })
        .collect();
    let (offset, limit) = (number(req, "offset", 0), number(req, "limit", 10));
    let data: Vec<&Value> = in_window.into_iter().skip(offset).take(limit).collect();
    ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
}

/// Items in pages of 3 behind an opaque cursor (`c<offset>`), with the next cursor or null.
fn cursor_page(items: &[Value], req: &Request) -> ResponseTemplate {
    let offset = query(req, "cursor")
        .and_then(|c| c.strip_prefix('c').and_then(|n| n.parse().ok()))
        .unwrap_or(0_usize);
    let page: Vec<&Value> = items.iter().skip(offset).take(3).collect();
    let next = (offset + 3 < items.len()).then(|| format!("c{}", offset + 3));
    ResponseTemplate::new(200).set_body_json(json!({ "items": page, "next": next }))
}

fn bearer_ok(req: &Request) -> bool {
    header(req, "authorization").as_deref() == Some(&format!("Bearer {TOKEN}"))
}

/// Projects 1..=7 (odd ones without owner).
pub fn projects() -> Vec<Value> {
    (1..=7_i64)
        .map(|p| {
            let owner = if p % 2 == 1 {
                Value::Null
            } else {
                json!(format!("u{p}"))
            };
            json!({"id": p, "name": format!("p{p}"), "owner": owner})
        })
        .collect()
}

/// The tasks of project `p`: `p % 4` of them, 5 for project 3; two dated before 2024.
pub fn tasks(p: i64) -> Vec<Value> {
    let n = if p == 3 { 5 } else { p % 4 };
    let start = Utc.with_ymd_and_hms(2023, 12, 30, 12, 0, 0).unwrap();
    (0..n)
        .map(|j| {
            json!({
                "id": p * 100 + j,
                "title": format!("task {j} of p{p}"),
                "done": j % 2 == 0,
                "updated_at": time(start + Duration::days(j + p)),
            })
        })
        .collect()
}

/// Events 1..=23, every fifth with `extra` null.
pub fn events() -> Vec<Value> {
    (1..=23_i64)
        .map(|i| {
            let extra = if i % 5 == 0 {
                Value::Null
            } else {
                json!({"n": i})
            };
            json!({"id": i, "kind": "click", "at": format!("2024-02-{:02}", i), "extra": extra})
        })
        .collect()
}

/// `/events?kind=click&page&per_page` with basic auth and `X-Client: parity`.
fn events_page(all: &[Value], req: &Request) -> ResponseTemplate {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:{TOKEN}"));
    if header(req, "authorization") != Some(format!("Basic {basic}")) {
        return error(401, "bad credentials");
    }
    if query(req, "kind").as_deref() != Some("click") || header(req, "x-client").is_none() {
        return error(400, "kind and X-Client are required");
    }
    let (page, size) = (number(req, "page", 1), number(req, "per_page", 5));
    let results: Vec<&Value> = all.iter().skip((page - 1) * size).take(size).collect();
    ResponseTemplate::new(200).set_body_json(json!({ "results": results }))
}

/// `/regions/<code>`: one object, or 403 for the archived `old`.
fn region(req: &Request) -> ResponseTemplate {
    let code = req.url.path().rsplit('/').next().unwrap_or_default();
    let name = match code {
        "eu" => json!("Europe"),
        "us" => json!("United States"),
        "ap" => Value::Null,
        _ => return error(403, "region archived"),
    };
    ResponseTemplate::new(200).set_body_json(json!({"code": code, "name": name}))
}

/// The OAuth access token `/oauth/token` hands out for the client credentials.
pub const ACCESS_TOKEN: &str = "at-1";

/// `/oauth/token`: the client-credentials grant with `API_KEY:TOKEN` in the form body.
fn oauth_token(req: &Request) -> ResponseTemplate {
    // The values here need no percent-decoding.
    let body = String::from_utf8_lossy(&req.body);
    let has = |k: &str, v: &str| body.split('&').any(|kv| kv == format!("{k}={v}"));
    match has("grant_type", "client_credentials")
        && has("client_id", API_KEY)
        && has("client_secret", TOKEN)
    {
        true => ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3600})),
        false => error(401, "bad client credentials"),
    }
}

/// The contacts of segment `a` (7) and `b` (5), with mixed-case and dashed keys, nested
/// secrets and notes, epoch-seconds `Updated`; segment `c` does not exist (404).
pub fn contacts(segment: &str, variant: Variant) -> Option<Vec<Value>> {
    let (base, n) = match segment {
        "a" => (100, 7),
        "b" => (200, 5),
        _ => return None,
    };
    let tiers = [json!("gold"), json!("silver"), Value::Null];
    let city = match variant {
        Variant::NestedDashedKeys => "home-city",
        _ => "home_city",
    };
    Some(
        (0..n)
            .map(|i| {
                json!({
                    "Id": base + i,
                    "Full-Name": format!("Name {}", base + i),
                    "Tier": tiers[(i % 3) as usize],
                    "Updated": 1_704_067_200 + i * 3 * 86_400 + base,
                    "Profile": {"secret": "s3cr3t", city: format!("city {i}"),
                                "internal_note": "x", "meta": {"internal_note": "y", "k": i}},
                })
            })
            .collect(),
    )
}

/// `/contacts?segment&since&page`: bearer access token, 3 per page with a `Link` to the next,
/// one 429 (`Retry-After: 1`) on the first request of segment `b` from each client.
fn contacts_page(
    seen: &std::sync::Mutex<Vec<String>>,
    uri: &str,
    variant: Variant,
    req: &Request,
) -> ResponseTemplate {
    if header(req, "authorization") != Some(format!("Bearer {ACCESS_TOKEN}")) {
        return error(401, "bad access token");
    }
    let segment = query(req, "segment").unwrap_or_default();
    let Some(all) = contacts(&segment, variant) else {
        return error(404, "no such segment");
    };
    let client = format!("{segment} {:?}", header(req, "user-agent"));
    if segment == "b" {
        let mut seen = seen.lock().expect("lock");
        if !seen.contains(&client) {
            seen.push(client);
            return error(429, "slow down").insert_header("Retry-After", "1");
        }
    }
    let since: i64 = query(req, "since")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kept: Vec<&Value> = all
        .iter()
        .filter(|c| c["Updated"].as_i64().is_some_and(|u| u >= since))
        .collect();
    let page = number(req, "page", 1);
    let items: Vec<&Value> = kept.iter().skip((page - 1) * 3).take(3).copied().collect();
    let mut response = ResponseTemplate::new(200).set_body_json(json!({ "contacts": items }));
    if page * 3 < kept.len() {
        let next = format!(
            "<{uri}/contacts?segment={segment}&since={since}&page={}>; rel=\"next\"",
            page + 1
        );
        response = response.insert_header("Link", next.as_str());
    }
    response
}

/// Starts the API on a local port.
pub async fn start(variant: Variant) -> MockServer {
    let server = MockServer::start().await;
    let all = orders(variant);
    Mock::given(matchers::path("/orders"))
        .respond_with(move |req: &Request| orders_page(&all, req))
        .mount(&server)
        .await;
    let all = projects();
    Mock::given(matchers::path("/projects"))
        .respond_with(move |req: &Request| match bearer_ok(req) {
            true => cursor_page(&all, req),
            false => error(401, "bad token"),
        })
        .mount(&server)
        .await;
    Mock::given(matchers::path_regex(r"^/projects/\d+/tasks$"))
        .respond_with(move |req: &Request| {
            let p = req
                .url
                .path()
                .split('/')
                .nth(2)
                .and_then(|p| p.parse().ok());
            match (bearer_ok(req), p) {
                (true, Some(p)) => cursor_page(&tasks(p), req),
                _ => error(401, "bad token"),
            }
        })
        .mount(&server)
        .await;
    let all = events();
    Mock::given(matchers::path("/events"))
        .respond_with(move |req: &Request| events_page(&all, req))
        .mount(&server)
        .await;
    Mock::given(matchers::path_regex(r"^/regions/[a-z]+$"))
        .respond_with(region)
        .mount(&server)
        .await;
    Mock::given(matchers::path("/oauth/token"))
        .and(matchers::method("POST"))
        .respond_with(oauth_token)
        .mount(&server)
        .await;
    Mock::given(matchers::path("/shipments"))
        .respond_with(crate::actions::shipments_page)
        .mount(&server)
        .await;
    Mock::given(matchers::path("/parcels"))
        .respond_with(crate::actions::parcels_page)
        .mount(&server)
        .await;
    let (seen, uri) = (std::sync::Mutex::new(Vec::new()), server.uri());
    Mock::given(matchers::path("/contacts"))
        .respond_with(move |req: &Request| contacts_page(&seen, &uri, variant, req))
        .mount(&server)
        .await;
    crate::async_job::mount(&server).await;
    crate::components_api::mount(&server).await;
    crate::components2_api::mount(&server).await;
    crate::components2_api::mount_keys(&server).await;
    crate::components2_api::mount_nested(&server).await;
    server
}
