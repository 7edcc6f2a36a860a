//! What to do with a response: `DefaultErrorHandler` (response filters, then Airbyte's default
//! mapping: 429 rate limited, 408/5xx retried, 401/403 config errors, other 4xx failures),
//! `CompositeErrorHandler`, and the backoff strategies (exponential, constant, wait time from
//! a header, wait until a time from a header; `Retry-After` honoured by default).

use std::time::{SystemTime, UNIX_EPOCH};

use cdk::Result;
use cdk::protocol::FailureType;
use serde_json::Value;

use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Component, Node};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Success,
    Fail,
    Retry,
    Ignore,
    RateLimited,
    RefreshTokenThenRetry,
    /// `RESET_PAGINATION`: the slice's pagination starts again from the first page.
    ResetPagination,
    /// `REDUCE_PAGE_SIZE`: the same page again with a smaller page size ([`crate::page_size`]).
    ReducePageSize,
    /// `SPLIT_REQUEST_WINDOW`: the slice's window again in two halves ([`crate::window_split`]).
    SplitRequestWindow,
}

/// The verdict on one response (or transport error).
#[derive(Debug, Clone)]
pub struct Resolution {
    pub action: Action,
    pub failure_type: FailureType,
    pub message: Option<String>,
}

/// What the handler sees of a response.
pub struct Seen<'a> {
    /// `None` for a transport error (connection refused, timeout).
    pub status: Option<u16>,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Variables for predicates and messages (`response`, `headers`).
    pub vars: &'a Vars,
}

#[derive(Debug, Clone)]
pub enum ErrorHandler {
    Default(DefaultErrorHandler),
    Composite(Vec<ErrorHandler>),
}

#[derive(Debug, Clone)]
pub struct DefaultErrorHandler {
    filters: Vec<ResponseFilter>,
    backoff: Vec<Backoff>,
    max_retries: u32,
}

#[derive(Debug, Clone)]
struct ResponseFilter {
    action: Action,
    failure_type: Option<FailureType>,
    http_codes: Vec<u16>,
    error_message_contains: Option<String>,
    predicate: Option<Template>,
    error_message: Option<Template>,
}

#[derive(Debug, Clone)]
pub enum Backoff {
    Exponential {
        factor: f64,
    },
    Constant {
        seconds: f64,
        jitter: f64,
    },
    WaitTimeFromHeader {
        header: String,
        regex: Option<regex::Regex>,
        max: Option<f64>,
    },
    WaitUntilTimeFromHeader {
        header: String,
        regex: Option<regex::Regex>,
        min_wait: Option<f64>,
    },
    /// `WaitTimeFromResponse`: seconds from an expression over `response` (the JSON body,
    /// `{}` when it is not JSON) and `headers`.
    WaitTimeFromResponse {
        wait: crate::interpolation::Template,
        max: Option<f64>,
    },
}

const HANDLERS: [&str; 2] = ["DefaultErrorHandler", "CompositeErrorHandler"];
const BACKOFFS: [&str; 5] = [
    "ExponentialBackoffStrategy",
    "ConstantBackoffStrategy",
    "WaitTimeFromHeader",
    "WaitUntilTimeFromHeader",
    "WaitTimeFromResponse",
];

impl Default for ErrorHandler {
    fn default() -> Self {
        ErrorHandler::Default(DefaultErrorHandler {
            filters: Vec::new(),
            backoff: Vec::new(),
            max_retries: 5,
        })
    }
}

fn number_field(c: &mut Component<'_>, b: &Build, key: &str) -> Result<Option<f64>> {
    match c.get(key) {
        Some(Value::String(s)) => {
            let t = c.template_of(b, key, &s)?;
            match t.eval(&Vars::new())? {
                Value::Number(n) => Ok(n.as_f64()),
                Value::Null => Ok(None),
                other => Err(c.error(format!("'{key}' must evaluate to a number, got {other}"))),
            }
        }
        Some(Value::Number(n)) => Ok(n.as_f64()),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(c.error(format!("'{key}' must be a number, got {other}"))),
    }
}

