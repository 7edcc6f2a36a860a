//! libpq's TLS modes against the test cluster with TLS switched on.

use cdk::protocol::{ConnectionStatus, SyncMode};
use cdk::testing::Run;
use cdk::testing::postgres::TestPostgres;
use cdk::testing::postgres_tls::{CERT_ROLE, CLIENT_KEY_PASSWORD, TLS_ONLY_ROLE};
use serde_json::{Value, json};

use crate::{BIN, config, configure, database, discover};

fn check(config: &Value) -> (ConnectionStatus, String) {
    let out = Run::new(BIN).check(config);
    out.assert_success().assert_protocol();
    let status = out.connection_status();
    (status.status, status.message.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_modes_connect_and_verify_as_libpq_does() {
    let db = database("tls").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
        .await;
    let Some(certs) = TestPostgres::shared().enable_tls().await else {
        eprintln!("an external server (CDK_TEST_POSTGRES_URL): its TLS is its own; skipped");
        return;
    };
    let with =
        |host: &str, ssl_mode: Value| config(&db, json!({"host": host, "ssl_mode": ssl_mode}));
    let ca = &certs.ca_pem;

    for ok in [
        with("127.0.0.1", json!({"mode": "require"})),
        with(
            "127.0.0.1",
            json!({"mode": "verify-ca", "ca_certificate": ca}),
        ),
        with(
            "localhost",
            json!({"mode": "verify-full", "ca_certificate": ca}),
        ),
    ] {
        let (status, message) = check(&ok);
        assert_eq!(status, ConnectionStatus::Succeeded, "{message}");
    }
    for (bad, why) in [
        (
            with(
                "127.0.0.1",
                json!({"mode": "verify-full", "ca_certificate": ca}),
            ),
            "certificate",
        ),
        (
            with(
                "127.0.0.1",
                json!({"mode": "verify-ca", "ca_certificate": certs.other_ca_pem}),
            ),
            "certificate",
        ),
        (
            with(
                "127.0.0.1",
                json!({"mode": "verify-ca", "ca_certificate": "not pem"}),
            ),
            "ca_certificate",
        ),
        (
            with(
                "127.0.0.1",
                json!({"mode": "verify-ca", "ca_certificate": ca, "client_certificate": ca}),
            ),
            "given together",
        ),
    ] {
        let (status, message) = check(&bad);
        assert_eq!(status, ConnectionStatus::Failed, "{why}");
        assert!(message.contains(why), "{why}: {message}");
    }

    // `allow` gets TLS from a server that refuses plain connections to this role.
    let allow = config(
        &db,
        json!({"username": TLS_ONLY_ROLE, "ssl_mode": {"mode": "allow"}}),
    );
    let (status, message) = check(&allow);
    assert_eq!(status, ConnectionStatus::Succeeded, "{message}");

    // A client certificate, as configs from Airbyte give it: a plain key next to a keystore
    // password, or an encrypted PKCS#8 key with its password. The role logs in by it alone.
    let cert_user = |key: &str, password: &str| {
        config(
            &db,
            json!({"host": "localhost", "username": CERT_ROLE, "ssl_mode": {
                "mode": "verify-full", "ca_certificate": ca,
                "client_certificate": certs.client_cert_pem, "client_key": key,
                "client_key_password": password}}),
        )
    };
    for ok in [
        cert_user(&certs.client_key_pem, "keystore-pass"),
        cert_user(&certs.client_key_encrypted_pem, CLIENT_KEY_PASSWORD),
    ] {
        let (status, message) = check(&ok);
        assert_eq!(status, ConnectionStatus::Succeeded, "{message}");
    }
    let (status, message) = check(&cert_user(&certs.client_key_encrypted_pem, "wrong"));
    assert_eq!(status, ConnectionStatus::Failed);
    assert!(message.contains("cannot be decrypted"), "{message}");

    // A read over a verified connection.
    let verified = with(
        "localhost",
        json!({"mode": "verify-full", "ca_certificate": ca}),
    );
    let catalog = configure(&discover(&verified), &[("t", SyncMode::FullRefresh, None)]);
    let out = Run::new(BIN).read(&verified, &catalog, None);
    out.assert_success().assert_protocol();
    assert_eq!(out.records_of("t").len(), 2);
}
