//! What source-postgres and destination-postgres share, in one place: the `ssl_mode` config
//! type, `jdbc_url_params`, TLS in libpq's modes (client certificates, encrypted keys), the
//! one way to connect (socket, TLS fallbacks, retries, session setup), the SQLSTATE →
//! failure-type table, quoting, and SSH tunnels (Airbyte's `tunnel_method`).

mod calendar;
mod connect;
mod errors;
mod key;
mod params;
mod quote;
mod socket;
mod ssl_mode;
mod tls;
pub mod tunnel;

pub use calendar::civil_from_days;
pub use connect::{CONNECT_TIMEOUT, Connector, Driver, Endpoint, Purpose, SYNC_RETRY, Session};
pub use errors::{failure_type, pg_error, query_error};
pub use params::JdbcParams;
pub use quote::{quote_ident, quote_literal};
pub use socket::{PgSocket, Socket};
pub use ssl_mode::{SslMode, TlsCertificates};
