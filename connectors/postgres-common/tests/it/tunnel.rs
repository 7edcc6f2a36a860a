//! SSH tunnels against a throwaway sshd: key and password auth reach the database through
//! `connect_raw`; wrong credentials, an unreachable bastion, an unreadable key and a target
//! the bastion cannot reach fail with clear config errors.

use std::time::{Duration, Instant};

use cdk::protocol::FailureType;
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use cdk::testing::sshd::{TestSshd, rsa_key_pair};
use postgres_common::Purpose;
use postgres_common::tunnel::{SshTunnel, TunnelMethod};
use serde_json::{Value, json};

use crate::{Target, encrypted};

fn method(config: Value) -> TunnelMethod {
    serde_json::from_value(config).expect("tunnel_method parses")
}

async fn open(config: Value) -> SshTunnel {
    method(config)
        .open()
        .await
        .unwrap_or_else(|e| panic!("tunnel does not open: {e}"))
        .expect("a tunnel is configured")
}

async fn open_err(config: Value) -> cdk::Error {
    match method(config).open().await {
        Ok(_) => panic!("the tunnel opened but should not have"),
        Err(e) => e,
    }
}

/// A database with three rows in `t`.
async fn database(prefix: &str) -> TestDatabase {
    let db = TestPostgres::shared().fresh_database(prefix).await;
    db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3);")
        .await;
    db
}

/// Counts `t`'s rows over a connection made through the tunnel.
async fn count_through(tunnel: &SshTunnel, db: &TestDatabase) -> i64 {
    let stream = tunnel
        .open_stream(&db.host, db.port)
        .await
        .unwrap_or_else(|e| panic!("no stream through the tunnel: {e}"));
    let (client, connection) = db
        .config()
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .expect("postgres handshake through the tunnel");
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("query through the tunnel")
        .get(0)
}

/// The bastion's log shows it forwarded to the database's port.
fn assert_forwarded(sshd: &TestSshd, db: &TestDatabase) {
    let wanted = format!("target {} port {}", db.host, db.port);
    let log = sshd.log();
    assert!(
        log.contains(&wanted),
        "sshd did not forward to the database ('{wanted}' not in its log):\n{log}"
    );
}

#[tokio::test]
async fn key_auth_reaches_the_database() {
    let sshd = TestSshd::start();
    let db = database("tunnel_key").await;
    let tunnel = open(sshd.key_auth_config()).await;
    assert_eq!(
        tunnel.bastion(),
        format!("{}@127.0.0.1:{}", sshd.user, sshd.port)
    );
    // Two connections share the one session.
    assert_eq!(count_through(&tunnel, &db).await, 3);
    assert_eq!(count_through(&tunnel, &db).await, 3);
    assert!(
        sshd.log().contains("Accepted publickey for"),
        "{}",
        sshd.log()
    );
    assert_eq!(
        sshd.log().matches("Accepted publickey for").count(),
        1,
        "the tunnel logged in more than once:\n{}",
        sshd.log()
    );
    assert_forwarded(&sshd, &db);
}

#[tokio::test]
async fn password_auth_reaches_the_database() {
    let sshd = TestSshd::start();
    let db = database("tunnel_password").await;
    let tunnel = open(sshd.password_auth_config()).await;
    assert_eq!(count_through(&tunnel, &db).await, 3);
    assert!(
        sshd.log().contains("Accepted password for"),
        "{}",
        sshd.log()
    );
    assert_forwarded(&sshd, &db);
}

#[tokio::test]
async fn a_session_the_bastion_dropped_is_reopened() {
    let sshd = TestSshd::start();
    let db = database("tunnel_reopen").await;
    let tunnel = open(sshd.key_auth_config()).await;
    assert_eq!(count_through(&tunnel, &db).await, 3);
    sshd.kill_sessions();
    // The next stream finds the session dead and logs in again (bounded: never a hang).
    tokio::time::timeout(
        Duration::from_secs(20),
        tunnel.open_stream(&db.host, db.port),
    )
    .await
    .expect("reopening the tunnel hangs")
    .unwrap_or_else(|e| panic!("the tunnel was not reopened: {e}"));
    assert_eq!(count_through(&tunnel, &db).await, 3);
    assert_eq!(
        sshd.log().matches("Accepted publickey for").count(),
        2,
        "expected a second login:\n{}",
        sshd.log()
    );
}

