//! The one error type connectors return: a message for users, a failure type for the platform.

use std::time::Duration;

use crate::protocol::{FailureType, StreamDescriptor};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error that knows how the platform should treat it (config, system or transient) and,
/// optionally, which stream it belongs to. Its `Display` is the user-facing message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
#[error("{message}")]
pub struct Error {
    pub failure_type: FailureType,
    pub message: String,
    /// Technical detail for the logs (`internal_message` in the TRACE).
    pub internal: Option<String>,
    pub stream: Option<StreamDescriptor>,
}

impl Error {
    fn new(failure_type: FailureType, message: impl Into<String>) -> Self {
        Self {
            failure_type,
            message: message.into(),
            internal: None,
            stream: None,
        }
    }

    /// The user's config or catalog is wrong; retrying will not help.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(FailureType::ConfigError, message)
    }

    /// A bug or an unexpected condition in the connector or the remote system.
    pub fn system(message: impl Into<String>) -> Self {
        Self::new(FailureType::SystemError, message)
    }

    /// A failure that may go away on retry (network, rate limits, 5xx).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(FailureType::TransientError, message)
    }

    pub fn with_internal(mut self, internal: impl ToString) -> Self {
        self.internal = Some(internal.to_string());
        self
    }

    pub fn for_stream(mut self, stream: StreamDescriptor) -> Self {
        self.stream = Some(stream);
        self
    }

    pub fn is_transient(&self) -> bool {
        self.failure_type == FailureType::TransientError
    }

    /// Prefixes the message with context, keeping the failure type.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::system(format!("i/o error: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::system(format!("json error: {e}"))
    }
}

/// How often and how long to retry transient errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or runs out of attempts
/// (exponential backoff between attempts). The final error says how many attempts were made.
pub async fn retry<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut delay = policy.initial_delay;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                tracing::warn!(attempt, error = %e, "transient error, retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max_delay);
                attempt += 1;
            }
            Err(e) if e.is_transient() => {
                return Err(e.context(format!("gave up after {attempt} attempts")));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn retries_transient_then_gives_up() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let err = retry(policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::transient("flaky"))
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(err.message, "gave up after 3 attempts: flaky");

        calls.store(0, Ordering::SeqCst);
        let err = retry(policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::config("bad"))
        })
        .await
        .unwrap_err();
        assert_eq!(
            (calls.load(Ordering::SeqCst), err.message.as_str()),
            (1, "bad")
        );
    }
}
