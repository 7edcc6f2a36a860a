//! Connecting, the one way both connectors do it: the socket (a TCP connection, or a channel
//! through the SSH tunnel of `tunnel_method`) is opened in one place
//! (`Connector::open_socket`) and handed to tokio-postgres (`Config::connect_raw`) with the TLS
//! of the `ssl_mode` in effect; libpq's fallbacks for `allow` and `prefer`; a timeout over the
//! whole attempt; retries of transient failures during syncs; the session setup.
//!
//! Failure types (as Airbyte's connectors report them): at `check`, every failure to connect
//! is a config error — an unreachable host, a refused port, a wrong password or a TLS
//! mismatch are all for the user to fix, and `check` must answer FAILED rather than crash.
//! During a sync (discover, read, write) an unreachable server or a dropped connection is
//! transient and retried; authentication and missing databases stay config errors.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use cdk::protocol::FailureType;
use cdk::{Error, Result, RetryPolicy, Secret};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::errors::{io_kind, pg_error};
use crate::params::JdbcParams;
use crate::socket::PgSocket;
use crate::ssl_mode::{SslMode, TlsCertificates};
use crate::tls::{ClientCert, MakeRustlsConnect, Verify};
use crate::tunnel::{SshTunnel, TunnelMethod};

/// What both connectors' configs say about the connection.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub username: &'a str,
    pub password: Option<&'a Secret>,
    pub ssl_mode: Option<&'a SslMode>,
    /// The deprecated boolean `ssl` (true: `require` when `ssl_mode` is not set).
    pub ssl: bool,
    pub jdbc_url_params: Option<&'a str>,
    /// Airbyte's `tunnel_method`: an SSH bastion to reach `host:port` through.
    pub tunnel_method: Option<&'a TunnelMethod>,
}

/// What the connector (not the user) sets on each session.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    /// `application_name`, unless `jdbc_url_params` names one.
    pub application_name: &'static str,
    /// The connector's own `SET` statements, run after the shared ones.
    pub setup: &'static str,
}

/// Why a connection is opened: it decides retries and failure types (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `check`: one attempt; any failure is a config error.
    Check,
    /// discover, read, write: transient failures are retried.
    Sync,
}

/// Attempts, and the backoff between them, for connections during a sync.
pub const SYNC_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(5),
};

/// The time an attempt (socket, TLS, authentication) may take, unless `jdbc_url_params` sets
/// `connectTimeout` (pgjdbc's default, 10 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Statements every session runs first: connectors run long statements (COPY of a whole
/// table) and hold transactions open between batches, so a role's default timeouts must not
/// cut them. A timeout the user sets in `jdbc_url_params` `options` is kept.
const SHARED_SETUP: [(&str, &str); 2] = [
    ("statement_timeout", "SET statement_timeout TO 0"),
    (
        "idle_in_transaction_session_timeout",
        "SET idle_in_transaction_session_timeout TO 0",
    ),
];

/// Everything needed to open connections to one database; cheap to clone.
#[derive(Clone)]
pub struct Connector {
    pg: tokio_postgres::Config,
    host: String,
    port: u16,
    timeout: Duration,
    tls: Tls,
    setup: String,
    /// `host:port/database` for messages.
    target: String,
    user: String,
    /// The SSH tunnel every connection goes through, shared by clones (one login).
    tunnel: Option<SshTunnel>,
}

#[derive(Clone)]
enum Tls {
    Disable,
    /// Plain first; TLS when the server refuses the plain connection.
    Allow(MakeRustlsConnect),
    /// TLS first (plain when the server has no TLS); plain when the server refuses TLS.
    Prefer(MakeRustlsConnect),
    Require(MakeRustlsConnect),
}

/// How one attempt failed.
enum Failure {
    /// The socket could not be opened.
    Unreachable(io::Error),
    /// No connection within the timeout.
    TimedOut,
    /// The host name cannot be a TLS server name.
    TlsName(String),
    /// The server was reached; TLS or the startup failed.
    Pg(tokio_postgres::Error),
    /// The SSH tunnel could not carry the connection (its error says why and of which type).
    Tunnel(Error),
}

impl Connector {
    /// Checks the TLS material and parameters (config errors naming the field) and prepares
    /// the connection settings.
    pub fn new(endpoint: &Endpoint<'_>, session: &Session) -> Result<Self> {
        let params = JdbcParams::parse(endpoint.jdbc_url_params)?;
        let mode = SslMode::resolve(endpoint.ssl_mode, endpoint.ssl, params.sslmode.as_deref())?;
        let mut pg = tokio_postgres::Config::new();
        pg.dbname(endpoint.database)
            .user(endpoint.username)
            .application_name(
                params
                    .application_name
                    .as_deref()
                    .unwrap_or(session.application_name),
            );
        if let Some(password) = endpoint.password {
            pg.password(password.expose());
        }
        if !params.options.is_empty() {
            pg.options(params.options.join(" "));
        }
        let mut setup: Vec<&str> = SHARED_SETUP
            .iter()
            .filter(|(name, _)| !params.sets(name))
            .map(|(_, sql)| *sql)
            .collect();
        if !session.setup.is_empty() {
            setup.push(session.setup);
        }
        Ok(Self {
            pg,
            host: endpoint.host.to_string(),
            port: endpoint.port,
            timeout: params.connect_timeout.unwrap_or(CONNECT_TIMEOUT),
            tls: tls_for(&mode)?,
            setup: setup.join("; "),
            target: format!("{}:{}/{}", endpoint.host, endpoint.port, endpoint.database),
            user: endpoint.username.to_string(),
            tunnel: endpoint
                .tunnel_method
                .map(TunnelMethod::tunnel)
                .transpose()?
                .flatten(),
        })
    }

