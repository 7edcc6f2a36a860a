//! Connecting: the tokio-postgres config from ours (TLS mode, JDBC-style parameters), the
//! session settings every connection uses, and errors turned into clear messages.

use std::time::Duration;

use cdk::{Error, Result};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::config::{PostgresConfig, SslMode, TlsCertificates};
use postgres_common::{ClientCert, MakeRustlsConnect, Verify};

/// Session settings that make value formats fixed, scans run in physical order, and the
/// snapshot-holding connection survive idle time.
const SESSION_SETUP: &str = "SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, MDY'; \
    SET IntervalStyle TO 'postgres'; SET extra_float_digits TO 3; \
    SET standard_conforming_strings TO on; SET synchronize_seqscans TO off; \
    SET max_parallel_workers_per_gather TO 0; SET statement_timeout TO 0; \
    SET idle_in_transaction_session_timeout TO 0";

/// Everything needed to open connections to the source database.
#[derive(Clone)]
pub struct Connector {
    pg: tokio_postgres::Config,
    tls: Tls,
    /// `host:port/database` for messages.
    target: String,
    user: String,
}

#[derive(Clone)]
enum Tls {
    Disable,
    /// Plain first, TLS when the server insists.
    Allow(MakeRustlsConnect),
    Use(PgSslMode, MakeRustlsConnect),
}

/// The client certificate and key of a verifying mode, which come together or not at all.
fn client_cert(c: &TlsCertificates) -> Result<Option<ClientCert<'_>>> {
    match (&c.client_certificate, &c.client_key) {
        (Some(certificate), Some(key)) => Ok(Some(ClientCert {
            certificate: certificate.expose(),
            key: key.expose(),
        })),
        (None, None) => Ok(None),
        _ => Err(Error::config(
            "ssl_mode: client_certificate and client_key must be given together",
        )),
    }
}

impl Connector {
    pub fn new(config: &PostgresConfig) -> Result<Self> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.host)
            .port(config.port)
            .dbname(&config.database)
            .user(&config.username)
            .application_name("source-postgres")
            .connect_timeout(Duration::from_secs(30))
            .keepalives(true);
        if let Some(password) = &config.password {
            pg.password(password.expose());
        }
        for (key, value) in parse_jdbc_params(config.jdbc_url_params.as_deref().unwrap_or(""))? {
            match key.as_str() {
                "options" => {
                    pg.options(&value);
                }
                "application_name" | "ApplicationName" => {
                    pg.application_name(&value);
                }
                "connect_timeout" | "connectTimeout" | "loginTimeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        Error::config(format!(
                            "jdbc_url_params: '{key}' must be a number of seconds, got '{value}'"
                        ))
                    })?;
                    pg.connect_timeout(Duration::from_secs(secs.max(1)));
                }
                "currentSchema" => {
                    pg.options(format!("-c search_path={value}"));
                }
                other => tracing::warn!(parameter = other, "jdbc_url_params: parameter ignored"),
            }
        }
        let unverified = || postgres_common::connector(Verify::None, None);
        let tls = match (&config.ssl_mode, config.ssl) {
            (Some(SslMode::Disable), _) | (None, Some(false)) => Tls::Disable,
            (Some(SslMode::Allow), _) => Tls::Allow(unverified()?),
            (Some(SslMode::Prefer), _) | (None, None) => Tls::Use(PgSslMode::Prefer, unverified()?),
            (Some(SslMode::Require), _) | (None, Some(true)) => {
                Tls::Use(PgSslMode::Require, unverified()?)
            }
            (Some(SslMode::VerifyCa(c)), _) => Tls::Use(
                PgSslMode::Require,
                postgres_common::connector(Verify::Ca(c.ca_certificate.expose()), client_cert(c)?)?,
            ),
            (Some(SslMode::VerifyFull(c)), _) => Tls::Use(
                PgSslMode::Require,
                postgres_common::connector(
                    Verify::Full(c.ca_certificate.expose()),
                    client_cert(c)?,
                )?,
            ),
        };
        Ok(Self {
            pg,
            tls,
            target: format!("{}:{}/{}", config.host, config.port, config.database),
            user: config.username.clone(),
        })
    }

    /// A connected client with the session set up; its connection runs as a task.
    pub async fn connect(&self) -> Result<Client> {
        let client = match &self.tls {
            Tls::Disable => self.connect_with(PgSslMode::Disable, NoTls).await,
            Tls::Use(mode, tls) => self.connect_with(*mode, tls.clone()).await,
            Tls::Allow(tls) => match self.connect_with(PgSslMode::Disable, NoTls).await {
                Ok(c) => Ok(c),
                Err(e) if e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
                    self.connect_with(PgSslMode::Require, tls.clone()).await
                }
                Err(e) => Err(e),
            },
        }
        .map_err(|e| self.connect_error(&e))?;
        client
            .batch_execute(SESSION_SETUP)
            .await
            .map_err(|e| query_error(&e, "cannot set up the session"))?;
        Ok(client)
    }

    async fn connect_with<T>(
        &self,
        mode: PgSslMode,
        tls: T,
    ) -> std::result::Result<Client, tokio_postgres::Error>
    where
        T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
        T::Stream: Send + 'static,
    {
        let mut pg = self.pg.clone();
        pg.ssl_mode(mode);
        let (client, connection) = pg.connect(tls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
        Ok(client)
    }

    fn connect_error(&self, e: &tokio_postgres::Error) -> Error {
        let prefix = format!(
            "cannot connect to postgres at '{}' as user '{}'",
            self.target, self.user
        );
        match e.as_db_error() {
            Some(db) => {
                let error = Error::config(format!("{prefix}: {}", db.message()));
                if is_transient_code(db.code()) {
                    Error::transient(error.message)
                } else {
                    error
                }
            }
            None => Error::config(format!("{prefix}: {}", error_chain(e))),
        }
    }
}

