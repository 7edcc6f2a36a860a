//! Connecting to the database (TLS mode, `jdbc_url_params`, retries) and turning driver
//! errors into `cdk::Error`s with the server's own message.

use std::time::Duration;

use cdk::{Error, Result, RetryPolicy};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::config::{PostgresConfig, SslMode};
use postgres_common::Verify;

/// Opens a connection (its driver task runs on the current runtime), making up to
/// `attempts` attempts when failures are transient.
pub async fn connect(config: &PostgresConfig, attempts: u32) -> Result<Client> {
    let policy = RetryPolicy {
        max_attempts: attempts.max(1),
        initial_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(5),
    };
    cdk::retry(policy, || connect_once(config)).await
}

async fn connect_once(config: &PostgresConfig) -> Result<Client> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .user(&config.username)
        .dbname(&config.database)
        .application_name("airbyte-destination-postgres")
        .connect_timeout(Duration::from_secs(10))
        .keepalives(true);
    if let Some(password) = &config.password {
        pg.password(password.expose());
    }
    let mut ssl_mode = config.effective_ssl_mode();
    for (key, value) in config.jdbc_params()? {
        match key.as_str() {
            "connectTimeout" | "connect_timeout" | "loginTimeout" => {
                let secs: u64 = value.parse().map_err(|_| {
                    Error::config(format!("jdbc_url_params: {key} '{value}' is not a number"))
                })?;
                pg.connect_timeout(Duration::from_secs(secs));
            }
            "ApplicationName" | "application_name" => {
                pg.application_name(&value);
            }
            "options" => {
                pg.options(&value);
            }
            "sslmode" => {
                ssl_mode = match value.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" => SslMode::Allow,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    other => {
                        return Err(Error::config(format!(
                            "jdbc_url_params: sslmode '{other}' needs a CA certificate; use ssl_mode instead"
                        )));
                    }
                };
            }
            other => tracing::warn!(param = other, "ignoring an unsupported jdbc_url_params key"),
        }
    }
    let (mode, verify) = match &ssl_mode {
        SslMode::Disable => (tokio_postgres::config::SslMode::Disable, Verify::None),
        // `allow` would try without TLS first; trying TLS first accepts the same servers.
        SslMode::Allow | SslMode::Prefer => (tokio_postgres::config::SslMode::Prefer, Verify::None),
        SslMode::Require => (tokio_postgres::config::SslMode::Require, Verify::None),
        SslMode::VerifyCa { ca_certificate } => (
            tokio_postgres::config::SslMode::Require,
            Verify::Ca(ca_certificate.expose()),
        ),
        SslMode::VerifyFull { ca_certificate } => (
            tokio_postgres::config::SslMode::Require,
            Verify::Full(ca_certificate.expose()),
        ),
    };
    pg.ssl_mode(mode);
    let target = format!("{}:{}/{}", config.host, config.port, config.database);
    let client = if mode == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = pg
            .connect(NoTls)
            .await
            .map_err(|e| connect_error(&target, e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("postgres connection closed: {e}");
            }
        });
        client
    } else {
        let (client, connection) = pg
            .connect(postgres_common::connector(verify, None)?)
            .await
            .map_err(|e| connect_error(&target, e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("postgres connection closed: {e}");
            }
        });
        client
    };
    Ok(client)
}

fn connect_error(target: &str, e: tokio_postgres::Error) -> Error {
    pg_error(e).context(format!("cannot connect to {target}"))
}

/// A driver error as a `cdk::Error`: the server's message and detail; authentication,
/// missing database or privilege problems are config errors, broken connections transient.
pub fn pg_error(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let mut message = db.message().to_string();
        if let Some(detail) = db.detail() {
            message.push_str(&format!(" ({detail})"));
        }
        let code = db.code();
        let error = if [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            SqlState::INVALID_CATALOG_NAME,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::INVALID_SCHEMA_NAME,
        ]
        .contains(code)
        {
            Error::config(message)
        } else if code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
        {
            Error::transient(message)
        } else {
            Error::system(message)
        };
        return error.with_internal(format!("sqlstate {}", code.code()));
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    if e.is_closed() || message.contains("error connecting") || message.contains("i/o") {
        Error::transient(message)
    } else {
        Error::system(message)
    }
}
