//! The fake API's endpoints for the second set of component cases (`components2.rs`), all under
//! `/shapes`: records with keys to rename and nest to flatten, a body holding two lists, repos
//! and their issues, a GraphQL endpoint, an endpoint that asks each client once to wait, a
//! legacy session login, field descriptions for a dynamic schema, and records with two times.

use std::collections::HashSet;
use std::sync::Mutex;

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn data(items: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "data": items }))
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": message }))
}

async fn mount_json(server: &MockServer, path: &str, body: Value) {
    Mock::given(matchers::path(path))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// Profiles whose keys come in several cases, with nested objects and lists.
fn profiles() -> Value {
    json!([
        {"id": 1, "UserName": "a", "Meta": {"CreatedAt": "t", "HTTPCode": 200},
         "attrs": {"x": 1, "y": 2}, "tags": ["p", "q"]},
        {"id": 2, "userID": "b", "first name": "c", "last-name": "d", "already_snake": true,
         "Ünïcode Kéy": 1, "2FA": 2, "ABCDef": 3, "a__b": 4, "some.key": 5, "camelCase123Abc": 6,
         "__private": 7, "trailing_": 8, "mixed-Case_key Name": 9,
         "attrs": {"x": 3}, "tags": []},
    ])
}

/// The GraphQL query the `gql` stream must send.
pub const QUERY: &str = "query { items(owner: \"acme\") { id } }";

fn graphql(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match body == json!({"query": QUERY, "variables": {"first": 10}}) {
        true => data(json!([{"id": 1, "kind": "gql"}, {"id": 2, "kind": "gql"}])),
        false => error(400, &format!("unexpected body {body}")),
    }
}

/// The first request of each client (user agent) is told to retry in 0.3 seconds.
fn patient(seen: &Mutex<HashSet<String>>, req: &Request) -> ResponseTemplate {
    let who = header(req, "user-agent").unwrap_or_default();
    let first = seen.lock().map(|mut s| s.insert(who)).unwrap_or(false);
    match first {
        true => ResponseTemplate::new(429).set_body_json(json!({"error": {"retry_in": 0.3}})),
        false => data(json!([{"id": 1}, {"id": 2}, {"id": 3}])),
    }
}

/// `/shapes/legacy/validate` refuses every token but `session-1`; items need it.
fn session_ok(req: &Request) -> bool {
    header(req, "x-session").as_deref() == Some("session-1")
}

fn login(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match body == json!({"username": "ada", "password": "secret"}) {
        true => ResponseTemplate::new(200).set_body_json(json!({"token": "session-1"})),
        false => error(401, &format!("bad login {body}")),
    }
}

/// Records whose `touched_at` runs against their `updated_at`, those touched at or after the
/// `touched_since` parameter when given.
fn touched(req: &Request) -> ResponseTemplate {
    let since = req
        .url
        .query_pairs()
        .find(|(k, _)| k == "touched_since")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let items: Vec<Value> = (1..=6)
        .map(|i| {
            json!({"id": i, "updated_at": format!("2024-05-{:02}T00:00:00Z", 7 - i),
                        "touched_at": format!("2024-06-{:02}T00:00:00Z", i)})
        })
        .filter(|r| r["touched_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    data(Value::Array(items))
}

/// Mounts the endpoints of the second component cases on `server`.
pub async fn mount(server: &MockServer) {
    // Table 404 of the dynamic streams refuses its reader (ahead of `components_api`'s tables).
    Mock::given(matchers::path("/tables/404/rows"))
        .respond_with(error(401, "table 404 is not yours"))
        .with_priority(1)
        .mount(server)
        .await;
    mount_json(server, "/shapes/profiles", json!({"data": profiles()})).await;
    mount_json(
        server,
        "/shapes/mixed",
        json!({"issues": [{"id": 1}], "pulls": [{"id": 2}, {"id": 3}], "empty": []}),
    )
    .await;
    Mock::given(matchers::path("/shapes/paged"))
        .respond_with(|req: &Request| {
            let offset = req.url.query_pairs().find(|(k, _)| k == "offset");
            let body = match offset.map(|(_, v)| v.into_owned()).as_deref() {
                None => json!({"data": [null, {"id": 4}]}),
                Some("2") => json!({"data": [{"id": 5}]}),
                Some(other) => json!({"error": format!("offset {other}")}),
            };
            ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(server)
        .await;
    mount_json(
        server,
        "/shapes/repos",
        json!({"data": [{"name": "b"}, {"name": "c"}]}),
    )
    .await;
    Mock::given(matchers::path_regex(r"^/shapes/repos/[a-z]+/issues$"))
        .respond_with(|req: &Request| {
            let repo = req
                .url
                .path()
                .split('/')
                .nth(3)
                .unwrap_or_default()
                .to_string();
            data(json!([{"id": format!("{repo}-1")}, {"id": format!("{repo}-2")}]))
        })
        .mount(server)
        .await;
    Mock::given(matchers::path("/shapes/graphql"))
        .and(matchers::method("POST"))
        .respond_with(graphql)
        .mount(server)
        .await;
    let seen = Mutex::new(HashSet::new());
    Mock::given(matchers::path("/shapes/patient"))
        .respond_with(move |req: &Request| patient(&seen, req))
        .mount(server)
        .await;
    mount_json(server, "/shapes/extra", json!({"data": [{"id": 9}]})).await;
    Mock::given(matchers::path("/shapes/legacy/validate"))
        .respond_with(|req: &Request| match session_ok(req) {
            true => ResponseTemplate::new(200),
            false => error(401, "expired"),
        })
        .mount(server)
        .await;
    Mock::given(matchers::path("/shapes/legacy/login"))
        .and(matchers::method("POST"))
        .respond_with(login)
        .mount(server)
        .await;
    Mock::given(matchers::path("/shapes/legacy/items"))
        .respond_with(|req: &Request| match session_ok(req) {
            true => data(json!([{"id": 1}, {"id": 2}])),
            false => error(401, "no session"),
        })
        .mount(server)
        .await;
    mount_json(
        server,
        "/shapes/fields",
        json!({"data": [{"fields": [
            {"name": "id", "type": "int"}, {"name": "title", "type": "text"},
            {"name": "tags", "type": "list"}, {"name": "secret", "type": "text"}
        ]}]}),
    )
    .await;
    mount_json(
        server,
        "/shapes/rows",
        json!({"data": [{"id": 1, "title": "one", "tags": ["a"]}, {"id": 2, "title": "two", "tags": []}]}),
    )
    .await;
    Mock::given(matchers::path("/shapes/touched"))
        .respond_with(touched)
        .mount(server)
        .await;
}

/// A key pair of source-rest-api's JWT test fixtures (`jwt_test_<name>`).
pub fn key(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../connectors/source-rest-api/tests/it/fixtures")
        .join(format!("jwt_test_{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bearer JWT's signing input, raw signature, header and claims.
fn bearer_jws(req: &Request) -> Option<(String, Vec<u8>, Value, Value)> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let auth = header(req, "authorization")?;
    let token = auth.strip_prefix("Bearer ")?;
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts[..] else { return None };
    let json = |p: &str| -> Option<Value> { serde_json::from_slice(&b64.decode(p).ok()?).ok() };
    Some((format!("{h}.{c}"), b64.decode(s).ok()?, json(h)?, json(c)?))
}

/// Whether the claims are those of `keys.yaml` (issuer `me`, ten minutes).
fn claims_ok(claims: &Value) -> bool {
    let lifetime = claims["exp"].as_i64().zip(claims["iat"].as_i64());
    claims["iss"] == "me" && lifetime.map(|(e, i)| e - i) == Some(600)
}

/// `/keys/k256`: a bearer JWT signed with ES256K by the secp256k1 fixture.
fn es256k(req: &Request) -> ResponseTemplate {
    use k256::ecdsa::signature::Verifier as _;
    use k256::pkcs8::DecodePublicKey as _;
    let Some((input, sig, head, claims)) = bearer_jws(req) else {
        return error(401, "no bearer JWT");
    };
    // k256 verifies low-S signatures only; OpenSSL (airbyte-cdk's signer) gives either S, both
    // valid JWS signatures.
    let verified = k256::ecdsa::VerifyingKey::from_public_key_pem(&key("secp256k1.pub"))
        .ok()
        .zip(
            k256::ecdsa::Signature::from_slice(&sig)
                .ok()
                .map(|s| s.normalize_s()),
        )
        .is_some_and(|(k, s)| k.verify(input.as_bytes(), &s).is_ok());
    match verified && head["alg"] == "ES256K" && claims_ok(&claims) {
        true => data(json!([{"id": 1, "alg": "ES256K"}, {"id": 2, "alg": "ES256K"}])),
        false => error(401, &format!("bad ES256K JWT {head} {claims}")),
    }
}

/// `/keys/p521`: a bearer JWT signed with ES512 by the P-521 fixture.
fn es512(req: &Request) -> ResponseTemplate {
    use p521::ecdsa::signature::Verifier as _;
    use p521::pkcs8::DecodePublicKey as _;
    let Some((input, sig, head, claims)) = bearer_jws(req) else {
        return error(401, "no bearer JWT");
    };
    let verified = p521::ecdsa::VerifyingKey::from_public_key_pem(&key("p521.pub"))
        .ok()
        .zip(p521::ecdsa::Signature::from_slice(&sig).ok())
        .is_some_and(|(k, s)| k.verify(input.as_bytes(), &s).is_ok());
    match verified && head["alg"] == "ES512" && claims_ok(&claims) {
        true => data(json!([{"id": 1, "alg": "ES512"}])),
        false => error(401, &format!("bad ES512 JWT {head} {claims}")),
    }
}

/// `/keys/rsa`: a bearer JWT signed with RS256 by the RSA fixture (given encrypted).
fn rs256(req: &Request) -> ResponseTemplate {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let auth = header(req, "authorization").unwrap_or_default();
    let token = auth.strip_prefix("Bearer ").unwrap_or_default();
    let claims = DecodingKey::from_rsa_pem(key("rsa.pub").as_bytes())
        .ok()
        .and_then(|k| decode::<Value>(token, &k, &Validation::new(Algorithm::RS256)).ok())
        .map(|d| d.claims);
    match claims.filter(claims_ok) {
        Some(_) => data(
            json!([{"id": 1, "alg": "RS256"}, {"id": 2, "alg": "RS256"}, {"id": 3, "alg": "RS256"}]),
        ),
        None => error(401, "bad RS256 JWT"),
    }
}

/// `/keys/token`: the JWT bearer grant (RFC 7523) with an HS256 assertion of `client-7`.
fn assertion_grant(uri: &str, req: &Request) -> ResponseTemplate {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    // The form body read as a query (the crate of `Url` is not a dependency here).
    let mut body = req.url.clone();
    body.set_query(Some(std::str::from_utf8(&req.body).unwrap_or_default()));
    let form: std::collections::HashMap<String, String> = body
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[format!("{uri}/keys/token")]);
    v.set_issuer(&["client-7"]);
    let ok = form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        && form.get("assertion").is_some_and(|a| {
            DecodingKey::from_secret(b"assertion-key")
                .is_ok_and(|k| decode::<Value>(a, &k, &v).is_ok())
        });
    match ok {
        true => ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "granted-1", "expires_in": 3600})),
        false => error(401, &format!("bad grant {form:?}")),
    }
}

/// Mounts the signed endpoints of `keys.yaml` (under `/keys`) on `server`.
pub async fn mount_keys(server: &MockServer) {
    Mock::given(matchers::path("/keys/k256"))
        .respond_with(es256k)
        .mount(server)
        .await;
    Mock::given(matchers::path("/keys/p521"))
        .respond_with(es512)
        .mount(server)
        .await;
    Mock::given(matchers::path("/keys/rsa"))
        .respond_with(rs256)
        .mount(server)
        .await;
    let uri = server.uri();
    Mock::given(matchers::path("/keys/token"))
        .and(matchers::method("POST"))
        .respond_with(move |req: &Request| assertion_grant(&uri, req))
        .mount(server)
        .await;
    Mock::given(matchers::path("/keys/granted"))
        .respond_with(|req: &Request| {
            match header(req, "authorization").as_deref() == Some("Bearer granted-1") {
                true => data(json!([{"id": 1, "via": "assertion"}])),
                false => error(401, "not granted"),
            }
        })
        .mount(server)
        .await;
}

/// `/nested/orders`: orders whose embedded `lines` list is cut (`has_more`) for orders 2 and 3.
fn nested_orders() -> Value {
    let line = |o: i64, n: i64| json!({"sku": format!("o{o}-l{n}"), "qty": n});
    json!({"data": [
        {"id": 1, "lines": {"data": [line(1, 1), line(1, 2)], "has_more": false}},
        {"id": 2, "lines": {"data": [line(2, 1)], "has_more": true}},
        {"id": 3, "lines": {"data": [], "has_more": true}},
        {"id": 4, "lines": {"data": [line(4, 1)]}},
    ]})
}

/// `/nested/orders/{id}/lines?after`: the whole list of an order, two lines a page.
fn order_lines(req: &Request) -> ResponseTemplate {
    let order: i64 = req
        .url
        .path()
        .split('/')
        .nth(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let after: usize = req
        .url
        .query_pairs()
        .find(|(k, _)| k == "after")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let total = if order == 2 { 3 } else { 1 };
    let lines: Vec<Value> = (after + 1..=total.min(after + 2))
        .map(|n| json!({"sku": format!("o{order}-l{n}"), "qty": n, "fetched": true}))
        .collect();
    let next = (after + 2 < total).then(|| (after + 2).to_string());
    ResponseTemplate::new(200).set_body_json(json!({"data": lines, "next": next}))
}

/// `/nested/projects`: projects embedding the first page of their issues (p3 none).
fn projects() -> Value {
    json!({"data": [
        {"id": "p1", "issues": {"data": [{"id": 1}], "next": "c2"}},
        {"id": "p2", "issues": {"data": [{"id": 3}], "next": null}},
        {"id": "p3"},
    ]})
}

/// Mounts the endpoints of `nested.yaml` (under `/nested`) on `server`; each requires the
/// `X-Key` the config migration moved to `api_key`.
pub async fn mount_nested(server: &MockServer) {
    let keyed = |req: &Request| header(req, "x-key").as_deref() == Some("migrated-key");
    Mock::given(matchers::path("/nested/v2/orders"))
        .respond_with(move |req: &Request| match keyed(req) {
            true => ResponseTemplate::new(200).set_body_json(nested_orders()),
            false => error(401, "no key"),
        })
        .mount(server)
        .await;
    Mock::given(matchers::path_regex(r"^/nested/v2/orders/\d+/lines$"))
        .respond_with(move |req: &Request| match keyed(req) {
            true => order_lines(req),
            false => error(401, "no key"),
        })
        .mount(server)
        .await;
    Mock::given(matchers::path("/nested/v2/projects"))
        .respond_with(move |req: &Request| match keyed(req) {
            true => ResponseTemplate::new(200).set_body_json(projects()),
            false => error(401, "no key"),
        })
        .mount(server)
        .await;
    // airbyte-cdk reads the first pages from here too once the stream has a state (its lazy
    // retriever serves the first sync only).
    Mock::given(matchers::path_regex(r"^/nested/v2/projects/p\d/issues$"))
        .respond_with(move |req: &Request| {
            let after = req.url.query_pairs().find(|(k, _)| k == "after");
            let project = req
                .url
                .path()
                .split('/')
                .nth(4)
                .unwrap_or_default()
                .to_string();
            let page = match (
                project.as_str(),
                after.map(|(_, v)| v.into_owned()).as_deref(),
            ) {
                ("p1", None) => json!({"data": [{"id": 1}], "next": "c2"}),
                ("p1", Some("c2")) => json!({"data": [{"id": 2}], "next": null}),
                ("p2", None) => json!({"data": [{"id": 3}], "next": null}),
                _ => json!({"data": [], "next": null}),
            };
            match keyed(req) {
                true => ResponseTemplate::new(200).set_body_json(page),
                false => error(401, "no key"),
            }
        })
        .mount(server)
        .await;
}
