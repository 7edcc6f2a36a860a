//! The one error type connectors return: a message for users, a failure type for the platform,
//! and the underlying cause when there is one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{FailureType, StreamDescriptor};

/// The kit's result type: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause behind an [`Error`], shared so the error stays `Clone`.
type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error that knows how the platform should treat it (config, system or transient) and,
/// optionally, which stream it belongs to. Its `Display` is the user-facing message, which
/// already includes the text of its cause; [`source`](std::error::Error::source) returns the
/// cause itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Error {
    /// How the platform should treat the failure.
    pub failure_type: FailureType,
    /// The user-facing message: lower-case, quoting the offending value.
    pub message: String,
    /// Technical detail for the logs (`internal_message` in the TRACE).
    pub internal: Option<String>,
    /// The stream the error belongs to, if any.
    pub stream: Option<StreamDescriptor>,
    cause: Option<Cause>,
}

impl Error {
    /// An error of `failure_type` with `message`.
    pub fn new(failure_type: FailureType, message: impl Into<String>) -> Self {
        Self {
            failure_type,
            message: message.into(),
            internal: None,
            stream: None,
            cause: None,
        }
    }

    /// An error of `failure_type` caused by `cause`: the message is `"{context}: "` followed by
    /// the cause and each of its sources, joined by `": "` (a source whose text is already in
    /// the message is left out, as wrapping errors often repeat their inner error).
    pub fn from_cause<E>(failure_type: FailureType, context: impl fmt::Display, cause: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let message = format!("{context}: {}", chain_text(&cause));
        Self {
            cause: Some(Arc::new(cause)),
            ..Self::new(failure_type, message)
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

    /// Adds technical detail for the logs.
    pub fn with_internal(mut self, internal: impl ToString) -> Self {
        self.internal = Some(internal.to_string());
        self
    }

    /// Marks the error as belonging to `stream`.
    pub fn for_stream(mut self, stream: StreamDescriptor) -> Self {
        self.stream = Some(stream);
        self
    }

    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        self.failure_type == FailureType::TransientError
    }

    /// Prefixes the message with context, keeping the failure type and the cause.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

/// The text of `e` and of each of its sources, joined by `": "`, leaving out a source whose
/// text is already there (wrapping errors often repeat their inner error).
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// Equal when failure type, message, internal detail, stream and the cause's text are.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.failure_type == other.failure_type
            && self.message == other.message
            && self.internal == other.internal
            && self.stream == other.stream
            && self.cause.as_ref().map(ToString::to_string)
                == other.cause.as_ref().map(ToString::to_string)
    }
}

/// Turns an I/O result into the kit's, saying which file or what operation failed. There is
/// deliberately no `From<std::io::Error>` for [`Error`]: a bare `?` would lose the path.
pub trait IoResultExt<T> {
    /// A system error `"i/o error on '{path}': {cause}"`.
    fn with_path(self, path: &Path) -> Result<T>;

    /// A system error `"{what}: {cause}"`, for I/O that has no path (stdin, a socket).
    fn io_context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> IoResultExt<T> for std::io::Result<T> {
    fn with_path(self, path: &Path) -> Result<T> {
        self.map_err(|e| {
            let context = format!("i/o error on '{}'", path.display());
            Error::from_cause(FailureType::SystemError, context, e)
        })
    }

    fn io_context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::from_cause(FailureType::SystemError, what, e))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::from_cause(FailureType::SystemError, "json error", e)
    }
}

/// How often and how long to retry transient errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles after each failure.
    pub initial_delay: Duration,
    /// The longest wait between two attempts.
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

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn from_cause_renders_the_chain_once_and_keeps_the_cause() {
        let inner = Layer("connection refused", None);
        let middle = Layer(
            "error connecting: connection refused",
            Some(Box::new(inner)),
        );
        let outer = Layer("db error", Some(Box::new(middle)));
        let err = Error::from_cause(FailureType::TransientError, "cannot connect", outer);
        assert_eq!(
            err.message,
            "cannot connect: db error: error connecting: connection refused"
        );
        assert!(err.is_transient());
        let source = std::error::Error::source(&err).expect("the cause is kept");
        assert_eq!(source.to_string(), "db error");
        assert_eq!(err.clone(), err);
    }

    #[test]
    fn io_errors_name_their_path() {
        let path = std::path::Path::new("/nonexistent/cdk-test-file");
        let err = std::fs::read(path).with_path(path).unwrap_err();
        assert!(
            err.message
                .starts_with("i/o error on '/nonexistent/cdk-test-file': "),
            "{}",
            err.message
        );
        assert_eq!(err.failure_type, FailureType::SystemError);
        let err = std::io::Result::<()>::Err(std::io::ErrorKind::BrokenPipe.into())
            .io_context("cannot write to stdout")
            .unwrap_err();
        assert!(
            err.message.starts_with("cannot write to stdout: "),
            "{}",
            err.message
        );
    }
}
