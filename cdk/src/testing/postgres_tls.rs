//! TLS for the throwaway PostgreSQL cluster: a test CA, a server certificate for `localhost`
//! signed by it (made with the `openssl` command line), and the cluster switched to serve it.
//! Connector tests then check libpq's `ssl_mode`s against a real TLS server. Three roles have
//! pg_hba rules of their own: one that must use TLS, one that must not (to tell `allow` from
//! `prefer`), and one that logs in by client certificate.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use tokio::sync::OnceCell;

use super::postgres::TestPostgres;

/// The certificates of a cluster with TLS on.
#[derive(Debug)]
pub struct TestTls {
    /// The CA (PEM) that signed the server's certificate for `localhost`.
    pub ca_pem: String,
    /// Another CA (PEM), which did not: verification against it must fail.
    pub other_ca_pem: String,
    /// A client certificate (PEM) for [`CERT_ROLE`], signed by the CA.
    pub client_cert_pem: String,
    /// Its key (PEM, unencrypted PKCS#8).
    pub client_key_pem: String,
    /// The same key encrypted (PEM "ENCRYPTED PRIVATE KEY", PKCS#8 with PBES2 AES-256-CBC)
    /// with [`CLIENT_KEY_PASSWORD`].
    pub client_key_encrypted_pem: String,
}

/// The password of [`TestTls::client_key_encrypted_pem`].
pub const CLIENT_KEY_PASSWORD: &str = "cdk-key-pass";

/// A superuser that may connect over TLS only (password auth).
pub const TLS_ONLY_ROLE: &str = "cdk_tls_only";
/// A superuser that may connect without TLS only (password auth).
pub const PLAIN_ONLY_ROLE: &str = "cdk_plain_only";
/// A superuser that logs in by client certificate over TLS only (no password).
pub const CERT_ROLE: &str = "cdk_cert_user";

/// pg_hba rules put before the cluster's own; roles' passwords are the cluster's.
const HBA_RULES: &str = "\
hostssl all cdk_tls_only all scram-sha-256
host all cdk_tls_only all reject
hostnossl all cdk_plain_only all scram-sha-256
host all cdk_plain_only all reject
hostssl all cdk_cert_user all cert
host all cdk_cert_user all reject
";

static TLS: OnceCell<Option<TestTls>> = OnceCell::const_new();

impl TestPostgres {
    /// Switches TLS on in the throwaway cluster, once per process (connections with `prefer`
    /// then use it too), trusting the test CA for client certificates, with the roles
    /// [`TLS_ONLY_ROLE`], [`PLAIN_ONLY_ROLE`] and [`CERT_ROLE`]. `None` for an external server
    /// (`CDK_TEST_POSTGRES_URL`), whose TLS set-up is its own. Panics naming the cause when
    /// `openssl` is missing or fails.
    pub async fn enable_tls(&self) -> Option<&'static TestTls> {
        TLS.get_or_init(|| async {
            self.bin_dir()?;
            let dir = tempfile::tempdir().expect("cannot create a temp dir for certificates");
            let ca_pem = make_certificates(dir.path(), "test-ca");
            let (client_cert_pem, client_key_pem) = make_client_certificate(dir.path(), "test-ca");
            let pass = format!("pass:{CLIENT_KEY_PASSWORD}");
            openssl(
                dir.path(),
                &[
                    "pkcs8",
                    "-topk8",
                    "-v2",
                    "aes-256-cbc",
                    "-in",
                    "client.key",
                    "-passout",
                    &pass,
                    "-out",
                    "client.p8",
                ],
            );
            let client_key_encrypted_pem = std::fs::read_to_string(dir.path().join("client.p8"))
                .expect("openssl wrote no encrypted key");
            let other = tempfile::tempdir().expect("cannot create a temp dir for certificates");
            let other_ca_pem = make_certificates(other.path(), "other-ca");
            let db = self.fresh_database("tls").await;
            let client = db.connect().await;
            let data: String = client
                .query_one("SHOW data_directory", &[])
                .await
                .expect("cannot read data_directory")
                .get(0);
            let owner = std::fs::metadata(&data).expect("cannot stat the data directory");
            for name in ["server.crt", "server.key", "test-ca.crt"] {
                let target = Path::new(&data).join(format!("test-{name}"));
                std::fs::copy(dir.path().join(name), &target).expect("cannot copy a certificate");
                std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid()))
                    .expect("cannot hand a certificate to the server's user");
                std::fs::set_permissions(
                    &target,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .expect("cannot restrict a key's permissions");
            }
            let hba: String = client
                .query_one("SHOW hba_file", &[])
                .await
                .expect("cannot read hba_file")
                .get(0);
            let rules = std::fs::read_to_string(&hba).expect("cannot read pg_hba.conf");
            std::fs::write(&hba, format!("{HBA_RULES}{rules}")).expect("cannot write pg_hba.conf");
            let roles = format!(
                "CREATE ROLE {TLS_ONLY_ROLE} LOGIN SUPERUSER PASSWORD '{0}'; \
                 CREATE ROLE {PLAIN_ONLY_ROLE} LOGIN SUPERUSER PASSWORD '{0}'; \
                 CREATE ROLE {CERT_ROLE} LOGIN SUPERUSER",
                self.password.replace('\'', "''")
            );
            client
                .batch_execute(&roles)
                .await
                .unwrap_or_else(|e| panic!("{roles}: {e}"));
            // One statement at a time: ALTER SYSTEM refuses an implicit transaction.
            for sql in [
                "ALTER SYSTEM SET ssl_cert_file = 'test-server.crt'",
                "ALTER SYSTEM SET ssl_key_file = 'test-server.key'",
                "ALTER SYSTEM SET ssl_ca_file = 'test-test-ca.crt'",
                "ALTER SYSTEM SET ssl = on",
                "SELECT pg_reload_conf()",
            ] {
                client
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Some(TestTls {
                ca_pem,
                other_ca_pem,
                client_cert_pem,
                client_key_pem,
                client_key_encrypted_pem,
            })
        })
        .await
        .as_ref()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line is needed for TLS tests (package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate for `localhost` signed by it; returns the CA's PEM.
fn make_certificates(dir: &Path, ca: &str) -> String {
    let (ca_key, ca_crt) = (format!("{ca}.key"), format!("{ca}.crt"));
    let subject = format!("/CN={ca}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
            "-keyout", &ca_key, "-out", &ca_crt,
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n")
        .expect("cannot write the certificate extension file");
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
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
    std::fs::read_to_string(dir.join(&ca_crt)).expect("openssl wrote no CA certificate")
}

/// A client certificate for [`CERT_ROLE`] signed by the CA `ca` made in `dir`; returns the
/// certificate's and the key's PEM.
fn make_client_certificate(dir: &Path, ca: &str) -> (String, String) {
    let subject = format!("/CN={CERT_ROLE}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &subject,
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ],
    );
    let (ca_key, ca_crt) = (format!("{ca}.key"), format!("{ca}.crt"));
    // Extensions make it an X.509 v3 certificate, the only version rustls accepts.
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .expect("cannot write the certificate extension file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            "client.crt",
        ],
    );
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("openssl wrote no {name}: {e}"))
    };
    (read("client.crt"), read("client.key"))
}
