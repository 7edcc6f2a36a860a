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
            let tls = make_all(dir.path());
            let client = self.fresh_database("tls").await.connect().await;
            install_files(&client, dir.path()).await;
            add_roles(&client, &self.password).await;
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
            Some(tls)
        })
        .await
        .as_ref()
    }
}

/// Every certificate and key, made in `dir` (another CA in a directory of its own).
fn make_all(dir: &Path) -> TestTls {
    let ca_pem = make_certificates(dir, "test-ca");
    let (client_cert_pem, client_key_pem) = make_client_certificate(dir, "test-ca");
    let pass = format!("pass:{CLIENT_KEY_PASSWORD}");
    openssl(
        dir,
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
    let other = tempfile::tempdir().expect("cannot create a temp dir for certificates");
    TestTls {
        ca_pem,
        other_ca_pem: make_certificates(other.path(), "other-ca"),
        client_cert_pem,
        client_key_pem,
        client_key_encrypted_pem: std::fs::read_to_string(dir.join("client.p8"))
            .expect("openssl wrote no encrypted key"),
    }
}

async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
        .get(0)
}

/// The server's certificate and key and the CA into the data directory (as `test-*`, owned
/// by the server's user), and [`HBA_RULES`] before the cluster's own.
async fn install_files(client: &tokio_postgres::Client, dir: &Path) {
    let data = show(client, "data_directory").await;
    let owner = std::fs::metadata(&data).expect("cannot stat the data directory");
    for name in ["server.crt", "server.key", "test-ca.crt"] {
        let target = Path::new(&data).join(format!("test-{name}"));
        std::fs::copy(dir.join(name), &target).expect("cannot copy a certificate");
        std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid()))
            .expect("cannot hand a certificate to the server's user");
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("cannot restrict a key's permissions");
    }
    let hba = show(client, "hba_file").await;
    let rules = std::fs::read_to_string(&hba).expect("cannot read pg_hba.conf");
    std::fs::write(&hba, format!("{HBA_RULES}{rules}")).expect("cannot write pg_hba.conf");
}

/// The roles [`HBA_RULES`] name, superusers with the cluster's password.
async fn add_roles(client: &tokio_postgres::Client, password: &str) {
    let roles = format!(
        "CREATE ROLE {TLS_ONLY_ROLE} LOGIN SUPERUSER PASSWORD '{0}'; \
         CREATE ROLE {PLAIN_ONLY_ROLE} LOGIN SUPERUSER PASSWORD '{0}'; \
         CREATE ROLE {CERT_ROLE} LOGIN SUPERUSER",
        password.replace('\'', "''")
    );
    client
        .batch_execute(&roles)
        .await
        .unwrap_or_else(|e| panic!("{roles}: {e}"));
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
    issue(
        dir,
        ca,
        "server",
        "localhost",
        "subjectAltName=DNS:localhost",
    );
    std::fs::read_to_string(dir.join(&ca_crt)).expect("openssl wrote no CA certificate")
}

/// A client certificate for [`CERT_ROLE`] signed by the CA `ca` made in `dir`; returns the
/// certificate's and the key's PEM.
fn make_client_certificate(dir: &Path, ca: &str) -> (String, String) {
    issue(dir, ca, "client", CERT_ROLE, "extendedKeyUsage=clientAuth");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("openssl wrote no {name}: {e}"))
    };
    (read("client.crt"), read("client.key"))
}

/// `<name>.key` and `<name>.crt` in `dir`: a new key and a certificate for `common_name`
/// signed by the CA `ca`, with the extension `ext` (which also makes it X.509 v3, the only
/// version rustls accepts).
fn issue(dir: &Path, ca: &str, name: &str, common_name: &str, ext: &str) {
    let (ca_key, ca_crt) = (format!("{ca}.key"), format!("{ca}.crt"));
    let [key, csr, crt, ext_file] = ["key", "csr", "crt", "ext"].map(|e| format!("{name}.{e}"));
    let subject = format!("/CN={common_name}");
    std::fs::write(dir.join(&ext_file), format!("{ext}\n"))
        .expect("cannot write the certificate extension file");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key, "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            &crt,
        ],
    );
}
