//! A throwaway PostgreSQL cluster for tests, started once per test binary from the installed
//! server binaries, stopped and deleted when the process exits. Each test takes its own
//! database from [`TestPostgres::fresh_database`].
//!
//! `CDK_TEST_POSTGRES_URL=postgres://user:pass@host:port/db` points the tests at an existing
//! server instead. When running as root (CI), the cluster runs as the `postgres` system user,
//! because `initdb` refuses to run as root.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Superuser password of the throwaway cluster (TCP connections use password auth, so tests
/// of wrong passwords are real).
pub const PASSWORD: &str = "cdk-test-password";

/// A running server tests can create databases on.
#[derive(Debug)]
pub struct TestPostgres {
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// A superuser's name.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The database to connect to for administration.
    admin_db: String,
    cluster: Option<Cluster>,
}

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// A superuser's name.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The database's name.
    pub name: String,
}

impl TestDatabase {
    /// A `postgres://` URL of the database.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user, self.password, self.host, self.port, self.name
        )
    }

    /// A client config for the database.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(&self.name);
        c
    }

    /// A connected client (its connection runs on the caller's runtime).
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.config()).await
    }

    /// Runs SQL statements (setup scripts), panicking with the error on failure.
    pub async fn execute(&self, sql: &str) {
        let client = self.connect().await;
        if let Err(e) = client.batch_execute(sql).await {
            panic!("setup SQL failed: {e}\n{sql}");
        }
    }

    /// The JSON fields a Postgres connector config needs (`host`, `port`, `database`,
    /// `username`, `password`).
    pub fn connector_config(&self) -> serde_json::Value {
        serde_json::json!({
            "host": self.host, "port": self.port, "database": self.name,
            "username": self.user, "password": self.password,
        })
    }
}

static SHARED: OnceLock<TestPostgres> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl TestPostgres {
    /// The server for this test binary, started on first use. Panics with the reason when no
    /// server can be had: a test needing one never passes silently.
    pub fn shared() -> &'static TestPostgres {
        SHARED.get_or_init(|| match std::env::var("CDK_TEST_POSTGRES_URL") {
            Ok(url) => Self::external(&url),
            Err(_) => Self::start(),
        })
    }

    fn external(url: &str) -> Self {
        let config: tokio_postgres::Config = url
            .parse()
            .unwrap_or_else(|e| panic!("CDK_TEST_POSTGRES_URL is not a valid URL: {e}"));
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_string(),
        };
        Self {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config.get_user().unwrap_or("postgres").to_string(),
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
            admin_db: config.get_dbname().unwrap_or("postgres").to_string(),
            cluster: None,
        }
    }

    fn start() -> Self {
        let started = Instant::now();
        let cluster = Cluster::start();
        let version = cluster.version.clone();
        let server = Self {
            host: "127.0.0.1".into(),
            port: cluster.port,
            user: "postgres".into(),
            password: PASSWORD.into(),
            admin_db: "postgres".into(),
            cluster: Some(cluster),
        };
        // Straight to stderr: the test harness captures `eprintln!`, and this is shown once.
        let _ = writeln!(
            std::io::stderr(),
            "test postgres: {version} started on 127.0.0.1:{} in {} ms",
            server.port,
            started.elapsed().as_millis()
        );
        server
    }

    /// Creates a new, empty database; `prefix` makes it recognisable in logs.
    pub async fn fresh_database(&self, prefix: &str) -> TestDatabase {
        let n = NEXT_DB.fetch_add(1, Ordering::SeqCst);
        let clean = super::name_part(prefix, '_');
        let name = format!("t{}_{clean}_{n}", std::process::id());
        let admin = TestDatabase {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            name: self.admin_db.clone(),
        };
        admin.execute(&format!("CREATE DATABASE \"{name}\"")).await;
        TestDatabase { name, ..admin }
    }

    /// Where the server binaries are (`None` for an external server).
    pub fn bin_dir(&self) -> Option<&Path> {
        self.cluster.as_ref().map(|c| c.bin.as_path())
    }
}

