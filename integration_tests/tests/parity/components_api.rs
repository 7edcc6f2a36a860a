//! The fake API's endpoints for the component cases (`components.rs`): teams with members and
//! notes (substreams), a ledger of ids, a newest-first feed, six-hourly readings, a snapshot and
//! its changes, files in several formats, signed and selected requests, a metered endpoint, a
//! pagination that expires once per client, and tables whose rows become streams.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::api::{API_KEY, TOKEN};

fn query(req: &Request, key: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
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

fn data(items: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "data": items }))
}

/// Which engine sent a request (the two send different user agents).
fn client(req: &Request) -> String {
    header(req, "user-agent").unwrap_or_default()
}

/// The items whose `updated_at` is at or after the `since` parameter (all without one).
fn since(items: Vec<Value>, req: &Request) -> Vec<Value> {
    let since = query(req, "since").unwrap_or_default();
    items
        .into_iter()
        .filter(|i| i["updated_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect()
}

/// The number in the path after `prefix/` (`/teams/3/members` → 3 with `teams`).
fn id_after(req: &Request, prefix: &str) -> Option<i64> {
    let mut parts = req.url.path().split('/');
    parts.find(|p| *p == prefix)?;
    parts.next()?.parse().ok()
}

/// Teams 1..=4 (`code` the id as text), updated on February `t`.
pub fn teams() -> Vec<Value> {
    (1..=4)
        .map(|t| json!({"id": t, "code": t.to_string(), "name": format!("team {t}"), "updated_at": format!("2024-02-{t:02}T00:00:00Z")}))
        .collect()
}

/// Three members of team `t`, updated on March `t + j`.
pub fn members(t: i64) -> Vec<Value> {
    (0..3)
        .map(|j| json!({"id": t * 10 + j, "team": t, "updated_at": format!("2024-03-{:02}T00:00:00Z", t + j)}))
        .collect()
}

/// Two notes of team `t`, updated on April `2t + j`.
pub fn notes(t: i64) -> Vec<Value> {
    (0..2)
        .map(|j| json!({"id": t * 100 + j, "text": format!("note {j}"), "updated_at": format!("2024-04-{:02}T00:00:00Z", 2 * t + j)}))
        .collect()
}

/// `/batches?ids=t1,t2&since`: one record per id of the batch, with the batch it came in,
/// updated on August `n` for an id ending in `n`.
fn batches(req: &Request) -> ResponseTemplate {
    let ids = query(req, "ids").unwrap_or_default();
    let items = ids
        .split(',')
        .filter(|i| !i.is_empty())
        .map(|i| {
            let day: u32 = i
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap_or(1);
            json!({"key": i, "batch": ids, "updated_at": format!("2024-08-{day:02}T00:00:00Z")})
        })
        .collect();
    data(since(items, req))
}

/// Ledger entries 1..=12 (out of order), those above `since_id`.
fn ledger(req: &Request) -> ResponseTemplate {
    let after: i64 = query(req, "since_id")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ids = [3, 1, 2, 6, 5, 4, 9, 7, 8, 12, 10, 11];
    data(
        ids.iter()
            .filter(|i| **i > after)
            .map(|i| json!({"id": i, "memo": format!("entry {i}")}))
            .collect(),
    )
}

/// `/feed?page`: entries of May 24 down to May 1, newest first, five a page.
fn feed(req: &Request) -> ResponseTemplate {
    let page: i64 = query(req, "page").and_then(|v| v.parse().ok()).unwrap_or(1);
    data(
        (0..5)
            .map(|i| 24 - ((page - 1) * 5 + i))
            .filter(|d| *d >= 1)
            .map(|d| json!({"id": d, "updated_at": format!("2024-05-{d:02}T00:00:00Z")}))
            .collect(),
    )
}

/// `/readings?from&to`: a reading every six hours of June 2024, those within the bounds.
fn readings(req: &Request) -> ResponseTemplate {
    let start = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let (from, to) = (
        query(req, "from").unwrap_or_default(),
        query(req, "to").unwrap_or_else(|| "9".into()),
    );
    data(
        (0..120)
            .map(|i| {
                let at = (start + Duration::hours(6 * i))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                json!({"id": i, "value": i % 7, "updated_at": at})
            })
            .filter(|r| {
                let at = r["updated_at"].as_str().unwrap_or_default();
                from.as_str() <= at && at <= to.as_str()
            })
            .collect(),
    )
}

/// Catalogue items 1..=6, updated on July `i`.
fn catalogue() -> Vec<Value> {
    (1..=6)
        .map(|i| json!({"id": i, "sku": format!("s{i}"), "updated_at": format!("2024-07-{i:02}T00:00:00Z")}))
        .collect()
}

/// Quoted fields with the delimiter and a line break, an empty value, a short row.
const CSV: &str = "id;name;note\n1;Ann;n/a\n2;\"Bob; Jr.\";\"two\nlines\"\n3;Cy;\n4;Dee\n";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// A zip of two JSON Lines files.
fn zipped() -> Vec<u8> {
    // A stored (uncompressed) zip written by hand: local headers, then the central directory.
    let files = [
        (
            "a.jsonl",
            "{\"id\": 1, \"part\": \"a\"}\n{\"id\": 2, \"part\": \"a\"}\n",
        ),
        ("b.jsonl", "{\"id\": 3, \"part\": \"b\"}\n"),
    ];
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, text) in files {
        let crc = crc32(text.as_bytes());
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&0u16.to_le_bytes()); // time
            v.extend_from_slice(&0x21u16.to_le_bytes()); // date (1980-01-01)
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(text.len() as u32).to_le_bytes());
            v.extend_from_slice(&(text.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(text.as_bytes());
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (at, size) = (out.len() as u32, central.len() as u32);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut h = flate2::Crc::new();
    h.update(bytes);
    h.sum()
}

/// Attributes, repeated elements, text beside attributes, an empty element, padded text and a
/// namespace prefix.
const XML: &str = r#"<?xml version="1.0"?><feed xmlns:x="urn:x"><entry id="7"><title>A &amp; B</title><tag>x</tag><tag>y</tag></entry><entry id="8"><title lang="en">C</title><empty/><n>  padded  </n><x:meta>m</x:meta></entry></feed>"#;

/// Records of loose types, cast by schema normalization.
fn typed() -> Value {
    json!({"data": [
        {"id": "1", "price": "9.50", "count": 3.9, "flag": "true", "tags": "solo", "note": 42, "keep": "x"},
        {"id": 2, "price": 7, "count": "many", "flag": "maybe", "tags": ["a"], "note": null, "keep": 1},
        {"id": "3", "price": null, "count": "12", "flag": false, "tags": [1, 2], "note": true}
    ]})
}

/// Records whose casts are Python's (`int(" 12 ")`, `str({"a": 1})`, `strtobool("off")`, ...).
fn typed_edges() -> Value {
    json!({"data": [
        {"id": " 12 ", "n": "1e3", "i": "3.0", "b": "yes", "s": {"a": 1, "b": [true, null]}, "arr": 5,
         "obj": {"x": "7", "deep": {"y": 1}}, "items": ["1", 2, "x"]},
        {"id": true, "n": " 2.5 ", "i": "1_000", "b": "off", "s": 1.0, "arr": {"k": 1},
         "obj": {"x": 7.5}, "items": []},
        {"id": 3.9, "n": true, "i": false, "b": 0, "s": [1, "a", 2.5], "arr": null, "obj": "str",
         "items": [null, "-4"]},
        {"id": -7, "n": "x", "i": "", "b": "", "s": false, "arr": "one", "obj": {"deep": "z"},
         "items": "5"}
    ]})
}

/// Baskets with their lines, one without lines, one marked truncated.
fn baskets() -> Value {
    json!({"data": [
        {"basket": "b1", "owner": {"name": "Ann"}, "lines": [{"id": 1, "qty": 2}, {"id": 2, "qty": 1}]},
        {"basket": "b2", "owner": {"name": "Bob"}, "lines": []},
        {"basket": "b3", "owner": {"name": "Cy"}, "truncated": true, "lines": [{"id": 3, "qty": 5, "basket": "own"}]}
    ]})
}

/// `/signed`: a JWT signed with HS256 by `TOKEN`, from issuer `API_KEY` for audience `api`,
/// valid for ten minutes, with the `kid` header; `/signed_b64` the same signed with HS512 by
/// `TOKEN` in base64.
fn signed(secret: &[u8], alg: jsonwebtoken::Algorithm, req: &Request) -> ResponseTemplate {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let auth = header(req, "authorization").unwrap_or_default();
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return error(401, "no bearer token");
    };
    let Ok(h) = decode_header(token) else {
        return error(401, "not a JWT");
    };
    if h.alg != alg || h.kid.as_deref() != Some("key-1") {
        return error(401, "bad JWT header");
    }
    let mut v = Validation::new(alg);
    v.set_audience(&["api"]);
    v.set_issuer(&[API_KEY]);
    let Ok(key) = DecodingKey::from_secret(secret) else {
        return error(500, "key");
    };
    let Ok(claims) = decode::<Value>(token, &key, &v).map(|d| d.claims) else {
        return error(401, "bad JWT signature or claims");
    };
    let lifetime = claims["exp"].as_i64().zip(claims["iat"].as_i64());
    if lifetime.map(|(e, i)| e - i) != Some(600) || claims["scope"] != "read" {
        return error(401, "bad JWT lifetime or scope");
    }
    data((1..=3).map(|i| json!({"id": i, "via": "jwt"})).collect())
}

/// The RSA key pair `/signed_rsa` checks (source-rest-api's throwaway test key).
pub fn rsa_key(which: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../connectors/source-rest-api/tests/it/fixtures")
        .join(format!("jwt_test_rsa.{which}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `/signed_rsa?jwt`: a JWT signed with RS256 by `rsa_key("pem")`, subject `API_KEY`, valid
/// for five minutes, with the `x5t` header.
fn signed_rsa(public: &[u8], req: &Request) -> ResponseTemplate {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    let token = query(req, "jwt").unwrap_or_default();
    let Ok(h) = decode_header(&token) else {
        return error(401, "no JWT");
    };
    if h.alg != Algorithm::RS256 || h.x5t.as_deref() != Some("thumb") {
        return error(401, "bad JWT header");
    }
    let Ok(key) = DecodingKey::from_rsa_pem(public) else {
        return error(500, "key");
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.set_required_spec_claims(&["exp", "sub"]);
    v.sub = Some(API_KEY.to_string());
    let Ok(claims) = decode::<Value>(&token, &key, &v).map(|d| d.claims) else {
        return error(401, "bad JWT signature or claims");
    };
    let lifetime = claims["exp"].as_i64().zip(claims["iat"].as_i64());
    if lifetime.map(|(e, i)| e - i) != Some(300) || req.headers.contains_key("authorization") {
        return error(401, "bad JWT lifetime, or an Authorization header");
    }
    data((1..=2).map(|i| json!({"id": i, "via": "rs256"})).collect())
}

/// `/selected`: the API key in `X-Api-Key` (what the config's credentials select).
fn selected(req: &Request) -> ResponseTemplate {
    match header(req, "x-api-key").as_deref() == Some(API_KEY)
        && header(req, "authorization").is_none()
    {
        true => data((1..=2).map(|i| json!({"id": i, "via": "key"})).collect()),
        false => error(401, "bad api key"),
    }
}

/// `/metered?k`: fails when a client sends three requests within 0.6 s (the budget allows two
/// a second).
fn metered(times: &Mutex<HashMap<String, Vec<Instant>>>, req: &Request) -> ResponseTemplate {
    let now = Instant::now();
    let mut times = times.lock().expect("lock");
    let seen = times.entry(client(req)).or_default();
    seen.push(now);
    let n = seen.len();
    if n >= 3 && now.duration_since(seen[n - 3]).as_millis() < 600 {
        return error(400, "over the rate limit");
    }
    let k = query(req, "k").unwrap_or_default();
    data(vec![json!({"k": k, "n": k.len()})])
}

/// `/expiring?page`: two records on pages 1 and 2, one on 3; the first request of each client
/// for page 2 answers that the cursor expired.
fn expiring(seen: &Mutex<Vec<String>>, req: &Request) -> ResponseTemplate {
    let page: i64 = query(req, "page").and_then(|v| v.parse().ok()).unwrap_or(1);
    if page == 2 {
        let mut seen = seen.lock().expect("lock");
        let who = client(req);
        if !seen.contains(&who) {
            seen.push(who);
            return error(400, "cursor expired");
        }
    }
    let n = if page <= 2 { 2 } else { 1 };
    data(
        (0..n)
            .map(|j| json!({"id": page * 10 + j, "page": page}))
            .collect(),
    )
}

/// `/tables`: the tables whose rows are dynamic streams.
fn tables() -> Value {
    json!({"tables": [{"name": "alpha", "id": 1, "key": "id"}, {"name": "beta", "id": 2, "key": "table"}]})
}

/// `/tables/<id>/rows?label`: `id + 1` rows, with the label when one is asked for.
fn rows(req: &Request) -> ResponseTemplate {
    let Some(t) = id_after(req, "tables") else {
        return error(404, "no such table");
    };
    let label = query(req, "label");
    let rows: Vec<Value> = (0..=t)
        .map(|j| json!({"id": t * 10 + j, "table": t, "label": label}))
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({ "rows": rows }))
}

async fn mount_json(server: &MockServer, path: &str, body: Value) {
    Mock::given(matchers::path(path))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

async fn mount_raw(server: &MockServer, path: &str, body: Vec<u8>, content_type: &str) {
    Mock::given(matchers::path(path))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, content_type))
        .mount(server)
        .await;
}

/// Mounts the component cases' endpoints on `server`.
pub async fn mount(server: &MockServer) {
    Mock::given(matchers::path("/teams"))
        .respond_with(|req: &Request| data(since(teams(), req)))
        .mount(server)
        .await;
    Mock::given(matchers::path_regex(r"^/teams/\d+/members$"))
        .respond_with(|req: &Request| match id_after(req, "teams") {
            Some(t) => data(since(members(t), req)),
            None => error(404, "no such team"),
        })
        .mount(server)
        .await;
    Mock::given(matchers::path_regex(r"^/teams/\d+/notes$"))
        .respond_with(|req: &Request| match id_after(req, "teams") {
            Some(t) => data(since(notes(t), req)),
            None => error(404, "no such team"),
        })
        .mount(server)
        .await;
    Mock::given(matchers::path("/batches"))
        .respond_with(batches)
        .mount(server)
        .await;
    Mock::given(matchers::path("/ledger"))
        .respond_with(ledger)
        .mount(server)
        .await;
    Mock::given(matchers::path("/feed"))
        .respond_with(feed)
        .mount(server)
        .await;
    Mock::given(matchers::path("/readings"))
        .respond_with(readings)
        .mount(server)
        .await;
    mount_json(server, "/snapshot", json!({"data": catalogue()})).await;
    Mock::given(matchers::path("/changes"))
        .respond_with(|req: &Request| match query(req, "since") {
            Some(_) => data(since(catalogue(), req)),
            None => error(400, "since is required"),
        })
        .mount(server)
        .await;
    mount_raw(server, "/export.csv", CSV.as_bytes().to_vec(), "text/csv").await;
    mount_raw(
        server,
        "/export.csv.gz",
        gzip(CSV.as_bytes()),
        "application/gzip",
    )
    .await;
    // "id,name\n1,Zoë\n2,Ñu\n" in latin-1.
    let latin = b"id,name\n1,Zo\xebn\n2,\xd1u\n".to_vec();
    mount_raw(server, "/export_latin1.csv", latin, "text/csv").await;
    mount_raw(server, "/export.zip", zipped(), "application/zip").await;
    mount_raw(
        server,
        "/feed.xml",
        XML.as_bytes().to_vec(),
        "application/xml",
    )
    .await;
    mount_raw(
        server,
        "/lines.txt",
        b"alpha\n\nbeta\r\ngamma".to_vec(),
        "text/plain",
    )
    .await;
    mount_json(
        server,
        "/report.json",
        json!({"meta": {"count": 2}, "report": {"rows": [{"id": 1, "v": 1.5}, {"id": 2, "v": 2}]}}),
    )
    .await;
    mount_json(server, "/typed", typed()).await;
    mount_json(server, "/typed_edges", typed_edges()).await;
    mount_json(server, "/baskets", baskets()).await;
    Mock::given(matchers::path("/signed"))
        .respond_with(|req: &Request| signed(TOKEN.as_bytes(), jsonwebtoken::Algorithm::HS256, req))
        .mount(server)
        .await;
    let secret = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, TOKEN);
    Mock::given(matchers::path("/signed_b64"))
        .respond_with(move |req: &Request| {
            signed(secret.as_bytes(), jsonwebtoken::Algorithm::HS512, req)
        })
        .mount(server)
        .await;
    let public = rsa_key("pub").into_bytes();
    Mock::given(matchers::path("/signed_rsa"))
        .respond_with(move |req: &Request| signed_rsa(&public, req))
        .mount(server)
        .await;
    Mock::given(matchers::path("/selected"))
        .respond_with(selected)
        .mount(server)
        .await;
    let times = Mutex::new(HashMap::new());
    Mock::given(matchers::path("/metered"))
        .respond_with(move |req: &Request| metered(&times, req))
        .mount(server)
        .await;
    let seen = Mutex::new(Vec::new());
    Mock::given(matchers::path("/expiring"))
        .respond_with(move |req: &Request| expiring(&seen, req))
        .mount(server)
        .await;
    mount_json(server, "/tables", tables()).await;
    Mock::given(matchers::path_regex(r"^/tables/\d+/rows$"))
        .respond_with(rows)
        .mount(server)
        .await;
}
