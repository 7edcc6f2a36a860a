//! TLS modes against the test cluster with TLS switched on (the kit's test CA and a server
//! certificate for `localhost`).

use cdk::testing::Run;
use cdk::testing::postgres::TestPostgres;
use cdk::testing::postgres_tls::{CERT_ROLE, CLIENT_KEY_PASSWORD, PLAIN_ONLY_ROLE};
use serde_json::{Value, json};

use super::*;

fn status(out: &cdk::testing::Captured) -> (String, String) {
    let s = out.connection_status();
    (
        serde_json::to_value(s.status)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string(),
        s.message.clone().unwrap_or_default(),
    )
}

fn with(config: &Value, host: &str, ssl_mode: Value) -> Value {
    let mut c = config.clone();
    c["host"] = json!(host);
    c["ssl_mode"] = ssl_mode;
    c
}

#[tokio::test]
async fn tls_modes_connect_and_verify_as_libpq_does() {
    let (db, config) = database("tls").await;
    let out = Run::new(BIN).check(&with(&config, "127.0.0.1", json!({"mode": "require"})));
    let (result, message) = status(&out);
    assert_eq!(result, "FAILED", "the server has no TLS yet");
    assert!(message.contains("cannot connect"), "{message}");

    let Some(certs) = TestPostgres::shared().enable_tls().await else {
        eprintln!(
            "an external server (CDK_TEST_POSTGRES_URL): TLS is not switched on, the rest is skipped"
        );
        return;
    };
    let (ca, other_ca) = (&certs.ca_pem, &certs.other_ca_pem);

    let ok = |c: &Value| {
        let out = Run::new(BIN).check(c);
        let (result, message) = status(&out);
        assert_eq!(result, "SUCCEEDED", "{message}\n{}", out.describe());
    };
    let fails = |c: &Value, why: &str| {
        let out = Run::new(BIN).check(c);
        let (result, message) = status(&out);
        assert_eq!(result, "FAILED");
        assert!(message.contains(why), "{message}");
    };
    let accepted = [
        ("127.0.0.1", json!({"mode": "require"})),
        (
            "127.0.0.1",
            json!({"mode": "verify-ca", "ca_certificate": ca}),
        ),
        (
            "localhost",
            json!({"mode": "verify-full", "ca_certificate": ca}),
        ),
    ];
    for (host, ssl_mode) in accepted {
        ok(&with(&config, host, ssl_mode));
    }
    let refused = [
        (
            "127.0.0.1",
            json!({"mode": "verify-full", "ca_certificate": ca}),
            "certificate",
        ),
        (
            "127.0.0.1",
            json!({"mode": "verify-ca", "ca_certificate": other_ca}),
            "certificate",
        ),
        (
            "127.0.0.1",
            json!({"mode": "verify-ca", "ca_certificate": "not pem"}),
            "ca_certificate",
        ),
    ];
    for (host, ssl_mode, why) in refused {
        fails(&with(&config, host, ssl_mode), why);
    }

    // `prefer` falls back to a plain connection when the server refuses TLS to this role.
    let mut prefer = with(&config, "127.0.0.1", json!({"mode": "prefer"}));
    prefer["username"] = json!(PLAIN_ONLY_ROLE);
    ok(&prefer);
    prefer["ssl_mode"] = json!({"mode": "require"});
    fails(&prefer, "pg_hba.conf rejects connection");

    // Client certificates: a plain key next to Airbyte's keystore password, and an encrypted
    // PKCS#8 key with its password. The role logs in by the certificate alone.
    let cert_user = |key: &str, password: &str| {
        let mut c = with(
            &config,
            "localhost",
            json!({"mode": "verify-full", "ca_certificate": ca,
                "client_certificate": certs.client_cert_pem, "client_key": key,
                "client_key_password": password}),
        );
        c["username"] = json!(CERT_ROLE);
        c
    };
    ok(&cert_user(&certs.client_key_pem, "keystore-pass"));
    ok(&cert_user(
        &certs.client_key_encrypted_pem,
        CLIENT_KEY_PASSWORD,
    ));
    fails(
        &cert_user(&certs.client_key_encrypted_pem, "wrong"),
        "cannot be decrypted",
    );
    let mut no_cert = with(
        &config,
        "localhost",
        json!({"mode": "verify-full", "ca_certificate": ca}),
    );
    no_cert["username"] = json!(CERT_ROLE);
    fails(&no_cert, "certificate");

    // A write by certificate over a verified connection.
    let out = Run::new(BIN)
        .stdin_lines([record("c", json!({"id": 1, "name": "x", "seq": 1}))])
        .write(
            &cert_user(&certs.client_key_encrypted_pem, CLIENT_KEY_PASSWORD),
            &catalog("c", simple_schema(), "append", 1, 0),
        );
    out.assert_success();
    assert_eq!(rows(&db, "public", "c", "1").await.len(), 1);

    // A write over a verified connection.
    let tls = with(
        &config,
        "localhost",
        json!({"mode": "verify-full", "ca_certificate": ca}),
    );
    let out = Run::new(BIN)
        .stdin_lines([record("t", json!({"id": 1, "name": "x", "seq": 1}))])
        .write(&tls, &catalog("t", simple_schema(), "append", 1, 0));
    out.assert_success();
    assert_eq!(rows(&db, "public", "t", "1").await.len(), 1);
}