impl ErrorHandler {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("DefaultErrorHandler"))?;
        c.expect(&HANDLERS)?;
        if c.type_name == "CompositeErrorHandler" {
            let handlers = c
                .children("error_handlers")?
                .into_iter()
                .map(|n| Self::decode(n, b))
                .collect::<Result<Vec<_>>>()?;
            if handlers.is_empty() {
                return Err(c.error("error_handlers must not be empty"));
            }
            c.finish()?;
            return Ok(ErrorHandler::Composite(handlers));
        }
        let max_retries = number_field(&mut c, b, "max_retries")?
            .unwrap_or(5.0)
            .max(0.0) as u32;
        let filters = c
            .children("response_filters")?
            .into_iter()
            .map(|n| ResponseFilter::decode(n, b))
            .collect::<Result<Vec<_>>>()?;
        let backoff = c
            .children("backoff_strategies")?
            .into_iter()
            .map(|n| Backoff::decode(n, b))
            .collect::<Result<Vec<_>>>()?;
        c.finish()?;
        Ok(ErrorHandler::Default(DefaultErrorHandler {
            filters,
            backoff,
            max_retries,
        }))
    }

    /// Decides what a response means. A composite handler takes the first handler's verdict
    /// that is not a failure, else the last verdict.
    pub fn interpret(&self, seen: &Seen<'_>) -> Result<Resolution> {
        match self {
            ErrorHandler::Default(h) => h.interpret(seen),
            ErrorHandler::Composite(handlers) => {
                let mut last = None;
                for h in handlers {
                    let r = h.interpret(seen)?;
                    if matches!(
                        r.action,
                        Action::Success
                            | Action::Retry
                            | Action::Ignore
                            | Action::RateLimited
                            | Action::ResetPagination
                            | Action::ReducePageSize
                            | Action::SplitRequestWindow
                    ) {
                        return Ok(r);
                    }
                    last = Some(r);
                }
                Ok(last.unwrap_or_else(|| default_mapping(seen.status)))
            }
        }
    }

    /// True when a filter looks at the response (a predicate or an error message template).
    pub fn needs_vars(&self) -> bool {
        match self {
            ErrorHandler::Default(h) => h
                .filters
                .iter()
                .any(|f| f.predicate.is_some() || f.error_message.is_some()),
            ErrorHandler::Composite(hs) => hs.iter().any(ErrorHandler::needs_vars),
        }
    }

    /// True when a response filter of this handler (or a nested one) resolves to `action`.
    pub fn uses_action(&self, action: Action) -> bool {
        match self {
            ErrorHandler::Default(h) => h.filters.iter().any(|f| f.action == action),
            ErrorHandler::Composite(hs) => hs.iter().any(|h| h.uses_action(action)),
        }
    }

    pub fn max_retries(&self) -> u32 {
        match self {
            ErrorHandler::Default(h) => h.max_retries,
            ErrorHandler::Composite(hs) => hs.first().map_or(5, ErrorHandler::max_retries),
        }
    }

    fn strategies(&self) -> Vec<&Backoff> {
        match self {
            ErrorHandler::Default(h) => h.backoff.iter().collect(),
            ErrorHandler::Composite(hs) => hs.iter().flat_map(|h| h.strategies()).collect(),
        }
    }

    /// Seconds to wait before retry number `attempt` (1 for the first retry): the first
    /// strategy that has an answer, else `Retry-After`, else 5·2^(attempt-1) as Airbyte does.
    pub fn backoff_seconds(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        attempt: u32,
    ) -> Result<f64> {
        for s in self.strategies() {
            if let Some(wait) = s.seconds(headers, body, attempt)? {
                return Ok(wait.max(0.0));
            }
        }
        if let Some(wait) = retry_after(headers) {
            return Ok(wait);
        }
        Ok(5.0 * 2f64.powi(attempt.saturating_sub(1).min(16) as i32))
    }
}

impl DefaultErrorHandler {
    fn interpret(&self, seen: &Seen<'_>) -> Result<Resolution> {
        for f in &self.filters {
            if let Some(r) = f.matches(seen)? {
                return Ok(r);
            }
        }
        Ok(default_mapping(seen.status))
    }
}

/// Airbyte's `DEFAULT_ERROR_MAPPING` plus its fallback.
pub fn default_mapping(status: Option<u16>) -> Resolution {
    let (action, failure_type) = match status {
        None => (Action::Retry, FailureType::TransientError),
        Some(s) if (200..400).contains(&s) => (Action::Success, FailureType::SystemError),
        Some(401 | 403) => (Action::Fail, FailureType::ConfigError),
        Some(429) => (Action::RateLimited, FailureType::TransientError),
        Some(408) => (Action::Retry, FailureType::TransientError),
        Some(s) if s >= 500 => (Action::Retry, FailureType::TransientError),
        Some(_) => (Action::Fail, FailureType::SystemError),
    };
    Resolution {
        action,
        failure_type,
        message: None,
    }
}

