//! `check`: a test object written, listed and deleted; clear FAILED messages for bad
//! credentials, an unreachable endpoint and bad settings, never the secret.

use cdk::protocol::ConnectionStatus;
use cdk::testing::Run;
use cdk::testing::s3::TestS3;
use serde_json::{Value, json};

use super::{BIN, Place};

fn failed_with(config: &Value, expected: &[&str]) {
    let out = Run::new(BIN).check(config);
    out.assert_success().assert_protocol();
    let status = out.connection_status();
    assert_eq!(
        status.status,
        ConnectionStatus::Failed,
        "{}",
        out.describe()
    );
    let message = status.message.clone().unwrap_or_default();
    for text in expected {
        assert!(message.contains(text), "{text:?} not in {message:?}");
    }
    if let Some(secret) = config["secret_access_key"].as_str() {
        assert!(!out.stdout.contains(secret), "{}", out.stdout);
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
    }
}

#[tokio::test]
async fn check_succeeds_and_leaves_nothing_behind() {
    for place in [Place::s3("check-ok"), Place::local()] {
        let config = place.config("some/${NAMESPACE}/path", json!({"format_type": "JSONL"}));
        let out = Run::new(BIN).check(&config);
        out.assert_success().assert_protocol();
        assert_eq!(
            out.connection_status().status,
            ConnectionStatus::Succeeded,
            "{}",
            out.describe()
        );
        assert_eq!(place.keys("").await, Vec::<String>::new());
    }
}

#[test]
fn a_wrong_secret_fails_without_showing_it() {
    let place = Place::s3("check-secret");
    let mut config = place.config("p", json!({"format_type": "JSONL"}));
    config["secret_access_key"] = json!("not-the-right-secret-123");
    failed_with(&config, &["cannot write a test object to s3://", "403"]);
}

#[test]
fn an_unreachable_endpoint_fails() {
    let s3 = TestS3::shared();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = json!({"s3_bucket_name": "b", "s3_bucket_path": "p",
        "s3_endpoint": format!("http://127.0.0.1:{port}"),
        "access_key_id": s3.access_key, "secret_access_key": s3.secret_key,
        "format": {"format_type": "JSONL"}});
    let started = std::time::Instant::now();
    failed_with(&config, &[&format!("127.0.0.1:{port}")]);
    assert!(started.elapsed().as_secs() < 30);
}

#[test]
fn bad_settings_fail() {
    let config = Place::local().config(
        "p",
        json!({"format_type": "Parquet", "compression_codec": "lzo"}),
    );
    failed_with(&config, &["'LZO' is not supported"]);
    let config = Place::local().config(
        "p",
        json!({"format_type": "Parquet", "compression_codec": "lzma"}),
    );
    failed_with(&config, &["compression_codec"]);
}
