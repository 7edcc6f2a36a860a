//! Files over HTTPS (the test HTTP server): reads, compression, auth, Last-Modified driven
//! incremental reads, and 404/403 answers.

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use cdk::testing::http::matchers::{basic_auth, header, method, path};
use cdk::testing::http::{Mock, MockServer, ResponseTemplate};
use serde_json::{Value, json};

use crate::{BIN, catalog, check_fails, check_succeeds, gzip, read, rows};

const CSV: &str = "id,amount\n1,2.5\n2,3\n";

fn https_config(url: String, provider: Value) -> Value {
    let mut provider = provider;
    provider["storage"] = json!("HTTPS");
    json!({"dataset_name": "items", "format": "csv", "url": url, "provider": provider})
}

async fn serve(server: &MockServer, route: &str, body: Vec<u8>, last_modified: &str) {
    Mock::given(path(route))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(body)
                .insert_header("Last-Modified", last_modified),
        )
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_a_plain_and_a_gzipped_file_with_the_seeds_config() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/sales.csv",
        CSV.into(),
        "Wed, 21 Oct 2015 07:28:00 GMT",
    )
    .await;
    serve(
        &server,
        "/sales.csv.gz",
        gzip(CSV),
        "Wed, 21 Oct 2015 07:28:00 GMT",
    )
    .await;
    let url = format!("{}/sales.csv", server.uri());
    let cfg = https_config(url.clone(), json!({"user_agent": true}));
    check_succeeds(&cfg);
    let run = read(&cfg);
    assert_eq!(
        rows(&run),
        [
            json!({"id": 1, "amount": 2.5}),
            json!({"id": 2, "amount": 3})
        ]
    );
    let first = run.records_of("items")[0].clone();
    assert_eq!(first["_ab_source_file_url"], json!(url));
    assert_eq!(
        first["_ab_source_file_last_modified"],
        json!("2015-10-21T07:28:00.000000Z")
    );
    let gz = read(&https_config(
        format!("{}/sales.csv.gz", server.uri()),
        json!({}),
    ));
    assert_eq!(rows(&gz).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_forbidden_files_fail_check_naming_the_url() {
    let server = MockServer::start().await;
    Mock::given(path("/secret.csv"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let missing = format!("{}/missing.csv", server.uri());
    let message = check_fails(&https_config(missing.clone(), json!({})));
    assert!(
        message.contains(&missing) && message.contains("404"),
        "{message}"
    );
    let forbidden = format!("{}/secret.csv", server.uri());
    let message = check_fails(&https_config(forbidden.clone(), json!({})));
    assert!(
        message.contains(&forbidden) && message.contains("403"),
        "{message}"
    );
    let message = check_fails(&https_config("http://127.0.0.1:9/x.csv".into(), json!({})));
    assert!(
        message.contains("cannot reach http://127.0.0.1:9/x.csv"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_and_headers_are_sent_and_never_shown() {
    let server = MockServer::start().await;
    Mock::given(path("/private.csv"))
        .and(basic_auth("reader", "pa55-word-xyz"))
        .and(header("x-api-key", "key-0123456789"))
        .respond_with(ResponseTemplate::new(200).set_body_string(CSV))
        .mount(&server)
        .await;
    Mock::given(path("/private.csv"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let url = format!("{}/private.csv", server.uri());
    let good = https_config(
        url.clone(),
        json!({"username": "reader", "password": "pa55-word-xyz",
               "headers": [{"header_name": "x-api-key", "header_value": "key-0123456789"}]}),
    );
    let run = read(&good);
    assert_eq!(rows(&run).len(), 2);
    for secret in ["pa55-word-xyz", "key-0123456789"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
    let bad = https_config(
        url,
        json!({"username": "reader", "password": "wrong-password-1"}),
    );
    let message = check_fails(&bad);
    assert!(
        message.contains("401") && !message.contains("wrong-password-1"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_reads_follow_last_modified() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/daily.csv",
        CSV.into(),
        "Mon, 01 Jan 2024 00:00:00 GMT",
    )
    .await;
    let cfg = https_config(format!("{}/daily.csv", server.uri()), json!({}));
    let cat = catalog(&cfg, SyncMode::Incremental);
    let first = Run::new(BIN).read(&cfg, &cat, None);
    first.assert_success().assert_protocol();
    assert_eq!(first.records_of("items").len(), 2);
    let state = first.final_state();
    let again = Run::new(BIN).read(&cfg, &cat, Some(&state));
    again.assert_success();
    assert_eq!(again.records_of("items").len(), 0, "unchanged");

    server.reset().await;
    serve(
        &server,
        "/daily.csv",
        "id,amount\n3,1\n".into(),
        "Tue, 02 Jan 2024 00:00:00 GMT",
    )
    .await;
    let changed = Run::new(BIN).read(&cfg, &cat, Some(&state));
    changed.assert_success();
    assert_eq!(rows(&changed), [json!({"id": 3, "amount": 1})]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_that_refuses_head_is_read_with_get() {
    // As a presigned URL does: signed for GET, so HEAD is forbidden.
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/signed.csv"))
        .respond_with(ResponseTemplate::new(200).set_body_string(CSV))
        .mount(&server)
        .await;
    let cfg = https_config(
        format!("{}/signed.csv?X-Amz-Signature=abc", server.uri()),
        json!({}),
    );
    check_succeeds(&cfg);
    assert_eq!(rows(&read(&cfg)).len(), 2);
}

/// The seed's file-source example, YAML form, field for field:
/// `Dataset Name: sales_data`, `URL: …/sales.csv`, `Format: CSV`, `Provider: {Storage: HTTPS,
/// User Provided Storage: {URL: …/sales.csv}}` (the test server stands in for
/// storage.example.com).
#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_yaml_example_runs_as_written() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/sales.csv",
        "region,amount,day\nnorth,10.5,2024-01-01\nsouth,NA,2024-01-02\n".into(),
        "Wed, 21 Oct 2015 07:28:00 GMT",
    )
    .await;
    let url = format!("{}/sales.csv", server.uri());
    let config = json!({
        "dataset_name": "sales_data",
        "url": url,
        "format": "CSV",
        "provider": {"storage": "HTTPS", "url": url},
    });
    check_succeeds(&config);
    let stream = crate::discover(&config);
    assert_eq!(stream["name"], json!("sales_data"));
    let run = Run::new(BIN).read(&config, &catalog(&config, SyncMode::FullRefresh), None);
    run.assert_success().assert_protocol();
    let records: Vec<Value> = run
        .records_of("sales_data")
        .into_iter()
        .map(|r| json!({"region": r["region"], "amount": r["amount"], "day": r["day"]}))
        .collect();
    assert_eq!(
        records,
        [
            json!({"region": "north", "amount": 10.5, "day": "2024-01-01"}),
            json!({"region": "south", "amount": null, "day": "2024-01-02"}),
        ]
    );
    // A provider URL other than the file's is a mistake the config names.
    let mut other = config.clone();
    other["provider"]["url"] = json!("https://elsewhere.example.com/x.csv");
    assert!(check_fails(&other).contains("provider.url"));
}