impl ResponseFilter {
    fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("HttpResponseFilter"))?;
        c.expect(&["HttpResponseFilter"])?;
        let failure_type = match c.opt_str("failure_type")?.as_deref() {
            None => None,
            Some("system_error") => Some(FailureType::SystemError),
            Some("config_error") => Some(FailureType::ConfigError),
            Some("transient_error") => Some(FailureType::TransientError),
            Some(other) => return Err(c.error(format!("unknown failure_type '{other}'"))),
        };
        let action = match c.opt_str("action")?.as_deref() {
            Some("SUCCESS") => Action::Success,
            Some("FAIL") => Action::Fail,
            Some("RETRY") => Action::Retry,
            Some("IGNORE") => Action::Ignore,
            Some("RATE_LIMITED") => Action::RateLimited,
            Some("REFRESH_TOKEN_THEN_RETRY") => Action::RefreshTokenThenRetry,
            Some("RESET_PAGINATION") => Action::ResetPagination,
            Some("REDUCE_PAGE_SIZE") => Action::ReducePageSize,
            Some("SPLIT_REQUEST_WINDOW") => Action::SplitRequestWindow,
            Some(other) => return Err(c.error(format!("unknown action '{other}'"))),
            None if failure_type.is_some() => Action::Fail,
            None => return Err(c.error("an action or a failure_type is required")),
        };
        let http_codes = match c.get("http_codes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .map(|n| n as u16)
                        .ok_or_else(|| c.error(format!("http_codes must be numbers, got {v}")))
                })
                .collect::<Result<_>>()?,
            Some(other) => return Err(c.error(format!("http_codes must be a list, got {other}"))),
        };
        let error_message_contains = c.opt_str("error_message_contains")?;
        let predicate = c.opt_template(b, "predicate")?;
        let error_message = c.opt_template(b, "error_message")?;
        c.finish()?;
        Ok(Self {
            action,
            failure_type,
            http_codes,
            error_message_contains,
            predicate,
            error_message,
        })
    }

    fn matches(&self, seen: &Seen<'_>) -> Result<Option<Resolution>> {
        let code = seen.status.is_some_and(|s| self.http_codes.contains(&s));
        let contains = self
            .error_message_contains
            .as_deref()
            .is_some_and(|needle| {
                seen.status.is_some() && String::from_utf8_lossy(seen.body).contains(needle)
            });
        let predicate = match &self.predicate {
            Some(p) if seen.status.is_some() => p.eval_bool(seen.vars)?,
            _ => false,
        };
        if !(code || contains || predicate) {
            return Ok(None);
        }
        let default = default_mapping(seen.status);
        let failure_type = match (self.action, self.failure_type) {
            (Action::Fail, Some(f)) => f,
            _ => default.failure_type,
        };
        let message = match &self.error_message {
            Some(t) => t.eval_str(seen.vars)?,
            None => None,
        };
        Ok(Some(Resolution {
            action: self.action,
            failure_type,
            message,
        }))
    }
}

impl Backoff {
    fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(None)?;
        c.expect(&BACKOFFS)?;
        let regex = |c: &mut Component<'_>| -> Result<Option<regex::Regex>> {
            match c.opt_str("regex")? {
                None => Ok(None),
                Some(r) => regex::Regex::new(&r)
                    .map(Some)
                    .map_err(|e| c.error(format!("invalid regex '{r}': {e}"))),
            }
        };
        let s = match c.type_name.as_str() {
            "ExponentialBackoffStrategy" => Backoff::Exponential {
                factor: number_field(&mut c, b, "factor")?.unwrap_or(5.0),
            },
            "ConstantBackoffStrategy" => Backoff::Constant {
                seconds: number_field(&mut c, b, "backoff_time_in_seconds")?
                    .ok_or_else(|| c.error("the field 'backoff_time_in_seconds' is required"))?,
                jitter: number_field(&mut c, b, "jitter_range_in_seconds")?.unwrap_or(0.0),
            },
            "WaitTimeFromHeader" => Backoff::WaitTimeFromHeader {
                header: c.str("header")?,
                regex: regex(&mut c)?,
                max: number_field(&mut c, b, "max_waiting_time_in_seconds")?,
            },
            "WaitTimeFromResponse" => Backoff::WaitTimeFromResponse {
                wait: c.template(b, "wait_time_in_seconds")?,
                max: number_field(&mut c, b, "max_waiting_time_in_seconds")?,
            },
            _ => Backoff::WaitUntilTimeFromHeader {
                header: c.str("header")?,
                regex: regex(&mut c)?,
                min_wait: number_field(&mut c, b, "min_wait")?,
            },
        };
        if matches!(s, Backoff::Exponential { .. }) && c.has("jitter_range_in_seconds") {
            return Err(
                c.error("jitter_range_in_seconds is only supported on ConstantBackoffStrategy")
            );
        }
        c.finish()?;
        Ok(s)
    }

    fn seconds(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        attempt: u32,
    ) -> Result<Option<f64>> {
        Ok(match self {
            Backoff::WaitTimeFromResponse { wait, max } => {
                let Some(wait) = wait_from_response(wait, headers, body) else {
                    return Ok(None);
                };
                if let Some(max) = max
                    && wait >= *max
                {
                    return Err(cdk::Error::transient(format!(
                        "The rate limit wait time is longer than the connector is allowed to \
                         wait: {wait} s, the maximum being {max} s (max_waiting_time_in_seconds)"
                    )));
                }
                Some(wait)
            }
            Backoff::Exponential { factor } => Some(factor * 2f64.powi(attempt.min(16) as i32)),
            Backoff::Constant { seconds, jitter } => Some(seconds + jitter * pseudo_random()),
            Backoff::WaitTimeFromHeader { header, regex, max } => {
                match header_number(headers, header, regex.as_ref()) {
                    Some(wait) => {
                        if let Some(max) = max
                            && wait >= *max
                        {
                            return Err(cdk::Error::transient(format!(
                                "the server asks to wait {wait} s (header '{header}'), more than \
                                 max_waiting_time_in_seconds ({max} s)"
                            )));
                        }
                        Some(wait)
                    }
                    None => None,
                }
            }
            Backoff::WaitUntilTimeFromHeader {
                header,
                regex,
                min_wait,
            } => header_number(headers, header, regex.as_ref()).map(|until| {
                let wait = until - now_seconds();
                match min_wait {
                    Some(m) if wait < *m => *m,
                    _ => wait.max(0.0),
                }
            }),
        })
    }
}

