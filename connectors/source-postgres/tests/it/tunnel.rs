//! Reading through an SSH tunnel (Airbyte's `tunnel_method`) on a throwaway sshd: check,
//! discover and a read of several tables over one login, and a refused login as a failed
//! check.

use cdk::protocol::{ConnectionStatus, SyncMode};
use cdk::testing::Run;
use cdk::testing::sshd::TestSshd;
use serde_json::json;

use crate::{BIN, config, configure, database, discover};

#[tokio::test(flavor = "multi_thread")]
async fn reads_tables_through_the_tunnel() {
    let sshd = TestSshd::start();
    let db = database("tunnel").await;
    db.execute(
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 500);
         CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b SELECT generate_series(1, 300);",
    )
    .await;
    let cfg = config(
        &db,
        json!({"tunnel_method": sshd.key_auth_config(), "max_db_connections": 2}),
    );
    let run = Run::new(BIN).check(&cfg);
    run.assert_success().assert_protocol();
    let status = run.connection_status();
    assert_eq!(status.status, ConnectionStatus::Succeeded, "{status:?}");

    let catalog = configure(
        &discover(&cfg),
        &[
            ("a", SyncMode::FullRefresh, None),
            ("b", SyncMode::FullRefresh, None),
        ],
    );
    let logins_before = sshd.log().matches("Accepted publickey for").count();
    let out = Run::new(BIN).read(&cfg, &catalog, None);
    out.assert_success().assert_protocol();
    assert_eq!(out.records_of("a").len(), 500);
    assert_eq!(out.records_of("b").len(), 300);
    let log = sshd.log();
    assert!(
        log.contains(&format!("target {} port {}", db.host, db.port)),
        "{log}"
    );
    // The read's connections (snapshot and two readers) share one login.
    assert_eq!(
        log.matches("Accepted publickey for").count(),
        logins_before + 1,
        "{log}"
    );
}

#[tokio::test]
async fn a_refused_tunnel_login_fails_the_check_clearly() {
    let sshd = TestSshd::start();
    let db = database("tunnel_refused").await;
    let mut tunnel = sshd.password_auth_config();
    tunnel["tunnel_user_password"] = json!("wrong-tunnel-password");
    let run = Run::new(BIN).check(&config(&db, json!({"tunnel_method": tunnel})));
    run.assert_success().assert_protocol();
    let status = run.connection_status();
    assert_eq!(status.status, ConnectionStatus::Failed);
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "ssh authentication failed for {}@{}:{}",
            sshd.user, sshd.host, sshd.port
        )),
        "{message}"
    );
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains("wrong-tunnel-password"), "{output}");
    }
}
