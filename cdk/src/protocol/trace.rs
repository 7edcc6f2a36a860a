//! TRACE messages: errors, estimates, stream statuses and analytics.

use serde::{Deserialize, Serialize};

use super::StreamDescriptor;

/// A TRACE: when it was emitted (ms, a number) and one typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteTraceMessage {
    pub emitted_at: f64,
    #[serde(flatten)]
    pub payload: TracePayload,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TracePayload {
    #[serde(rename = "ERROR")]
    Error { error: AirbyteErrorTraceMessage },
    #[serde(rename = "ESTIMATE")]
    Estimate {
        estimate: AirbyteEstimateTraceMessage,
    },
    #[serde(rename = "STREAM_STATUS")]
    StreamStatus {
        stream_status: AirbyteStreamStatusTraceMessage,
    },
    #[serde(rename = "ANALYTICS")]
    Analytics {
        analytics: AirbyteAnalyticsTraceMessage,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    SystemError,
    ConfigError,
    TransientError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteErrorTraceMessage {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_type: Option<FailureType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_descriptor: Option<StreamDescriptor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EstimateType {
    Stream,
    Sync,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteEstimateTraceMessage {
    pub name: String,
    #[serde(rename = "type")]
    pub estimate_type: EstimateType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_estimate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_estimate: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AirbyteStreamStatus {
    Started,
    Running,
    Complete,
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusTraceMessage {
    pub stream_descriptor: StreamDescriptor,
    pub status: AirbyteStreamStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<AirbyteStreamStatusReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AirbyteStreamStatusReasonType {
    RateLimited,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusReason {
    #[serde(rename = "type")]
    pub reason_type: AirbyteStreamStatusReasonType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<AirbyteStreamStatusRateLimitedReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamStatusRateLimitedReason {
    /// When the quota resets, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_reset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteAnalyticsTraceMessage {
    #[serde(rename = "type")]
    pub analytics_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
