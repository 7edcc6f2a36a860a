//! `check`: success, and a clear FAILED message for each usual mistake, never showing the
//! password.

use cdk::protocol::ConnectionStatus;
use cdk::testing::Run;
use serde_json::json;

use crate::{BIN, config, database};

fn failed_with(cfg: &serde_json::Value, expected: &str) {
    let run = Run::new(BIN).check(cfg);
    run.assert_success().assert_protocol();
    let status = run.connection_status();
    run.ensure(
        status.status == ConnectionStatus::Failed,
        "expected a FAILED connection status",
    );
    let message = status.message.clone().unwrap_or_default();
    run.ensure(
        message.contains(expected),
        &format!("message {message:?} should contain {expected:?}"),
    );
    if let Some(p) = cfg["password"].as_str() {
        run.ensure(
            !run.stdout.contains(p),
            "the password appears in the output",
        );
    }
}

#[tokio::test]
async fn valid_config_succeeds_and_seed_example_shape_is_accepted() {
    let db = database("check_ok").await;
    db.execute("CREATE TABLE t (id int)").await;
    // The seed's API example: ssl false, Standard replication, no schemas.
    let cfg = config(
        &db,
        json!({"ssl": false, "replication_method": {"method": "Standard"}}),
    );
    let run = Run::new(BIN).check(&cfg);
    run.assert_success().assert_protocol();
    run.ensure(
        run.connection_status().status == ConnectionStatus::Succeeded,
        "expected SUCCEEDED",
    );
    // Default ssl mode (prefer) falls back to plain text on a server without TLS.
    let run = Run::new(BIN).check(&db.connector_config());
    run.ensure(
        run.connection_status().status == ConnectionStatus::Succeeded,
        "prefer must fall back to an unencrypted connection",
    );
}

#[tokio::test]
async fn usual_mistakes_have_clear_messages() {
    let db = database("check_bad").await;
    db.execute(
        "CREATE TABLE secret_t (id int); CREATE SCHEMA locked; CREATE TABLE locked.t (id int);
         CREATE ROLE reader LOGIN PASSWORD 'reader-pass-123';
         GRANT USAGE ON SCHEMA public TO reader;",
    )
    .await;
    failed_with(
        &config(&db, json!({"password": "Wrong-Pass-9876"})),
        &format!("password authentication failed for user \"{}\"", db.user),
    );
    failed_with(
        &config(&db, json!({"database": "no_such_db"})),
        "database \"no_such_db\" does not exist",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    failed_with(
        &config(&db, json!({"port": port})),
        &format!("cannot connect to postgres at '127.0.0.1:{port}/"),
    );
    failed_with(
        &config(&db, json!({"schemas": ["public", "Missing"]})),
        "schema(s) 'Missing' not found",
    );
    failed_with(
        &config(
            &db,
            json!({"username": "reader", "password": "reader-pass-123"}),
        ),
        "has no SELECT privilege on any table",
    );
    failed_with(
        &config(
            &db,
            json!({"username": "reader", "password": "reader-pass-123",
            "schemas": ["locked"]}),
        ),
        "has no USAGE privilege on schema 'locked'",
    );
    failed_with(
        &config(
            &db,
            json!({"replication_method": {"method": "CDC",
            "replication_slot": "s", "publication": "p"}}),
        ),
        "publication 'p' does not exist: run CREATE PUBLICATION",
    );
    failed_with(
        &config(&db, json!({"ssl_mode": {"mode": "require"}})),
        "TLS",
    );
    failed_with(&json!({"host": "h"}), "required");
}

#[tokio::test]
async fn reading_a_table_without_privilege_fails_that_stream_clearly() {
    let db = database("read_denied").await;
    db.execute(
        "CREATE TABLE open_t (id int); INSERT INTO open_t VALUES (1);
         CREATE TABLE closed_t (id int); INSERT INTO closed_t VALUES (1);
         CREATE ROLE reader2 LOGIN PASSWORD 'reader2-pass-123';
         GRANT USAGE ON SCHEMA public TO reader2; GRANT SELECT ON open_t TO reader2;",
    )
    .await;
    let admin = crate::discover(&config(&db, json!({})));
    let cfg = config(
        &db,
        json!({"username": "reader2", "password": "reader2-pass-123"}),
    );
    let seen = crate::discover(&cfg);
    assert_eq!(
        seen.streams.len(),
        1,
        "discover leaves out what the user cannot read"
    );
    let catalog = crate::configure(
        &admin,
        &[
            ("open_t", cdk::protocol::SyncMode::FullRefresh, None),
            ("closed_t", cdk::protocol::SyncMode::FullRefresh, None),
        ],
    );
    let run = Run::new(BIN).read(&cfg, &catalog, None);
    run.assert_failure().assert_protocol();
    assert_eq!(
        run.records_of("open_t").len(),
        1,
        "the readable table is still read"
    );
    let errors = run.trace_errors();
    run.ensure(
        errors.iter().any(|e| {
            let text = format!(
                "{} {}",
                e.message,
                e.internal_message.as_deref().unwrap_or("")
            );
            text.contains("permission denied for table closed_t")
        }),
        "expected 'permission denied for table closed_t'",
    );
}

/// A refused port is the user's to fix at `check` (FAILED, above), but may pass during a sync:
/// `discover` retries it and reports a transient error.
#[tokio::test]
async fn an_unreachable_server_is_transient_during_a_sync() {
    let db = database("check_refused").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = Run::new(BIN).discover(&config(&db, json!({"port": port})));
    run.assert_failure().assert_protocol();
    let errors = run.trace_errors();
    run.ensure(
        errors.iter().any(|e| {
            e.failure_type == Some(cdk::protocol::FailureType::TransientError)
                && e.message.contains("gave up after 3 attempts")
        }),
        "expected a transient error after 3 attempts",
    );
}
