//! TLS modes against the test cluster with TLS switched on (a CA and a server certificate for
//! `localhost` made with the openssl command line).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use cdk::testing::Run;
use cdk::testing::postgres::TestPostgres;
use serde_json::{Value, json};

use super::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line is needed for the TLS test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate for `localhost` signed by it; returns the CA's PEM.
fn make_certificates(dir: &Path, ca: &str) -> String {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
    std::fs::read_to_string(dir.join(format!("{ca}.crt"))).unwrap()
}

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

    if TestPostgres::shared().bin_dir().is_none() {
        eprintln!(
            "an external server (CDK_TEST_POSTGRES_URL): TLS is not switched on, the rest is skipped"
        );
        return;
    }
    // Switch TLS on in the throwaway cluster (other tests' `prefer` then use it too).
    let dir = tempfile::tempdir().unwrap();
    let ca = make_certificates(dir.path(), "test-ca");
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = make_certificates(other_dir.path(), "other-ca");
    let client = db.connect().await;
    let data: String = client
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    let owner = std::fs::metadata(&data).unwrap();
    for name in ["server.crt", "server.key"] {
        let target = Path::new(&data).join(format!("test-{name}"));
        std::fs::copy(dir.path().join(name), &target).unwrap();
        std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    // One statement at a time: ALTER SYSTEM refuses an implicit transaction.
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'test-server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'test-server.key'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    ] {
        client.batch_execute(sql).await.unwrap();
    }

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
    ok(&with(&config, "127.0.0.1", json!({"mode": "require"})));
    ok(&with(
        &config,
        "127.0.0.1",
        json!({"mode": "verify-ca", "ca_certificate": ca}),
    ));
    ok(&with(
        &config,
        "localhost",
        json!({"mode": "verify-full", "ca_certificate": ca}),
    ));
    fails(
        &with(
            &config,
            "127.0.0.1",
            json!({"mode": "verify-full", "ca_certificate": ca}),
        ),
        "certificate",
    );
    fails(
        &with(
            &config,
            "127.0.0.1",
            json!({"mode": "verify-ca", "ca_certificate": other_ca}),
        ),
        "certificate",
    );
    fails(
        &with(
            &config,
            "127.0.0.1",
            json!({"mode": "verify-ca", "ca_certificate": "not pem"}),
        ),
        "ca_certificate",
    );

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