/// airbyte-cdk's `WaitTimeFromResponse`: `None` (the next strategy decides) when the
/// expression fails on this response or gives no positive, finite number.
fn wait_from_response(
    wait: &crate::interpolation::Template,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<f64> {
    let response: Value =
        serde_json::from_slice(body).unwrap_or_else(|_| Value::Object(Default::default()));
    let vars = Vars::new()
        .with("response", crate::interpolation::to_mj(&response))
        .with(
            "headers",
            minijinja::Value::from_object(crate::interpolation::Headers::new(headers.to_vec())),
        );
    let value = match wait.eval(&vars) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(
                "WaitTimeFromResponse: `wait_time_in_seconds` could not be evaluated on this response ({}); deferring to the next backoff strategy",
                e.message
            );
            return None;
        }
    };
    let seconds = match value {
        Value::Null => return None,
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return None,
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(seconds) = seconds else {
        tracing::warn!(
            "WaitTimeFromResponse: `wait_time_in_seconds` resolved to a non-numeric value; deferring to the next backoff strategy"
        );
        return None;
    };
    // A zero wait is no answer for airbyte-cdk's error handler either.
    (seconds.is_finite() && seconds > 0.0).then_some(seconds)
}

fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header_number(
    headers: &[(String, String)],
    name: &str,
    regex: Option<&regex::Regex>,
) -> Option<f64> {
    let raw = header_value(headers, name)?;
    let text = match regex {
        Some(re) => {
            let c = re.captures(raw)?;
            c.get(1).or_else(|| c.get(0))?.as_str()
        }
        None => raw,
    };
    text.trim().parse().ok()
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn retry_after(headers: &[(String, String)]) -> Option<f64> {
    let raw = header_value(headers, "retry-after")?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        return Some(secs.max(0.0));
    }
    let when = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    Some((when.timestamp_millis() as f64 / 1000.0 - now_seconds()).max(0.0))
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// A number in [0, 1) that differs between calls; enough for jitter.
fn pseudo_random() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    f64::from(nanos.wrapping_mul(2_654_435_761) % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mapping_matches_airbyte() {
        assert_eq!(default_mapping(Some(200)).action, Action::Success);
        assert_eq!(
            default_mapping(Some(401)).failure_type,
            FailureType::ConfigError
        );
        assert_eq!(default_mapping(Some(403)).action, Action::Fail);
        assert_eq!(
            default_mapping(Some(404)).failure_type,
            FailureType::SystemError
        );
        assert_eq!(default_mapping(Some(429)).action, Action::RateLimited);
        assert_eq!(default_mapping(Some(503)).action, Action::Retry);
        assert_eq!(default_mapping(None).action, Action::Retry);
    }

    #[test]
    fn retry_after_forms() {
        let h = |v: &str| vec![("Retry-After".to_string(), v.to_string())];
        assert_eq!(retry_after(&h("3")), Some(3.0));
        assert_eq!(retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT")), Some(0.0));
        assert_eq!(retry_after(&[]), None);
        let handler = ErrorHandler::default();
        assert_eq!(handler.backoff_seconds(&h("2"), &[], 1).unwrap(), 2.0);
        assert_eq!(handler.backoff_seconds(&[], &[], 1).unwrap(), 5.0);
        assert_eq!(handler.backoff_seconds(&[], &[], 3).unwrap(), 20.0);
    }
}
