//! spec and check through the real binary.

use cdk::testing::Run;
use serde_json::json;

use super::{BIN, database};

#[test]
fn spec_matches_snapshot() {
    let out = Run::new(BIN).spec();
    out.assert_success().assert_protocol();
    let problems = cdk::testing::acceptance::spec_problems(&out.spec().connection_specification);
    assert!(problems.is_empty(), "{problems:?}");
    insta::assert_json_snapshot!(out.spec());
}

#[tokio::test]
async fn check_succeeds_on_a_reachable_database() {
    let (_db, config) = database("check").await;
    let out = Run::new(BIN).check(&config);
    out.assert_success().assert_protocol();
    let status = out.connection_status();
    assert_eq!(
        serde_json::to_value(status.status).unwrap(),
        json!("SUCCEEDED"),
        "{}",
        out.describe()
    );
}

#[tokio::test]
async fn check_fails_with_a_wrong_password_without_leaking_it() {
    let (_db, mut config) = database("check_bad").await;
    config["password"] = json!("definitely-wrong-secret");
    let out = Run::new(BIN).check(&config);
    out.assert_success();
    let status = out.connection_status();
    assert_eq!(
        serde_json::to_value(status.status).unwrap(),
        json!("FAILED")
    );
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert!(
        !out.stdout.contains("definitely-wrong-secret"),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("definitely-wrong-secret"));
}

#[tokio::test]
async fn require_tls_against_a_server_without_tls_fails_clearly() {
    let (_db, mut config) = database("check_tls").await;
    config["ssl_mode"] = json!({"mode": "require"});
    let out = Run::new(BIN).check(&config);
    let status = out.connection_status();
    assert_eq!(
        serde_json::to_value(status.status).unwrap(),
        json!("FAILED")
    );
    let message = status.message.clone().unwrap_or_default();
    assert!(message.contains("cannot connect"), "{message}");
}
