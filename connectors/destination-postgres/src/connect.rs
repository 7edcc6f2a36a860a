//! Connecting to the destination database through postgres-common.

use cdk::Result;
pub use postgres_common::{Connector, Purpose, pg_error};
use postgres_common::{Endpoint, Session};

use crate::config::PostgresConfig;

/// The destination sets nothing beyond the shared session setup (no statement or
/// idle-in-transaction timeout).
const SESSION: Session = Session {
    application_name: env!("CARGO_PKG_NAME"),
    setup: "",
};

/// The connector for a config (TLS material and `jdbc_url_params` are checked here).
pub fn connector(config: &PostgresConfig) -> Result<Connector> {
    let endpoint = Endpoint {
        host: &config.host,
        port: config.port,
        database: &config.database,
        username: &config.username,
        password: config.password.as_ref(),
        ssl_mode: config.ssl_mode.as_ref(),
        ssl: config.ssl,
        jdbc_url_params: config.jdbc_url_params.as_deref(),
        tunnel_method: config.tunnel_method.as_ref(),
    };
    Connector::new(&endpoint, &SESSION)
}
