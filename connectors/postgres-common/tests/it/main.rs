//! Integration tests of postgres-common against the throwaway PostgreSQL cluster (and a
//! throwaway sshd for tunnels): the connect path (session, parameters, failure types,
//! retries), libpq's TLS modes and SSH tunnels.

mod connect;
mod tls;
mod tunnel;
mod tunnel_schema;

use cdk::Secret;
use cdk::testing::postgres::TestDatabase;
use postgres_common::tunnel::TunnelMethod;
use postgres_common::{Connector, Endpoint, Purpose, Session, SslMode};
use tokio_postgres::Client;

/// The connector's session of these tests.
pub const SESSION: Session = Session {
    application_name: "postgres-common-test",
    setup: "SET TimeZone TO 'Asia/Tokyo'",
};

/// What a connector config would say; tests change fields before calling [`Target::connector`].
pub struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub password: Option<Secret>,
    pub ssl_mode: Option<SslMode>,
    pub ssl: bool,
    pub jdbc_url_params: Option<String>,
    pub tunnel_method: Option<TunnelMethod>,
}

impl Target {
    pub fn of(db: &TestDatabase) -> Self {
        Self {
            host: db.host.clone(),
            port: db.port,
            database: db.name.clone(),
            username: db.user.clone(),
            password: Some(Secret::new(db.password.clone())),
            ssl_mode: None,
            ssl: false,
            jdbc_url_params: None,
            tunnel_method: None,
        }
    }

    /// `ssl_mode` from its JSON form, as a config gives it.
    pub fn ssl_mode(mut self, mode: serde_json::Value) -> Self {
        self.ssl_mode = Some(serde_json::from_value(mode).expect("an ssl_mode"));
        self
    }

    /// `tunnel_method` from its JSON form, as a config gives it.
    pub fn tunnel(mut self, method: serde_json::Value) -> Self {
        self.tunnel_method = Some(serde_json::from_value(method).expect("a tunnel_method"));
        self
    }

    pub fn user(mut self, name: &str) -> Self {
        self.username = name.to_string();
        self
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_string();
        self
    }

    pub fn connector(&self) -> cdk::Result<Connector> {
        let endpoint = Endpoint {
            host: &self.host,
            port: self.port,
            database: &self.database,
            username: &self.username,
            password: self.password.as_ref(),
            ssl_mode: self.ssl_mode.as_ref(),
            ssl: self.ssl,
            jdbc_url_params: self.jdbc_url_params.as_deref(),
            tunnel_method: self.tunnel_method.as_ref(),
        };
        Connector::new(&endpoint, &SESSION)
    }

    pub async fn connect(&self, purpose: Purpose) -> cdk::Result<Client> {
        self.connector()?.connect(purpose).await
    }
}

/// Whether the session is encrypted.
pub async fn encrypted(client: &Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

/// A setting of the session.
pub async fn show(client: &Client, name: &str) -> String {
    client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
        .get(0)
}
