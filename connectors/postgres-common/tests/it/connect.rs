//! The connect path without TLS: session setup, `jdbc_url_params`, failure types at `check`
//! and during a sync, retries.

use std::time::Instant;

use cdk::protocol::FailureType;
use cdk::testing::postgres::TestPostgres;
use postgres_common::Purpose;

use crate::{Target, show};

#[tokio::test]
async fn session_setup_and_parameters() {
    let db = TestPostgres::shared().fresh_database("pgc_session").await;
    // A database default the session setup must override, as a role's could be.
    db.execute(&format!(
        "ALTER DATABASE \"{}\" SET statement_timeout = '7s'",
        db.name
    ))
    .await;
    let client = Target::of(&db).connect(Purpose::Sync).await.unwrap();
    assert_eq!(show(&client, "statement_timeout").await, "0");
    assert_eq!(
        show(&client, "idle_in_transaction_session_timeout").await,
        "0"
    );
    assert_eq!(
        show(&client, "application_name").await,
        "postgres-common-test"
    );
    assert_eq!(show(&client, "TimeZone").await, "Asia/Tokyo");

    let mut target = Target::of(&db);
    target.jdbc_url_params = Some(
        "ApplicationName=my%20etl&options=-c%20statement_timeout%3D3s%20-c%20work_mem%3D5MB\
         &currentSchema=other&connectTimeout=5&unknownParam=1"
            .into(),
    );
    let client = target.connect(Purpose::Sync).await.unwrap();
    assert_eq!(show(&client, "application_name").await, "my etl");
    assert_eq!(
        show(&client, "statement_timeout").await,
        "3s",
        "the user's own wins"
    );
    assert_eq!(show(&client, "work_mem").await, "5MB");
    assert_eq!(show(&client, "search_path").await, "other");
}

#[tokio::test]
async fn failure_types_at_check_and_during_a_sync() {
    let db = TestPostgres::shared().fresh_database("pgc_fail").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut refused = Target::of(&db);
    refused.port = port;
    let prefix = format!("cannot connect to postgres at '127.0.0.1:{port}/");

    // A refused port: the user's to fix at check; may pass during a sync (retried).
    let e = refused.connect(Purpose::Check).await.unwrap_err();
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    assert!(e.message.starts_with(&prefix), "{e}");
    let started = Instant::now();
    let e = refused.connect(Purpose::Sync).await.unwrap_err();
    assert_eq!(e.failure_type, FailureType::TransientError, "{e}");
    assert!(e.message.contains("gave up after 3 attempts"), "{e}");
    assert!(e.message.contains(&prefix), "{e}");
    assert!(started.elapsed().as_millis() >= 1400, "backoff 0.5 s + 1 s");

    // Authentication and a missing database are config errors either way.
    let mut wrong = Target::of(&db);
    wrong.password = Some(cdk::Secret::new("Wrong-Pass-9876".into()));
    for purpose in [Purpose::Check, Purpose::Sync] {
        let e = wrong.connect(purpose).await.unwrap_err();
        assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
        assert!(e.message.contains("password authentication failed"), "{e}");
        assert_eq!(e.internal.as_deref(), Some("sqlstate 28P01"));
    }
    let mut missing = Target::of(&db);
    missing.database = "no_such_db".into();
    let e = missing.connect(Purpose::Sync).await.unwrap_err();
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    assert!(
        e.message.contains("database \"no_such_db\" does not exist"),
        "{e}"
    );

    // Bad parameters fail before any connection.
    let mut bad = Target::of(&db);
    bad.jdbc_url_params = Some("sslmode=verify-full".into());
    let e = bad.connector().err().expect("a config error");
    assert!(e.message.contains("needs a CA certificate"), "{e}");
}

#[tokio::test]
async fn query_errors_follow_the_sqlstate_table() {
    let db = TestPostgres::shared().fresh_database("pgc_query").await;
    let client = Target::of(&db).connect(Purpose::Sync).await.unwrap();
    let e = client
        .execute("SELECT * FROM missing_t", &[])
        .await
        .unwrap_err();
    let e = postgres_common::query_error(&e, "reading 'missing_t'");
    assert_eq!(e.failure_type, FailureType::ConfigError);
    assert!(
        e.message
            .starts_with("reading 'missing_t': relation \"missing_t\" does not exist"),
        "{e}"
    );
    let e = client.execute("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(
        postgres_common::pg_error(e).failure_type,
        FailureType::SystemError
    );
}