    /// A connected client with the session set up; its connection runs as a task on the
    /// current runtime. For [`Purpose::Sync`], transient failures are retried
    /// ([`SYNC_RETRY`]); for [`Purpose::Check`], any failure is a config error.
    pub async fn connect(&self, purpose: Purpose) -> Result<Client> {
        let (client, driver) = self.connect_driven(purpose).await?;
        driver.spawn();
        Ok(client)
    }

    /// [`connect`](Self::connect), leaving the connection for the caller to drive (see
    /// [`Driver`]).
    pub async fn connect_driven(&self, purpose: Purpose) -> Result<(Client, Driver)> {
        match purpose {
            Purpose::Check => self.connect_once().await.map_err(as_config_error),
            Purpose::Sync => cdk::retry(SYNC_RETRY, || self.connect_once()).await,
        }
    }

    async fn connect_once(&self) -> Result<(Client, Driver)> {
        // The bastion login, outside the attempt's timeout so its own errors come through.
        if let Some(tunnel) = &self.tunnel {
            tunnel.connect().await?;
        }
        let (client, mut driver) = match &self.tls {
            Tls::Disable => self.attempt(PgSslMode::Disable, NoTls).await,
            Tls::Require(tls) => self.attempt_tls(PgSslMode::Require, tls).await,
            Tls::Prefer(tls) => match self.attempt_tls(PgSslMode::Prefer, tls).await {
                Err(Failure::Pg(e)) => {
                    tracing::debug!(error = %e, "ssl_mode prefer: retrying without TLS");
                    self.attempt(PgSslMode::Disable, NoTls).await
                }
                other => other,
            },
            Tls::Allow(tls) => match self.attempt(PgSslMode::Disable, NoTls).await {
                Err(Failure::Pg(e)) if e.as_db_error().is_some() => {
                    tracing::debug!(error = %e, "ssl_mode allow: retrying with TLS");
                    self.attempt_tls(PgSslMode::Require, tls).await
                }
                other => other,
            },
        }
        .map_err(|f| self.connect_error(f))?;
        if !self.setup.is_empty() {
            driver
                .alongside(client.batch_execute(&self.setup))
                .await
                .map_err(|e| pg_error(e).context("cannot set up the session"))?;
        }
        Ok((client, driver))
    }

    async fn attempt_tls(
        &self,
        mode: PgSslMode,
        tls: &MakeRustlsConnect,
    ) -> std::result::Result<(Client, Driver), Failure> {
        let mut tls = tls.clone();
        let connect = MakeTlsConnect::<PgSocket>::make_tls_connect(&mut tls, &self.host)
            .map_err(|e| Failure::TlsName(e.to_string()))?;
        self.attempt(mode, connect).await
    }

    /// One attempt: the socket, then TLS and the startup over it, within the timeout.
    async fn attempt<T>(
        &self,
        mode: PgSslMode,
        tls: T,
    ) -> std::result::Result<(Client, Driver), Failure>
    where
        T: TlsConnect<PgSocket>,
        T::Stream: Send + 'static,
    {
        let mut pg = self.pg.clone();
        pg.ssl_mode(mode);
        let work = async {
            let socket = self.open_socket().await?;
            pg.connect_raw(socket, tls).await.map_err(Failure::Pg)
        };
        let (client, connection) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| Failure::TimedOut)??;
        Ok((client, Driver::new(connection)))
    }

    /// The one place a connection's byte stream is made: a channel to `host:port` through the
    /// SSH tunnel when one is configured (TLS, if any, then runs inside it, verified against
    /// `host`), else a TCP connection.
    async fn open_socket(&self) -> std::result::Result<PgSocket, Failure> {
        match &self.tunnel {
            Some(tunnel) => tunnel
                .open_stream(&self.host, self.port)
                .await
                .map(PgSocket::new)
                .map_err(Failure::Tunnel),
            None => crate::socket::tcp(&self.host, self.port)
                .await
                .map_err(Failure::Unreachable),
        }
    }

    /// A failed attempt as a `cdk::Error` of its failure type (during a sync; `check` makes
    /// every one a config error).
    fn connect_error(&self, failure: Failure) -> Error {
        let prefix = format!(
            "cannot connect to postgres at '{}' as user '{}'",
            self.target, self.user
        );
        match failure {
            Failure::TlsName(e) => Error::config(format!(
                "{prefix}: '{}' cannot be checked against a certificate: {e}",
                self.host
            )),
            Failure::Tunnel(e) => e,
            Failure::Unreachable(e) => Error::transient(format!("{prefix}: {e}")),
            Failure::TimedOut => Error::transient(format!(
                "{prefix}: no connection within {} s",
                self.timeout.as_secs()
            )),
            Failure::Pg(e) if e.as_db_error().is_some() || e.is_closed() => {
                pg_error(e).context(prefix)
            }
            // A TLS or protocol mismatch (no TLS on the server, an unverifiable certificate)
            // is the config's; a connection cut during the startup may pass.
            Failure::Pg(e) => {
                let message = format!("{prefix}: {}", cdk::chain_text(&e));
                match io_kind(&e) {
                    Some(
                        io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::TimedOut,
                    ) => Error::transient(message),
                    _ => Error::config(message),
                }
            }
        }
    }
}

