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

/// `prefix` as part of a server-side name: ASCII letters and digits in lower case, anything
/// else `separator`, at most 30 characters.
#[cfg(feature = "testing")]
fn name_part(prefix: &str, separator: char) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                separator
            }
        })
        .take(30)
        .collect()
}

/// Runs `f` when the test process exits (statics are never dropped, so shared servers clean
/// up this way).
#[cfg(feature = "testing")]
fn at_exit(f: extern "C" fn()) {
    // SAFETY: registering a plain extern "C" function with atexit.
    unsafe {
        libc::atexit(f);
    }
}
