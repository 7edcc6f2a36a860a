//! The fake API of `properties_files.rs`, on its own local server: `/props` answers records
//! with only the properties a request asks for (`query_properties.yaml`), `/files` lists
//! documents and attachments and serves their files (`files.yaml`).

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Map, Value, json};

/// The API key `/files/raw/*` wants in `X-Key`.
pub const FILES_KEY: &str = "files-key-7";

/// Properties the deals have besides `id`.
const KNOWN: &[&str] = &["a", "b", "c", "d", "e", "alpha", "beta"];

fn query(req: &Request, key: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": message }))
}

/// All deals, page by page: ids 1, 2 and one without an id, then 3 and 4.
fn deals() -> [Vec<Value>; 2] {
    let deal = |id: i64| {
        let mut d = json!({"id": id.to_string(), "nested": {"x": id, "y": -id}});
        for (i, k) in KNOWN.iter().enumerate() {
            d[*k] = json!(id * 10 + i as i64);
        }
        d
    };
    let mut keyless = deal(0);
    if let Some(m) = keyless.as_object_mut() {
        m.remove("id");
    }
    [vec![deal(1), deal(2), keyless], vec![deal(3), deal(4)]]
}

/// A deal with only `asked` of its properties; `nested` is split: `x` comes with `a`, `y`
/// with `b`.
fn pick(deal: &Value, asked: &[&str]) -> Value {
    let mut out = Map::new();
    for k in asked {
        if let Some(v) = deal.get(*k) {
            out.insert((*k).to_string(), v.clone());
        }
    }
    let mut nested = Map::new();
    for (k, part) in [("a", "x"), ("b", "y")] {
        if asked.contains(&k) {
            nested.insert(part.into(), deal["nested"][part].clone());
        }
    }
    if !nested.is_empty() {
        out.insert("nested".into(), Value::Object(nested));
    }
    Value::Object(out)
}

/// `/props/deals?properties=…&after=…`: at most three known properties a request.
fn deals_page(req: &Request) -> ResponseTemplate {
    let asked_text = query(req, "properties").unwrap_or_default();
    let asked: Vec<&str> = asked_text.split(',').filter(|p| !p.is_empty()).collect();
    if asked.len() > 3 {
        return error(400, &format!("at most 3 properties, got {asked_text}"));
    }
    if let Some(bad) = asked.iter().find(|p| **p != "id" && !KNOWN.contains(p)) {
        return error(400, &format!("unknown property {bad}"));
    }
    let second = query(req, "after").as_deref() == Some("page-2");
    let [first, rest] = deals();
    let page = if second { rest } else { first };
    let data: Vec<Value> = page.iter().map(|d| pick(d, &asked)).collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "data": data,
        "next": if second { Value::Null } else { json!("page-2") },
    }))
}

/// The bytes of file `n`: text for odd `n`, binary (not UTF-8) for even.
pub fn file_body(n: i64) -> Vec<u8> {
    match n % 2 {
        1 => format!("file {n}\nline two\n").into_bytes(),
        _ => vec![0, 159, 146, 150, n as u8, 255, b'\n'],
    }
}

/// Mounts `/props` and `/files` on `server`.
pub async fn mount(server: &MockServer) {
    let names: Vec<Value> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| json!({"name": n, "label": n.to_uppercase()}))
        .collect();
    Mock::given(matchers::path("/props/properties"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "results": names })))
        .mount(server)
        .await;
    Mock::given(matchers::path("/props/deals"))
        .respond_with(deals_page)
        .mount(server)
        .await;
    let base = server.uri();
    let documents: Vec<Value> = (1..=3)
        .map(|n| {
            json!({"id": n, "name": format!("doc-{n}.{}", if n % 2 == 1 { "txt" } else { "bin" }),
                   "links": {"download": format!("{base}/files/raw/{n}?inline=1")}, "size": null})
        })
        .collect();
    let attachments: Vec<Value> = (4..=5)
        .map(|n| json!({"id": n, "path": format!("/files/raw/{n}")}))
        .collect();
    Mock::given(matchers::path("/files/documents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": documents })))
        .mount(server)
        .await;
    Mock::given(matchers::path("/files/attachments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": attachments })))
        .mount(server)
        .await;
    Mock::given(matchers::path_regex(r"^/files/raw/\d+$"))
        .respond_with(|req: &Request| {
            let n: i64 = req
                .url
                .path()
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let keyed = req.headers.get("x-key").and_then(|v| v.to_str().ok()) == Some(FILES_KEY);
            // Attachments (4 and 5) need the key; documents come inline.
            if n >= 4 && !keyed {
                return error(401, "no key");
            }
            if n < 4 && query(req, "inline").as_deref() != Some("1") {
                return error(400, "documents are served inline");
            }
            ResponseTemplate::new(200).set_body_bytes(file_body(n))
        })
        .mount(server)
        .await;
}
