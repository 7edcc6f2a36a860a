//! Decoding of `RateLimitedMultipleTokenAuthenticator`, its `TokenQuota`s and its
//! `QuotaStatusSource`, with the values airbyte-cdk's model factory defaults and the checks it
//! makes (at least one token once evaluated, at least one pool, a fixed-length `max_wait_time`).

use std::sync::{Arc, Mutex};

use cdk::{Error, Result};
use serde_json::{Value, json};

use super::{Quota, State, TokenQuotas};
use crate::auth::Authenticator;
use crate::budget::Matcher;
use crate::interpolation::datetime::PyDuration;
use crate::interpolation::literal::py_str;
use crate::interpolation::{Vars, to_mj};
use crate::manifest::{Build, Component, Node};
use crate::requester::Requester;

/// Python's `str()` of a template's value, stripped.
fn eval_text(c: &Component<'_>, b: &Build, key: &str, raw: &str) -> Result<String> {
    let v = c.template_of(b, key, raw)?.eval(&Vars::new())?;
    let mut text = String::new();
    py_str(&to_mj(&v), &mut text);
    Ok(text.trim().to_string())
}

/// A string field where an empty value means the default, as airbyte-cdk reads it.
fn non_empty(c: &mut Component<'_>, key: &str, default: &str) -> Result<String> {
    Ok(c.opt_str(key)?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string()))
}

fn codes(c: &mut Component<'_>, key: &str) -> Result<Vec<u16>> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| c.error(format!("'{key}' must list status codes, got {v}")))
            })
            .collect(),
        Some(other) => Err(c.error(format!("'{key}' must be a list, got {other}"))),
    }
}

fn decode_tokens(c: &mut Component<'_>, b: &Build) -> Result<Vec<String>> {
    let delimiter = non_empty(c, "token_delimiter", ",")?;
    let tokens = match c.get("tokens") {
        Some(Value::String(s)) => eval_text(c, b, "tokens", &s)?
            .split(delimiter.as_str())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        Some(Value::Array(items)) => {
            let mut tokens = Vec::new();
            for item in items {
                let raw = match item {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let token = eval_text(c, b, "tokens", &raw)?;
                if !token.is_empty() {
                    tokens.push(token);
                }
            }
            tokens
        }
        None | Some(Value::Null) => return Err(c.error("the field 'tokens' is required")),
        Some(other) => {
            return Err(c.error(format!(
                "'tokens' must be a string or a list of strings, got {other}"
            )));
        }
    };
    if tokens.is_empty() {
        return Err(Error::config(
            "authentication tokens are missing from the configuration \
             (the RateLimitedMultipleTokenAuthenticator has no token)",
        ));
    }
    for t in &tokens {
        cdk::secrets::register(t);
    }
    Ok(tokens)
}

fn decode_quota(node: Node<'_>, b: &Build) -> Result<(Quota, Value)> {
    let mut c = node.component(Some("TokenQuota"))?;
    c.expect(&["TokenQuota"])?;
    let name = c.str("name")?;
    let path = |c: &mut Component<'_>, key: &str| -> Result<Vec<String>> {
        c.string_list(key)?
            .ok_or_else(|| c.error(format!("the field '{key}' is required")))
    };
    let remaining_path = path(&mut c, "remaining_path")?;
    let reset_path = path(&mut c, "reset_path")?;
    let limit_path = c.string_list("limit_path")?;
    let nodes = c.children("matchers")?;
    // The key of shared definitions leaves `$parameters` aside, as airbyte-cdk's does.
    let raw_matchers: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let mut v = n.value.clone();
            if let Value::Object(m) = &mut v {
                m.remove("$parameters");
            }
            v
        })
        .collect();
    let matchers = nodes
        .into_iter()
        .map(|n| Matcher::decode(n, b))
        .collect::<Result<Vec<_>>>()?;
    let remaining_header = c.opt_str("remaining_header")?.filter(|s| !s.is_empty());
    let reset_header = c.opt_str("reset_header")?.filter(|s| !s.is_empty());
    let limit_header = c.opt_str("limit_header")?.filter(|s| !s.is_empty());
    let exhaustion_codes = codes(&mut c, "exhaustion_status_codes")?;
    c.finish()?;
    let key = json!([
        name,
        remaining_path,
        reset_path,
        limit_path,
        raw_matchers,
        remaining_header,
        reset_header,
        limit_header,
        exhaustion_codes
    ]);
    Ok((
        Quota {
            name,
            remaining_path,
            reset_path,
            limit_path,
            matchers,
            remaining_header,
            reset_header,
            limit_header,
            exhaustion_codes,
        },
        key,
    ))
}

