//! Connecting to the source database through postgres-common, with the session settings
//! that make value formats fixed and scans run in physical order.

use cdk::Result;
pub use postgres_common::{Connector, Purpose, query_error};
use postgres_common::{Endpoint, Session};

use crate::config::PostgresConfig;

/// The source's own session settings (after the shared ones: no statement or
/// idle-in-transaction timeout, so the snapshot-holding connection survives idle time).
const SESSION: Session = Session {
    application_name: env!("CARGO_PKG_NAME"),
    setup: "SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, MDY'; \
        SET IntervalStyle TO 'postgres'; SET extra_float_digits TO 3; \
        SET standard_conforming_strings TO on; SET synchronize_seqscans TO off; \
        SET max_parallel_workers_per_gather TO 0",
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
        ssl: config.ssl == Some(true),
        jdbc_url_params: config.jdbc_url_params.as_deref(),
        tunnel_method: config.tunnel_method.as_ref(),
    };
    Connector::new(&endpoint, &SESSION)
}
