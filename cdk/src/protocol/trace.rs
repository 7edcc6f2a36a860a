//! TRACE messages: errors, estimates, stream statuses and analytics.

use serde::{Deserialize, Serialize};

use super::StreamDescriptor;

/// A TRACE: when it was emitted (ms, a number) and one typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteTraceMessage {
    /// When it was emitted (ms since the epoch).
    pub emitted_at: f64,
    /// The trace's type and content.
    #[serde(flatten)]
    pub payload: TracePayload,
}

/// The typed content of a TRACE, chosen by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TracePayload {
    /// `ERROR`: the sync (or one stream) failed.
    #[serde(rename = "ERROR")]
    Error {
        /// What failed and how the platform should treat it.
        error: AirbyteErrorTraceMessage,
    },
    /// `ESTIMATE`: how much a stream or the sync will emit.
    #[serde(rename = "ESTIMATE")]
    Estimate {
        /// The estimate.
        estimate: AirbyteEstimateTraceMessage,
    },
    /// `STREAM_STATUS`: a stream started, is running, completed or stopped.
    #[serde(rename = "STREAM_STATUS")]
    StreamStatus {
        /// The status.
        stream_status: AirbyteStreamStatusTraceMessage,
    },
    /// `ANALYTICS`: an event for the platform's analytics.
    #[serde(rename = "ANALYTICS")]
    Analytics {
        /// The event.
        analytics: AirbyteAnalyticsTraceMessage,
    },
    /// A trace type this version does not know; kept so readers can skip it.
    #[serde(other)]
    Unknown,
}

/// How the platform should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// A bug or unexpected condition; the platform may retry the sync.
    SystemError,
    /// The user's config is wrong; retrying will not help.
    ConfigError,
    /// A failure that may go away on retry.
    TransientError,
}

/// `ERROR` trace: what failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteErrorTraceMessage {
    /// The message for the user.
    pub message: String,
    /// Technical detail for the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_message: Option<String>,
    /// A stack trace, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    /// How the platform should treat the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_type: Option<FailureType>,
    /// The stream that failed, when only one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_descriptor: Option<StreamDescriptor>,
}

/// What an ESTIMATE counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EstimateType {
    /// One stream.
    Stream,
    /// The whole sync.
    Sync,
}

/// `ESTIMATE` trace: how much a stream or the sync will emit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteEstimateTraceMessage {
    /// The stream's name.
    pub name: String,
    /// A stream or the whole sync.
    #[serde(rename = "type")]
    pub estimate_type: EstimateType,
    /// The stream's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Records expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_estimate: Option<i64>,
    /// Bytes expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_estimate: Option<i64>,
}

/// A stream's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AirbyteStreamStatus {
    /// The stream is about to be read.
    Started,
    /// The stream is being read (records follow).
    Running,
    /// The stream was read completely.
    Complete,
    /// The stream stopped before it was complete.
    Incomplete,
}

/// `STREAM_STATUS` trace: a stream's status and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusTraceMessage {
    /// The stream.
    pub stream_descriptor: StreamDescriptor,
    /// Its status.
    pub status: AirbyteStreamStatus,
    /// Why (a RUNNING status may say it is rate limited).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<AirbyteStreamStatusReason>,
}

/// `AirbyteStreamStatusReason.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AirbyteStreamStatusReasonType {
    /// The stream waits on a rate limit.
    RateLimited,
}

/// Why a stream has its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusReason {
    /// The kind of reason.
    #[serde(rename = "type")]
    pub reason_type: AirbyteStreamStatusReasonType,
    /// Detail of a rate-limit wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<AirbyteStreamStatusRateLimitedReason>,
}

/// A rate-limit wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusRateLimitedReason {
    /// When the quota resets, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_reset: Option<i64>,
}

/// `ANALYTICS` trace: an event for the platform's analytics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteAnalyticsTraceMessage {
    /// The event's type.
    #[serde(rename = "type")]
    pub analytics_type: String,
    /// The event's value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