/// The requester of the quota status endpoint: its URL and headers come with each call; the
/// `unavailable_status_codes` are ignored responses, every other failure fails.
pub(super) fn status_requester(method: &str, unavailable: &[u16], b: &Build) -> Result<Requester> {
    let mut v =
        json!({"type": "HttpRequester", "url_base": "http://localhost", "http_method": method});
    if !unavailable.is_empty() {
        v["error_handler"] = json!({"type": "DefaultErrorHandler", "response_filters": [
            {"type": "HttpResponseFilter", "action": "IGNORE", "http_codes": unavailable}
        ]});
    }
    Requester::decode(Node::root(&v), b)
}

/// Where each token's quotas are read (`QuotaStatusSource`), evaluated.
struct StatusSource {
    url: String,
    method: &'static str,
    headers: Vec<(String, String)>,
    unavailable: Vec<u16>,
}

impl StatusSource {
    fn decode(c: &mut Component<'_>, b: &Build) -> Result<Self> {
        let mut s = c
            .required_child("quota_status_source")?
            .component(Some("QuotaStatusSource"))?;
        s.expect(&["QuotaStatusSource"])?;
        let raw_url = s.str("url")?;
        let status_url = eval_text(&s, b, "url", &raw_url)?;
        let method = match s.opt_str("http_method")?.as_deref() {
            None | Some("GET") => "GET",
            Some("POST") => "POST",
            Some(other) => {
                return Err(s.error(format!("http_method must be GET or POST, got '{other}'")));
            }
        };
        let mut status_headers = Vec::new();
        match s.get("request_headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let raw = match v {
                        Value::String(t) => t,
                        other => other.to_string(),
                    };
                    status_headers.push((k.clone(), eval_text(&s, b, "request_headers", &raw)?));
                }
            }
            Some(other) => {
                return Err(s.error(format!("'request_headers' must be a mapping, got {other}")));
            }
        }
        let mut unavailable = codes(&mut s, "unavailable_status_codes")?;
        unavailable.sort_unstable();
        unavailable.dedup();
        s.finish()?;
        Ok(StatusSource {
            url: status_url,
            method,
            headers: status_headers,
            unavailable,
        })
    }
}

/// Decodes the authenticator; identical definitions (once evaluated) share one.
pub fn decode(c: &mut Component<'_>, b: &Build) -> Result<Arc<dyn Authenticator>> {
    let tokens = decode_tokens(c, b)?;
    let mut quotas = Vec::new();
    let mut quota_keys = Vec::new();
    for n in c.children("quotas")? {
        let (q, k) = decode_quota(n, b)?;
        quotas.push(q);
        quota_keys.push(k);
    }
    if quotas.is_empty() {
        return Err(c.error("quota pool configuration is missing: 'quotas' lists no TokenQuota"));
    }
    let source = StatusSource::decode(c, b)?;
    let auth_method = non_empty(c, "auth_method", "Bearer")?;
    let header = non_empty(c, "header", "Authorization")?;
    let raw_wait = non_empty(c, "max_wait_time", "PT2H")?;
    let wait_text = eval_text(c, b, "max_wait_time", &raw_wait)?;
    let wait = PyDuration::parse(&wait_text).map_err(|e| c.error(format!("max_wait_time: {e}")))?;
    if wait.months != 0 {
        return Err(c.error(format!(
            "max_wait_time must be a fixed-length ISO 8601 duration (e.g. 'PT2H'); calendar-unit durations like '{wait_text}' are not supported"
        )));
    }
    let max_wait = wait.total_seconds();
    let reserve_fraction = c.opt_f64("budget_reserve_fraction")?.unwrap_or(0.1);
    let min_reserve = c.opt_f64("budget_min_reserve")?.unwrap_or(50.0);
    let key = format!(
        "RateLimitedMultipleTokenAuthenticator|{}",
        json!([
            tokens,
            quota_keys,
            source.url,
            source.method,
            source.headers,
            source.unavailable,
            auth_method,
            header,
            max_wait,
            reserve_fraction,
            min_reserve
        ])
    );
    let status = Box::new(status_requester(source.method, &source.unavailable, b)?);
    let mut auths = b.auths.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = auths.get(&key) {
        return Ok(existing.clone());
    }
    let auth: Arc<dyn Authenticator> = Arc::new(TokenQuotas {
        status,
        tokens,
        quotas,
        status_url: source.url,
        status_headers: source.headers,
        auth_method,
        header,
        max_wait,
        reserve_fraction,
        min_reserve,
        state: Mutex::new(State::default()),
        seeded: tokio::sync::Mutex::new(false),
    });
    auths.insert(key, auth.clone());
    Ok(auth)
}