async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test postgres: {e}"));
    tokio::spawn(connection);
    client
}

#[derive(Debug)]
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    version: String,
    /// (uid, gid) to run the server as, when we are root.
    run_as: Option<(u32, u32)>,
}

impl Cluster {
    fn start() -> Self {
        let bin = find_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("cdk-test-pg-")
            .tempdir()
            .expect("cannot create a temp dir for the test postgres")
            .keep();
        let run_as = unprivileged_ids();
        std::fs::create_dir(dir.join("sock")).expect("cannot create the socket dir");
        std::fs::write(dir.join("pwfile"), PASSWORD).expect("cannot write the password file");
        if let Some((uid, gid)) = run_as {
            for p in [dir.clone(), dir.join("sock"), dir.join("pwfile")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot chown {}: {e}", p.display()));
            }
        }
        let port = free_port();
        let mut cluster = Cluster {
            dir,
            bin,
            port,
            version: String::new(),
            run_as,
        };
        cluster.version = cluster
            .output("postgres", &["--version"])
            .trim()
            .to_string();
        let data = cluster.dir.join("data");
        let pwfile = cluster.dir.join("pwfile");
        let status = cluster
            .cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .status()
            .expect("cannot run initdb");
        assert!(
            status.success(),
            "initdb failed in {}",
            cluster.dir.display()
        );
        let opts = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c wal_level=logical -c max_replication_slots=64 -c max_wal_senders=10 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            cluster.dir.join("sock").display()
        );
        let log = cluster.dir.join("server.log");
        let status = cluster
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-w", "-s", "-o", &opts, "-l"])
            .arg(&log)
            .arg("start")
            .status()
            .expect("cannot run pg_ctl");
        if !status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the test postgres did not start:\n{log}");
        }
        register_cleanup();
        cluster
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        c
    }

    fn output(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .cmd(program)
            .args(args)
            .output()
            .expect("cannot run a postgres binary");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stop(&self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-s", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `PATH` first, then the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return dir;
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: looked in PATH and \
             /usr/lib/postgresql/*/bin. Install them (Debian: apt-get install postgresql) or set \
             CDK_TEST_POSTGRES_URL to an existing server."
        ),
    }
}

/// When root, the ids of the `postgres` system user (or `nobody`) to run the server as.
fn unprivileged_ids() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in [c"postgres", c"nobody"] {
        // SAFETY: getpwnam takes a valid C string; the result is read before any other call.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if !pw.is_null() {
            return Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) });
        }
    }
    panic!(
        "running as root, but there is no `postgres` or `nobody` user to run the test postgres as"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port")
}

fn register_cleanup() {
    extern "C" fn stop_shared() {
        if let Some(cluster) = SHARED.get().and_then(|s| s.cluster.as_ref()) {
            cluster.stop();
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| super::at_exit(stop_shared));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn databases_are_separate_and_logical_decoding_works() {
        let pg = TestPostgres::shared();
        let a = pg.fresh_database("a").await;
        let b = pg.fresh_database("b").await;
        assert_ne!(a.name, b.name);
        a.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);")
            .await;
        let client = a.connect().await;
        let n: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        let missing = b
            .connect()
            .await
            .query_one("SELECT count(*) FROM t", &[])
            .await;
        assert!(missing.is_err(), "tables must not leak between databases");
        if pg.bin_dir().is_some() {
            let level: String = client
                .query_one("SHOW wal_level", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(level, "logical");
        }
    }

    #[tokio::test]
    async fn wrong_password_is_rejected() {
        let pg = TestPostgres::shared();
        let mut db = pg.fresh_database("auth").await;
        db.password = "not-the-password".into();
        let err = db
            .config()
            .connect(tokio_postgres::NoTls)
            .await
            .err()
            .expect("must fail");
        let text = format!("{err:?}");
        assert!(text.contains("password authentication failed"), "{text}");
    }
}
