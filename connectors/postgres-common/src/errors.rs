//! Driver errors as `cdk::Error`s: one SQLSTATE → failure-type table for both connectors, the
//! server's message (and detail) for users, the SQLSTATE for the logs.

use cdk::Error;
use cdk::protocol::FailureType;
use tokio_postgres::error::SqlState;

/// How the platform should treat a server error, by SQLSTATE:
/// - config: what the user must fix — class 28 (authentication: wrong password, no pg_hba
///   entry), 3D000 (no such database), 3F000 (no such schema), 42501 (no privilege), 42P01 /
///   42703 (a configured table or column that does not exist);
/// - transient: what may pass on retry — class 08 (connection exceptions), 53300 (too many
///   connections), 57P01-57P03 (shutdown, restart), 57014 (statement cancelled by an
///   administrator), 40001 / 40P01 (serialization failure, deadlock), 55P03 (lock timeout);
/// - system: everything else (a bug, or something unexpected on the server).
pub fn failure_type(code: &SqlState) -> FailureType {
    let class = &code.code()[..2];
    if class == "28"
        || [
            SqlState::INVALID_CATALOG_NAME,
            SqlState::INVALID_SCHEMA_NAME,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
        ]
        .contains(code)
    {
        FailureType::ConfigError
    } else if class == "08"
        || [
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
        ]
        .contains(code)
    {
        FailureType::TransientError
    } else {
        FailureType::SystemError
    }
}

/// A driver error as a `cdk::Error`: a server error by [`failure_type`], with its message and
/// detail; a lost connection or another i/o failure transient; anything else a system error.
pub fn pg_error(e: tokio_postgres::Error) -> Error {
    classify(&e)
}

/// [`pg_error`] of a borrowed error, its message prefixed with `context`.
pub fn query_error(e: &tokio_postgres::Error, context: impl std::fmt::Display) -> Error {
    classify(e).context(context)
}

fn classify(e: &tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let mut message = db.message().to_string();
        if let Some(detail) = db.detail() {
            message.push_str(&format!(" ({detail})"));
        }
        let code = db.code();
        return Error::new(failure_type(code), message)
            .with_internal(format!("sqlstate {}", code.code()));
    }
    let message = cdk::chain_text(e);
    if e.is_closed() || io_kind(e).is_some() {
        Error::transient(message)
    } else {
        Error::system(message)
    }
}

/// The kind of the first i/o error among an error's causes, if any.
pub(crate) fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_table() {
        for (code, expected) in [
            ("28P01", FailureType::ConfigError),
            ("28000", FailureType::ConfigError),
            ("3D000", FailureType::ConfigError),
            ("3F000", FailureType::ConfigError),
            ("42501", FailureType::ConfigError),
            ("42P01", FailureType::ConfigError),
            ("42703", FailureType::ConfigError),
            ("08006", FailureType::TransientError),
            ("08001", FailureType::TransientError),
            ("53300", FailureType::TransientError),
            ("57P01", FailureType::TransientError),
            ("57P03", FailureType::TransientError),
            ("57014", FailureType::TransientError),
            ("40001", FailureType::TransientError),
            ("40P01", FailureType::TransientError),
            ("55P03", FailureType::TransientError),
            ("42601", FailureType::SystemError),
            ("22P02", FailureType::SystemError),
            ("XX000", FailureType::SystemError),
        ] {
            assert_eq!(failure_type(&SqlState::from_code(code)), expected, "{code}");
        }
    }

    #[test]
    fn chains_name_each_cause_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error connecting")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(inner);
        assert_eq!(cdk::chain_text(&e), "error connecting: refused");
        assert_eq!(io_kind(&e), Some(std::io::ErrorKind::ConnectionRefused));
    }
}
