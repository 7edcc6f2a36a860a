//! libpq's TLS modes against the cluster with TLS on: `allow` and `prefer` told apart by roles
//! whose pg_hba rules demand or refuse TLS, verification, and client certificates with plain,
//! encrypted and unreadable keys.

use std::path::Path;
use std::process::Command;

use cdk::protocol::FailureType;
use cdk::testing::postgres::TestPostgres;
use cdk::testing::postgres_tls::{
    CERT_ROLE, CLIENT_KEY_PASSWORD, PLAIN_ONLY_ROLE, TLS_ONLY_ROLE, TestTls,
};
use postgres_common::Purpose;
use serde_json::{Value, json};

use crate::{Target, encrypted};

async fn tls_cluster() -> Option<&'static TestTls> {
    let tls = TestPostgres::shared().enable_tls().await;
    if tls.is_none() {
        eprintln!("an external server (CDK_TEST_POSTGRES_URL): its TLS is its own; skipped");
    }
    tls
}

/// Connects and answers whether the session is encrypted.
async fn connects_encrypted(target: &Target) -> bool {
    match target.connect(Purpose::Sync).await {
        Ok(client) => encrypted(&client).await,
        Err(e) => panic!("{} as {}: {e}", target.host, target.username),
    }
}

/// The config error a connection fails with.
async fn fails(target: &Target) -> String {
    match target.connect(Purpose::Check).await {
        Ok(_) => panic!("expected {} to fail", target.username),
        Err(e) => {
            assert_eq!(e.failure_type, FailureType::ConfigError, "{e}");
            e.message
        }
    }
}

#[tokio::test]
async fn allow_prefer_and_require_as_libpq() {
    let db = TestPostgres::shared().fresh_database("pgc_modes").await;
    let Some(_) = tls_cluster().await else { return };
    let mode = |m: &str| Target::of(&db).ssl_mode(json!({"mode": m}));

    assert!(!connects_encrypted(&mode("disable")).await);
    assert!(connects_encrypted(&mode("require")).await);
    // The default and the deprecated boolean.
    assert!(
        connects_encrypted(&Target::of(&db)).await,
        "prefer by default"
    );
    let mut ssl = Target::of(&db).user(PLAIN_ONLY_ROLE);
    ssl.ssl = true;
    assert!(fails(&ssl).await.contains("pg_hba.conf rejects connection"));

    // allow: plain first, TLS only when the server refuses plain.
    assert!(!connects_encrypted(&mode("allow")).await);
    assert!(connects_encrypted(&mode("allow").user(TLS_ONLY_ROLE)).await);
    let e = fails(&mode("disable").user(TLS_ONLY_ROLE)).await;
    assert!(e.contains("no encryption"), "{e}");

    // prefer: TLS first, plain when the server refuses TLS.
    assert!(connects_encrypted(&mode("prefer")).await);
    assert!(!connects_encrypted(&mode("prefer").user(PLAIN_ONLY_ROLE)).await);
    let e = fails(&mode("require").user(PLAIN_ONLY_ROLE)).await;
    assert!(e.contains("SSL encryption"), "{e}");

    // sslmode in jdbc_url_params when ssl_mode is not set.
    let mut param = Target::of(&db).user(TLS_ONLY_ROLE);
    param.jdbc_url_params = Some("sslmode=allow".into());
    assert!(connects_encrypted(&param).await);
}

#[tokio::test]
async fn verifying_modes_check_chain_and_name() {
    let db = TestPostgres::shared().fresh_database("pgc_verify").await;
    let Some(certs) = tls_cluster().await else {
        return;
    };
    let verify = |mode: &str, host: &str, ca: &str| {
        Target::of(&db)
            .host(host)
            .ssl_mode(json!({"mode": mode, "ca_certificate": ca}))
    };
    assert!(connects_encrypted(&verify("verify-ca", "127.0.0.1", &certs.ca_pem)).await);
    assert!(connects_encrypted(&verify("verify-full", "localhost", &certs.ca_pem)).await);
    let e = fails(&verify("verify-full", "127.0.0.1", &certs.ca_pem)).await;
    assert!(e.contains("certificate"), "{e}");
    let e = fails(&verify("verify-ca", "127.0.0.1", &certs.other_ca_pem)).await;
    assert!(e.contains("certificate"), "{e}");
    let e = verify("verify-ca", "127.0.0.1", "not pem")
        .connector()
        .err()
        .unwrap();
    assert!(e.message.contains("ssl_mode.ca_certificate"), "{e}");
}

/// `openssl` on the key in `dir`, returning stdout.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn client_certificates_with_plain_and_encrypted_keys() {
    let db = TestPostgres::shared().fresh_database("pgc_client").await;
    let Some(certs) = tls_cluster().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("client.key"), &certs.client_key_pem).unwrap();
    // The kit's encrypted copy of the key, and a legacy OpenSSL-encrypted one made here.
    let pkcs8 = &certs.client_key_encrypted_pem;
    assert!(pkcs8.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let legacy = openssl(
        dir.path(),
        &[
            "rsa",
            "-in",
            "client.key",
            "-aes256",
            "-traditional",
            "-passout",
            "pass:s3cret",
        ],
    );
    assert!(legacy.contains("Proc-Type: 4,ENCRYPTED"));

    let with_key = |key: &str, password: Option<&str>| {
        let mut mode = json!({"mode": "verify-full", "ca_certificate": certs.ca_pem,
            "client_certificate": certs.client_cert_pem, "client_key": key});
        if let Some(p) = password {
            mode["client_key_password"] = Value::from(p);
        }
        let mut target = Target::of(&db)
            .host("localhost")
            .user(CERT_ROLE)
            .ssl_mode(mode);
        target.password = None;
        target
    };
    // The server logs CERT_ROLE in by its certificate alone.
    assert!(connects_encrypted(&with_key(&certs.client_key_pem, None)).await);
    // Airbyte's keystore password next to a plain key is ignored.
    assert!(connects_encrypted(&with_key(&certs.client_key_pem, Some("keystore-pass"))).await);
    assert!(connects_encrypted(&with_key(pkcs8, Some(CLIENT_KEY_PASSWORD))).await);

    for (key, password, why) in [
        (
            pkcs8,
            Some("wrong"),
            "cannot be decrypted with ssl_mode.client_key_password",
        ),
        (pkcs8, None, "set ssl_mode.client_key_password"),
        (&legacy, Some("s3cret"), "legacy OpenSSL-encrypted PEM key"),
    ] {
        let e = with_key(key, password)
            .connector()
            .err()
            .expect("a key error");
        assert_eq!(e.failure_type, FailureType::ConfigError);
        assert!(e.message.contains(why), "{why}: {e}");
    }
    // Without a certificate the server refuses the role.
    let mut none = Target::of(&db)
        .host("localhost")
        .user(CERT_ROLE)
        .ssl_mode(json!({"mode": "verify-full", "ca_certificate": certs.ca_pem}));
    none.password = None;
    let e = fails(&none).await;
    assert!(e.contains("certificate"), "{e}");
}