/// What moves a connection's messages between its socket and its [`Client`]; someone must
/// poll it for the client to work. [`Driver::spawn`] runs it as a task of its own;
/// [`Driver::alongside`] polls it in the task doing the work, which spares a wakeup of another
/// thread for every read of the socket (a bulk read is otherwise two tasks passing each batch
/// of messages between the runtime's threads). The server's notices ("schema … already exists,
/// skipping") are DEBUG lines, not the driver's INFO ones.
pub struct Driver(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Driver {
    fn new<S, T>(mut connection: tokio_postgres::Connection<S, T>) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self(Some(Box::pin(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        tracing::debug!("server {}: {}", notice.severity(), notice.message());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "postgres connection closed with an error");
                        break;
                    }
                    None => break,
                }
            }
        })))
    }

    /// Runs `work` (which uses the client) while driving the connection in the same task.
    /// The connection is polled first, so the messages it reads are there for `work` to take
    /// in the same turn.
    pub async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Some(connection) = &mut self.0
                && connection.as_mut().poll(cx).is_ready()
            {
                self.0 = None; // closed: `work` sees it through the client
            }
            work.as_mut().poll(cx)
        })
        .await
    }

    /// Drives the connection as a task of its own from now on (until its client is dropped).
    pub fn spawn(self) {
        if let Some(connection) = self.0 {
            tokio::spawn(connection);
        }
    }
}

fn as_config_error(e: Error) -> Error {
    if e.failure_type == FailureType::ConfigError {
        return e;
    }
    let internal = e.internal.clone();
    let config = Error::config(e.message);
    match internal {
        Some(internal) => config.with_internal(internal),
        None => config,
    }
}

/// The TLS connector of a mode (certificates and keys are read here, once).
fn tls_for(mode: &SslMode) -> Result<Tls> {
    let unverified = || crate::tls::connector(Verify::None, None);
    Ok(match mode {
        SslMode::Disable => Tls::Disable,
        SslMode::Allow => Tls::Allow(unverified()?),
        SslMode::Prefer => Tls::Prefer(unverified()?),
        SslMode::Require => Tls::Require(unverified()?),
        SslMode::VerifyCa(c) => Tls::Require(crate::tls::connector(
            Verify::Ca(c.ca_certificate.expose()),
            client_cert(c)?,
        )?),
        SslMode::VerifyFull(c) => Tls::Require(crate::tls::connector(
            Verify::Full(c.ca_certificate.expose()),
            client_cert(c)?,
        )?),
    })
}

/// A field that is set (Airbyte's forms send empty strings for fields left blank).
fn given(field: &Option<Secret>) -> Option<&str> {
    field
        .as_ref()
        .map(|s| s.expose().as_str())
        .filter(|s| !s.trim().is_empty())
}

/// The client certificate and key of a verifying mode, which come together or not at all.
fn client_cert(c: &TlsCertificates) -> Result<Option<ClientCert<'_>>> {
    match (given(&c.client_certificate), given(&c.client_key)) {
        (Some(certificate), Some(key)) => Ok(Some(ClientCert {
            certificate,
            key,
            key_password: given(&c.client_key_password),
        })),
        (None, None) => Ok(None),
        _ => Err(Error::config(
            "ssl_mode: client_certificate and client_key must be given together",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn connect_futures_are_send() {
        let endpoint = Endpoint {
            host: "h",
            port: 5432,
            database: "d",
            username: "u",
            password: None,
            ssl_mode: None,
            ssl: false,
            jdbc_url_params: None,
            tunnel_method: None,
        };
        let session = Session {
            application_name: "test",
            setup: "",
        };
        let connector = Connector::new(&endpoint, &session).unwrap();
        assert_send(&connector.connect(Purpose::Sync));
        assert_send(&connector.connect(Purpose::Check));
    }
}
