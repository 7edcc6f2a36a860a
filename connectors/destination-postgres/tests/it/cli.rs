//! spec and check through the real binary.

use cdk::testing::Run;
use serde_json::json;

use super::{BIN, catalog, database, record, simple_schema, state};

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

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration_tests");

fn fixture(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_invalid_config_fixture_fails_check() {
    let out = Run::new(BIN).check(&fixture("invalid_config.json"));
    out.assert_success();
    let status = out.connection_status();
    assert_eq!(
        serde_json::to_value(status.status).unwrap(),
        json!("FAILED")
    );
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("port")
    );
}

#[tokio::test]
async fn the_fixture_catalog_and_messages_load() {
    let (db, mut config) = database("fixtures").await;
    config["normalization"] = json!({"mode": "flattened"});
    let messages = std::fs::read_to_string(format!("{FIXTURES}/messages.jsonl")).unwrap();
    let out = Run::new(BIN)
        .stdin_lines(messages.lines())
        .write(&config, &fixture("configured_catalog.json"));
    out.assert_success().assert_protocol();
    assert_eq!(out.states().len(), 3);
    for (table, n) in [
        ("customers", 1),
        ("customers_addresses", 2),
        ("orders", 1),
        ("products", 1),
    ] {
        assert_eq!(
            super::rows(&db, "public", table, "1").await.len(),
            n,
            "{table}"
        );
    }
}

/// The server's notices (a second sync's "already exists, skipping") are DEBUG lines, and no
/// LOG line carries the `log` crate's metadata (build-machine source paths).
#[tokio::test]
async fn server_notices_are_debug_lines_without_source_paths() {
    let (_db, config) = database("notices").await;
    let catalog = catalog("people", simple_schema(), "append", 1, 0);
    let lines = vec![
        record("people", json!({"id": 1, "name": "a"})),
        state("people", 1),
    ];
    for _ in 0..2 {
        Run::new(BIN)
            .stdin_lines(&lines)
            .write(&config, &catalog)
            .assert_success();
    }
    let out = Run::new(BIN)
        .env("LOG_LEVEL", "debug")
        .stdin_lines(&lines)
        .write(&config, &catalog);
    out.assert_success();
    let logs = out.logs();
    let notices: Vec<_> = logs
        .iter()
        .filter(|l| l.message.contains("already exists"))
        .collect();
    assert!(!notices.is_empty(), "{}", out.describe());
    for notice in notices {
        assert_eq!(
            serde_json::to_value(notice.level).unwrap(),
            json!("DEBUG"),
            "{}",
            notice.message
        );
    }
    assert!(
        logs.iter()
            .all(|l| !l.message.contains("log.file") && !l.message.contains(".cargo/registry")),
        "{}",
        out.describe()
    );
}