/// Parses `key=value&key2=value2` (values may be percent-encoded).
pub fn parse_jdbc_params(params: &str) -> Result<Vec<(String, String)>> {
    params
        .split('&')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::config(format!(
                    "jdbc_url_params: '{pair}' is not a key=value pair (pairs are separated by '&')"
                ))
            })?;
            Ok((percent_decode(k.trim()), percent_decode(v)))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_transient_code(code: &SqlState) -> bool {
    [
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::QUERY_CANCELED,
    ]
    .contains(code)
}

/// The message of an error and its causes (tokio-postgres puts the useful part in the source).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// An error from a query: permission and missing-object errors are the user's to fix, a lost
/// connection may go away on retry, anything else is unexpected.
pub fn query_error(e: &tokio_postgres::Error, context: impl std::fmt::Display) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let message = format!("{context}: {}", db.message());
            let code = db.code();
            if is_transient_code(code) {
                Error::transient(message)
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE
                || *code == SqlState::UNDEFINED_TABLE
                || *code == SqlState::UNDEFINED_COLUMN
                || *code == SqlState::INVALID_SCHEMA_NAME
                || *code == SqlState::INVALID_TEXT_REPRESENTATION
                || *code == SqlState::INVALID_DATETIME_FORMAT
                || *code == SqlState::DATETIME_FIELD_OVERFLOW
            {
                Error::config(message)
            } else {
                Error::system(message).with_internal(format!("sqlstate {}", code.code()))
            }
        }
        None if e.is_closed() => Error::transient(format!(
            "{context}: the connection to postgres was lost: {}",
            error_chain(e)
        )),
        None => Error::transient(format!("{context}: {}", error_chain(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_params() {
        assert_eq!(
            parse_jdbc_params("a=1&b=x%3Dy&&").unwrap(),
            [("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert!(parse_jdbc_params("").unwrap().is_empty());
        let e = parse_jdbc_params("novalue").unwrap_err();
        assert!(e.message.contains("'novalue' is not a key=value pair"));
    }
}
