//! Parity of `RateLimitedMultipleTokenAuthenticator` (`manifests/live/quotas.yaml`): a fake API
//! of its own under `/quota` (its base URL replaces the shared API's in the config) that says
//! which token served each record and gives each token's calls left, so that both engines must
//! pick the same token for every request.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::api::Variant;
use crate::reads::{count, parity_with};

const ONE: &str = "tok-one";
const TWO: &str = "tok-two";

/// Records per stream (pages of two).
fn total(stream: &str) -> usize {
    match stream {
        "items" => 9,
        "reconciled" => 7,
        "limited" => 3,
        _ => 5,
    }
}

fn query(req: &Request, key: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Which token signed the request (`one`, `two`), from `Authorization` or `X-Token`.
fn signer(req: &Request) -> Option<&'static str> {
    let value = ["authorization", "x-token"]
        .iter()
        .find_map(|h| req.headers.get(*h).and_then(|v| v.to_str().ok()))?;
    match value {
        v if v == format!("Bearer {ONE}") || v == format!("token {ONE}") => Some("one"),
        v if v == format!("Bearer {TWO}") || v == format!("token {TWO}") => Some("two"),
        _ => None,
    }
}

fn epoch_in(secs: u64) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + secs
}

/// The clients (user agent, token) that read the `waiting` quotas already.
type Seen = Arc<Mutex<HashSet<(String, &'static str)>>>;

/// Each token's quotas, for the stream named by `for`.
fn status(seen: &Seen, req: &Request) -> ResponseTemplate {
    let Some(who) = signer(req) else {
        return ResponseTemplate::new(401).set_body_string("unknown token");
    };
    let stream = query(req, "for").unwrap_or_default();
    let (core, search) = match (stream.as_str(), who) {
        ("untracked", _) => {
            return ResponseTemplate::new(404).set_body_string("rate limiting is disabled");
        }
        ("rotating", "one") => (2, 0),
        ("searched", "one") => (0, 1),
        ("searched", _) => (0, 10),
        ("waiting", _) => {
            let agent = req
                .headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let first = seen
                .lock()
                .map(|mut s| s.insert((agent, who)))
                .unwrap_or(false);
            if first {
                return quotas(0, 0, epoch_in(1));
            }
            (5, 0)
        }
        _ => (100, 0),
    };
    quotas(core, search, epoch_in(3600))
}

/// A quota status body.
fn quotas(core: i64, search: i64, reset: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"resources": {
        "core": {"remaining": core, "reset": reset, "limit": 5000},
        "search": {"remaining": search, "reset": reset.to_string(), "limit": 30}
    }}))
}

/// A page of two records of `stream` (updated on successive days from 2024-02-01, the `since`
/// parameter applied), each saying who served it.
fn page(stream: &str, req: &Request) -> ResponseTemplate {
    let Some(who) = signer(req) else {
        return ResponseTemplate::new(401).set_body_string("unknown token");
    };
    if stream == "limited" && who == "one" {
        return ResponseTemplate::new(429)
            .insert_header("Retry-After", "3600")
            .set_body_string("slow down");
    }
    let since = query(req, "since").unwrap_or_default();
    let all: Vec<Value> = (1..=total(stream))
        .map(|id| json!({"id": id, "updated_at": format!("2024-02-{id:02}T00:00:00Z")}))
        .filter(|r| r["updated_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    let n: usize = query(req, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let data: Vec<Value> = all
        .into_iter()
        .skip((n - 1) * 2)
        .take(2)
        .map(|mut r| {
            r["served_by"] = json!(who);
            r["page"] = json!(n);
            r
        })
        .collect();
    let mut resp = ResponseTemplate::new(200).set_body_json(json!({ "data": data }));
    if stream == "reconciled" && who == "one" && n == 2 {
        resp = resp.insert_header("X-RateLimit-Remaining", "0");
    }
    resp
}

async fn start() -> MockServer {
    let server = MockServer::start().await;
    let seen = Seen::default();
    Mock::given(matchers::path("/quota/rate_limit"))
        .respond_with(move |req: &Request| status(&seen, req))
        .mount(&server)
        .await;
    for (path, stream) in [
        ("/quota/items", "items"),
        ("/quota/search", "searched"),
        ("/quota/reconciled", "reconciled"),
        ("/quota/limited", "limited"),
        ("/quota/untracked", "untracked"),
        ("/quota/waiting", "waiting"),
    ] {
        Mock::given(matchers::path(path))
            .respond_with(move |req: &Request| page(stream, req))
            .mount(&server)
            .await;
    }
    server
}

/// Who served each record of `stream`, by id.
fn served(records: &std::collections::BTreeMap<String, Vec<String>>, stream: &str) -> Vec<String> {
    let mut by_id: Vec<(i64, String)> = records
        .get(stream)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| serde_json::from_str::<Value>(r).ok())
                .map(|r| {
                    let id = r["id"].as_f64().unwrap_or_default() as i64;
                    (id, r["served_by"].as_str().unwrap_or_default().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    by_id.sort();
    by_id.into_iter().map(|(_, who)| who).collect()
}

/// RateLimitedMultipleTokenAuthenticator, TokenQuota, QuotaStatusSource: rotation as quotas run
/// out, pools matched by path, counts reconciled from a response header, a 429 retried on the
/// other token, untracked quotas taking turns, a wait for the reset when every token is spent.
#[tokio::test(flavor = "multi_thread")]
async fn token_quotas_rotate_match_reconcile_and_retry() {
    let server = start().await;
    let records = parity_with(
        "live/quotas.yaml",
        Variant::Standard,
        &[
            ("rotating", Some("updated_at")),
            ("searched", None),
            ("reconciled", None),
            ("limited", None),
            ("untracked", None),
            ("waiting", None),
        ],
        json!({"base_url": server.uri(), "tokens": format!(" {ONE} , {TWO} "),
               "tok_a": ONE, "tok_b": TWO}),
        None,
    )
    .await;
    for (stream, n) in [
        ("rotating", 9),
        ("searched", 5),
        ("reconciled", 7),
        ("limited", 3),
        ("untracked", 5),
        ("waiting", 5),
    ] {
        assert_eq!(
            count(&records, stream),
            n,
            "records of {stream}: {records:#?}"
        );
    }
    let (one, two) = ("one".to_string(), "two".to_string());
    let pages = |who: &[&String]| -> Vec<String> {
        who.iter()
            .flat_map(|w| [(*w).clone(), (*w).clone()])
            .collect()
    };
    let mut rotating = pages(&[&one, &one, &two, &two, &two]);
    rotating.truncate(9);
    assert_eq!(served(&records, "rotating"), rotating);
    let mut searched = pages(&[&one, &two, &two]);
    searched.truncate(5);
    assert_eq!(served(&records, "searched"), searched);
    let mut reconciled = pages(&[&one, &one, &two, &two]);
    reconciled.truncate(7);
    assert_eq!(served(&records, "reconciled"), reconciled);
    assert_eq!(served(&records, "limited"), vec![two.clone(); 3]);
    let mut untracked = pages(&[&one, &two, &one]);
    untracked.truncate(5);
    assert_eq!(served(&records, "untracked"), untracked);
    assert_eq!(served(&records, "waiting"), vec![one.clone(); 5]);
}
