//! Testing support: run connector binaries and inspect their messages ([`capture`]), the
//! acceptance suite every connector runs ([`acceptance`]), and with the `testing` feature,
//! throwaway PostgreSQL, S3, HTTP and SSH servers.

pub mod acceptance;
pub mod capture;
mod protocol_schema;

#[cfg(feature = "testing")]
pub mod http;
#[cfg(feature = "testing")]
pub mod postgres;
#[cfg(feature = "testing")]
pub mod postgres_tls;
#[cfg(feature = "testing")]
pub mod s3;
#[cfg(feature = "testing")]
pub mod sshd;

pub use capture::{Captured, Run};
pub use protocol_schema::{ProtocolSchema, protocol_schema};