#[tokio::test]
async fn a_key_the_bastion_does_not_know_is_refused() {
    let sshd = TestSshd::start();
    let (other_key, _) = rsa_key_pair();
    let mut config = sshd.key_auth_config();
    config["ssh_key"] = json!(other_key);
    let e = open_err(config).await;
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    assert_eq!(
        e.message,
        format!(
            "ssh authentication failed for {}@127.0.0.1:{}: the bastion refused the ssh_key",
            sshd.user, sshd.port
        )
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_not_shown() {
    let sshd = TestSshd::start();
    let mut config = sshd.password_auth_config();
    config["tunnel_user_password"] = json!("not-the-password");
    let e = open_err(config).await;
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    assert_eq!(
        e.message,
        format!(
            "ssh authentication failed for {}@127.0.0.1:{}: the bastion refused the password",
            sshd.user, sshd.port
        )
    );
    assert!(!format!("{e:?}").contains("not-the-password"));
}

#[tokio::test]
async fn an_unreachable_bastion_fails_fast() {
    let port = closed_port();
    let (key, _) = rsa_key_pair();
    let started = Instant::now();
    let e = open_err(
        json!({"tunnel_method": "SSH_KEY_AUTH", "tunnel_host": "127.0.0.1",
        "tunnel_port": port, "tunnel_user": "someone", "ssh_key": key}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    let prefix = format!("cannot reach the ssh bastion someone@127.0.0.1:{port}: ");
    assert!(e.message.starts_with(&prefix), "{e}");
    assert!(e.message.to_lowercase().contains("refused"), "{e}");
}

#[tokio::test]
async fn an_unreadable_ssh_key_is_a_config_error() {
    let sshd = TestSshd::start();
    let mut config = sshd.key_auth_config();
    config["ssh_key"] = json!(
        "-----BEGIN RSA PRIVATE KEY-----\nnot base64 at all!\n-----END RSA PRIVATE KEY-----\n"
    );
    let e = open_err(config).await;
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    assert!(
        e.message
            .starts_with("tunnel_method.ssh_key is not a readable private key"),
        "{e}"
    );
    // Read before connecting: the bastion never saw a login.
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
}

#[tokio::test]
async fn a_key_pasted_with_escaped_newlines_and_indentation_works() {
    let sshd = TestSshd::start();
    let mut config = sshd.key_auth_config();
    let mangled: String = sshd
        .private_key
        .lines()
        .map(|l| format!("  {l}\\n"))
        .collect();
    config["ssh_key"] = json!(mangled);
    open(config).await;
}

#[tokio::test]
async fn a_target_the_bastion_cannot_reach_is_named() {
    let sshd = TestSshd::start();
    let tunnel = open(sshd.key_auth_config()).await;
    let port = closed_port();
    let e = tunnel.open_stream("127.0.0.1", port).await.unwrap_err();
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    let prefix = format!(
        "the ssh bastion {} could not connect to the database at 127.0.0.1:{port}: ",
        tunnel.bastion()
    );
    assert!(e.message.starts_with(&prefix), "{e}");
}

#[tokio::test]
async fn no_tunnel_opens_nothing() {
    assert!(
        method(json!({"tunnel_method": "NO_TUNNEL"}))
            .open()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_connector_goes_through_the_tunnel_with_tls_verified_against_the_db_host() {
    let sshd = TestSshd::start();
    let db = database("tunnel_connector").await;
    let Some(tls) = TestPostgres::shared().enable_tls().await else {
        eprintln!("an external server (CDK_TEST_POSTGRES_URL): its TLS is its own; skipped");
        return;
    };
    // The certificate is for `localhost`: verify-full passes only if TLS checks that name.
    let target = Target::of(&db)
        .host("localhost")
        .ssl_mode(json!({"mode": "verify-full", "ca_certificate": tls.ca_pem}))
        .tunnel(sshd.key_auth_config());
    let connector = target.connector().expect("a connector");
    for connector in [connector.clone(), connector] {
        let client = connector
            .connect(Purpose::Check)
            .await
            .unwrap_or_else(|e| panic!("through the tunnel: {e}"));
        assert!(encrypted(&client).await, "not encrypted");
        let n: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
    }
    let log = sshd.log();
    assert_eq!(log.matches("Accepted publickey for").count(), 1, "{log}");
    assert!(
        log.contains(&format!("target localhost port {}", db.port)),
        "{log}"
    );
    // A name the certificate lacks still fails verification inside the tunnel.
    let e = target
        .host("127.0.0.1")
        .connect(Purpose::Check)
        .await
        .expect_err("verify-full must refuse 127.0.0.1");
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
}

#[tokio::test]
async fn tunnel_errors_reach_the_connector_as_config_errors_without_retries() {
    let db = database("tunnel_connector_errors").await;
    let port = closed_port();
    let (key, _) = rsa_key_pair();
    let target = Target::of(&db).tunnel(json!({"tunnel_method": "SSH_KEY_AUTH",
        "tunnel_host": "127.0.0.1", "tunnel_port": port, "tunnel_user": "someone",
        "ssh_key": key}));
    let started = Instant::now();
    let e = target.connect(Purpose::Sync).await.expect_err("no bastion");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retried: {:?}",
        started.elapsed()
    );
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    assert!(
        e.message.starts_with(&format!(
            "cannot reach the ssh bastion someone@127.0.0.1:{port}"
        )),
        "{e}"
    );

    let sshd = TestSshd::start();
    let e = Target::of(&db)
        .tunnel(
            json!({"tunnel_method": "SSH_PASSWORD_AUTH", "tunnel_host": sshd.host,
            "tunnel_port": sshd.port, "tunnel_user": sshd.user,
            "tunnel_user_password": "wrong-password"}),
        )
        .connect(Purpose::Check)
        .await
        .expect_err("a wrong password");
    assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
    assert!(
        e.message.starts_with("ssh authentication failed for "),
        "{e}"
    );
    assert!(!e.message.contains("wrong-password"), "{e}");

    // An unreadable key is found when the connector is made, before any network.
    let broken = Target::of(&db)
        .tunnel(
            json!({"tunnel_method": "SSH_KEY_AUTH", "tunnel_host": sshd.host,
            "tunnel_user": sshd.user, "ssh_key": "garbage"}),
        )
        .connector()
        .err()
        .expect("an unreadable key");
    assert!(
        broken.message.starts_with("tunnel_method.ssh_key "),
        "{broken}"
    );
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
