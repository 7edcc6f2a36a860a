//! `HttpRequester`: builds a request from the manifest (URL, method, parameters, headers,
//! body, authenticator) and sends it, retrying as the error handler says, with backoff, a
//! rate-limit notice while waiting, and a clear error when it gives up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdk::protocol::FailureType;
use cdk::{Error, Result};
use serde_json::Value;

use crate::auth::{self, Authenticator};
use crate::decoder::snippet;
use crate::error_handler::{Action, ErrorHandler, Seen};
use crate::http::{Method, Prepared, Redo, Response, Timeouts};
use crate::interpolation::{Headers, Structure, Template, Vars, json_value};
use crate::manifest::{Build, Node};
use crate::query_properties::QueryProperties;
use crate::request_option::RequestParts;

/// Longest total wait on retries of one request (Airbyte's `max_time`).
const MAX_RETRY_TIME: Duration = Duration::from_secs(600);

/// The wait before retrying a rate-limited request on another token (seconds).
const TOKEN_ROTATION_WAIT: f64 = 0.1;

/// Called with the expected reset time (ms since the epoch) while waiting on a rate limit.
pub type RateLimitNotice<'a> = &'a (dyn Fn(Option<i64>) + Send + Sync);

#[derive(Debug)]
pub struct Requester {
    url: Option<Template>,
    url_base: Option<Template>,
    path: Option<Template>,
    method: Method,
    auth: Arc<dyn Authenticator>,
    params: Option<Structure>,
    headers: Option<Structure>,
    body: Option<Body>,
    error_handler: ErrorHandler,
    timeouts: Timeouts,
    build: Build,
    /// The `QueryProperties` of `request_parameters`, sent by the read as one request per chunk.
    pub query_properties: Option<QueryProperties>,
}

#[derive(Debug)]
enum Body {
    Json(Structure),
    Form(Structure),
    Text(Template),
}

/// One request to make: the variables of its templates and what other components add.
pub struct Call<'a> {
    pub vars: &'a Vars,
    pub extra: RequestParts,
    /// A URL or path replacing the requester's path (`RequestPath` pagination).
    pub path_override: Option<String>,
    pub notice: Option<RateLimitNotice<'a>>,
}

impl Requester {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("HttpRequester"))?;
        c.expect(&["HttpRequester"])?;
        c.ignore(&["name", "use_cache", "use_tcp_keepalive"]);
        let url = c.opt_template(b, "url")?;
        let url_base = c.opt_template(b, "url_base")?;
        let path = c.opt_template(b, "path")?;
        if url.is_none() && url_base.is_none() {
            return Err(c.error("either 'url' or 'url_base' is required"));
        }
        let method = match c
            .opt_str("http_method")?
            .as_deref()
            .map(str::to_ascii_uppercase)
        {
            None => Method::Get,
            Some(m) if m == "GET" => Method::Get,
            Some(m) if m == "POST" => Method::Post,
            Some(other) => {
                return Err(c.error(format!("http_method must be GET or POST, got '{other}'")));
            }
        };
        let auth = match c.child("authenticator") {
            Some(n)
                if n.value.get("type").and_then(Value::as_str)
                    == Some("LegacySessionTokenAuthenticator") =>
            {
                // airbyte-cdk gives this authenticator the requester's `url_base`.
                let mut value = n.value.clone();
                if let (Value::Object(m), Some(base)) = (&mut value, c.get("url_base")) {
                    m.insert(auth::legacy::API_URL.into(), base);
                }
                auth::decode(
                    crate::manifest::Node {
                        value: &value,
                        path: n.path.clone(),
                        params: n.params.clone(),
                    },
                    b,
                )?
            }
            Some(n) => auth::decode(n, b)?,
            None => auth::none(),
        };
        let (query_properties, params) = query_params(&mut c, b)?;
        let headers = c.opt_structure(b, "request_headers")?;
        let mut body = None;
        if let Some(s) = c.opt_structure(b, "request_body_json")? {
            body = Some(Body::Json(s));
        }
        if let Some(s) = c.opt_structure(b, "request_body_data")? {
            if body.is_some() {
                return Err(
                    c.error("only one of request_body_json and request_body_data may be set")
                );
            }
            body = Some(match s {
                Structure::Template(t) => Body::Text(t),
                other => Body::Form(other),
            });
        }
        if let Some(n) = c.child("request_body") {
            if body.is_some() {
                return Err(c.error(
                    "request_body cannot be combined with request_body_json or request_body_data",
                ));
            }
            body = Some(decode_request_body(n, b)?);
        }
        let error_handler = match c.child("error_handler") {
            Some(n) => ErrorHandler::decode(n, b)?,
            None => ErrorHandler::default(),
        };
        let secs = |c: &mut crate::manifest::Component<'_>, k: &str| -> Result<Option<u64>> {
            Ok(c.opt_f64(k)?.map(|s| (s * 1000.0) as u64))
        };
        let timeouts = Timeouts {
            connect_ms: secs(&mut c, "connect_timeout_in_seconds")?,
            read_ms: secs(&mut c, "read_timeout_in_seconds")?,
        };
        c.finish()?;
        Ok(Self {
            url,
            url_base,
            path,
            method,
            auth,
            params,
            headers,
            body,
            error_handler,
            timeouts,
            build: b.clone(),
            query_properties,
        })
    }

    /// The configured catalog's JSON schema of `stream` (a read only).
    pub fn catalog_schema(&self, stream: &str) -> Option<&Value> {
        self.build.catalog_schemas.get(stream)
    }

    /// The URL for this call.
    fn url(&self, call: &Call<'_>) -> Result<String> {
        if let Some(over) = &call.path_override {
            if over.starts_with("http://") || over.starts_with("https://") {
                return Ok(over.clone());
            }
            let base = self.base(call.vars)?;
            return Ok(join_url(&base, over));
        }
        if let Some(url) = &self.url {
            let url = url.eval_str(call.vars)?.unwrap_or_default();
            return Ok(match &self.path {
                Some(p) => join_url(&url, &p.eval_str(call.vars)?.unwrap_or_default()),
                None => url,
            });
        }
        let base = self.base(call.vars)?;
        let path = match &self.path {
            Some(p) => p.eval_str(call.vars)?.unwrap_or_default(),
            None => String::new(),
        };
        Ok(join_url(&base, &path))
    }

    fn base(&self, vars: &Vars) -> Result<String> {
        let t = self.url_base.as_ref().or(self.url.as_ref());
        match t {
            Some(t) => Ok(t.eval_str(vars)?.unwrap_or_default()),
            None => Ok(String::new()),
        }
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared> {
        let mut parts = RequestParts::default();
        if let Some(p) = &self.params {
            for (k, v) in p.eval_strings(call.vars)? {
                parts.params.retain(|(x, _)| *x != k);
                parts.params.push((k, v));
            }
        }
        if let Some(h) = &self.headers {
            for (k, v) in h.eval_strings(call.vars)? {
                parts.set_header(k, v);
            }
        }
        match &self.body {
            None => {}
            Some(Body::Json(s)) => match s.eval(call.vars)? {
                Value::Object(m) => parts.body_json = Some(m),
                Value::Null => {}
                other => {
                    return Err(Error::config(format!(
                        "request_body_json must evaluate to a mapping, got {other}"
                    )));
                }
            },
            Some(Body::Form(s)) => parts.body_form = s.eval_strings(call.vars)?,
            Some(Body::Text(t)) => parts.body_text = t.eval_str(call.vars)?,
        }
        let extra = &call.extra;
        for (k, _) in &extra.params {
            parts.params.retain(|(x, _)| x != k);
        }
        for (k, v) in &extra.params {
            parts.params.push((k.clone(), v.clone()));
        }
        for (k, v) in &extra.headers {
            parts.set_header(k.clone(), v.clone());
        }
        if let Some(json) = &extra.body_json {
            let body = parts.json_body();
            for (k, v) in json {
                body.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &extra.body_form {
            parts.set_form(k.clone(), v.clone());
        }
        Ok(Prepared {
            method: self.method,
            url: self.url(call)?,
            parts,
        })
    }

    /// Sends the call; `None` when the error handler says to ignore the response.
    pub async fn send(&self, call: &Call<'_>) -> Result<Option<Response>> {
        self.send_inner(call, false).await
    }

    /// Sends the call; a response the error handler says to ignore is returned all the same
    /// (as airbyte-cdk's `send_request` returns it); `None` only for an ignored transport
    /// error.
    pub async fn send_keeping_ignored(&self, call: &Call<'_>) -> Result<Option<Response>> {
        self.send_inner(call, true).await
    }

    async fn send_inner(&self, call: &Call<'_>, keep_ignored: bool) -> Result<Option<Response>> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            let mut req = self.prepare(call)?;
            self.auth.sign(&mut req).await?;
            let sent = self.build.http.send(&req, self.timeouts).await;
            let (resolution, headers, status, body) = match &sent {
                Ok(resp) => {
                    self.auth.observe(&req, resp.status, &resp.headers);
                    let vars = if self.error_handler.needs_vars() {
                        self.filter_vars(resp)
                    } else {
                        Vars::new()
                    };
                    let seen = Seen {
                        status: Some(resp.status),
                        headers: &resp.headers,
                        body: &resp.body,
                        vars: &vars,
                    };
                    (
                        self.error_handler.interpret(&seen)?,
                        resp.headers.clone(),
                        format!("HTTP {}", resp.status),
                        resp.body.clone(),
                    )
                }
                Err(Err(e)) => return Err(e.clone()),
                Err(Ok(transport)) => {
                    let vars = Vars::new();
                    let seen = Seen {
                        status: None,
                        headers: &[],
                        body: &[],
                        vars: &vars,
                    };
                    (
                        self.error_handler.interpret(&seen)?,
                        Vec::new(),
                        transport.clone(),
                        bytes::Bytes::new(),
                    )
                }
            };
            let describe = || {
                let mut s = format!(
                    "{} {} failed: {status}",
                    req.method.as_str(),
                    redact_url(&req.url)
                );
                if let Some(m) = &resolution.message {
                    s = format!("{m} ({s})");
                }
                if !body.is_empty() {
                    s.push_str(": ");
                    s.push_str(&snippet(&body));
                }
                s
            };
            match resolution.action {
                Action::Success => {
                    return match sent {
                        Ok(resp) => Ok(Some(resp)),
                        Err(_) => Err(failure(resolution.failure_type, describe())),
                    };
                }
                Action::ResetPagination | Action::ReducePageSize | Action::SplitRequestWindow => {
                    let redo = match resolution.action {
                        Action::ResetPagination => Redo::ResetPagination,
                        Action::ReducePageSize => Redo::ReducePageSize(resolution.message.clone()),
                        _ => Redo::SplitWindow(resolution.message.clone()),
                    };
                    return match sent {
                        Ok(mut resp) => {
                            resp.redo = Some(redo);
                            Ok(Some(resp))
                        }
                        Err(_) => Err(failure(resolution.failure_type, describe())),
                    };
                }
                Action::Ignore => {
                    tracing::info!(url = %redact_url(&req.url), %status, "ignoring the response as the error handler says");
                    return Ok(if keep_ignored { sent.ok() } else { None });
                }
                Action::Fail => return Err(failure(resolution.failure_type, describe())),
                Action::RefreshTokenThenRetry if !refreshed => {
                    refreshed = true;
                    self.auth.invalidate().await;
                    continue;
                }
                Action::RefreshTokenThenRetry => {
                    return Err(failure(FailureType::ConfigError, describe()));
                }
                Action::Retry | Action::RateLimited => {
                    attempt += 1;
                    let rate_limited = resolution.action == Action::RateLimited;
                    let max = self.error_handler.max_retries();
                    if !rate_limited && attempt > max {
                        return Err(failure(
                            resolution.failure_type,
                            format!("gave up after {attempt} attempts: {}", describe()),
                        ));
                    }
                    // airbyte-cdk retries a rate-limited request on another token at once,
                    // without asking the backoff strategies, when the authenticator has one.
                    let wait = if rate_limited && self.auth.has_alternative(&req) {
                        TOKEN_ROTATION_WAIT
                    } else {
                        self.error_handler
                            .backoff_seconds(&headers, &body, attempt)?
                    };
                    if started.elapsed().as_secs_f64() + wait > MAX_RETRY_TIME.as_secs_f64() {
                        return Err(failure(
                            resolution.failure_type,
                            format!(
                                "gave up after {attempt} attempts and {:.0} s of waiting: {}",
                                started.elapsed().as_secs_f64(),
                                describe()
                            ),
                        ));
                    }
                    tracing::warn!(attempt, wait_seconds = wait, url = %redact_url(&req.url), %status, "retrying");
                    if rate_limited && let Some(notice) = call.notice {
                        let reset = cdk::protocol::now_millis() + (wait * 1000.0) as i64;
                        notice(Some(reset));
                    }
                    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                }
            }
        }
    }

    /// True when the error handler can resolve a response to `action`.
    pub fn uses_action(&self, action: Action) -> bool {
        self.error_handler.uses_action(action)
    }

    /// Fails when the error handler resolves a response to `REDUCE_PAGE_SIZE` or
    /// `SPLIT_REQUEST_WINDOW`, which only a stream's main requester can honour.
    pub fn refuse_retriever_actions(&self, description: &str) -> Result<()> {
        if self.uses_action(Action::ReducePageSize) {
            return Err(Error::config(format!(
                "the REDUCE_PAGE_SIZE response action is not supported on the {description}: only the \
                 main requester of a SimpleRetriever can re-issue its page with a smaller page size"
            )));
        }
        if self.uses_action(Action::SplitRequestWindow) {
            return Err(Error::config(format!(
                "the SPLIT_REQUEST_WINDOW response action is not supported on the {description}: only \
                 the main requester of a SimpleRetriever reads a window that can be split"
            )));
        }
        Ok(())
    }

    /// `response` and `headers` for response filters.
    fn filter_vars(&self, resp: &Response) -> Vars {
        let body: Value =
            serde_json::from_slice(&resp.body).unwrap_or(Value::Object(Default::default()));
        Vars::new()
            .with("response", json_value(Arc::new(body)))
            .with(
                "headers",
                minijinja::Value::from_object(Headers::new(resp.headers.clone())),
            )
            .with("request_url", minijinja::Value::from(redact_url(&resp.url)))
    }
}

fn failure(kind: FailureType, message: String) -> Error {
    match kind {
        FailureType::ConfigError => Error::config(message),
        FailureType::TransientError => Error::transient(message),
        _ => Error::system(message),
    }
}

/// The URL without its query string (which may hold credentials).
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => base.to_string(),
        None => url.to_string(),
    }
}

/// `url_base` + `path` as Airbyte joins them: a full URL path wins; else one slash between.
pub fn join_url(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_string();
    }
    if path.is_empty() {
        return base.trim_end_matches('/').to_string();
    }
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

fn decode_request_body(node: Node<'_>, b: &Build) -> Result<Body> {
    let mut c = node.component(None)?;
    c.expect(&[
        "RequestBodyJsonObject",
        "RequestBodyUrlEncodedForm",
        "RequestBodyPlainText",
        "RequestBodyGraphQL",
    ])?;
    let body = match c.type_name.as_str() {
        // airbyte-cdk sends the `RequestBodyGraphQlQuery` as a JSON body: `query` (by default
        // an empty query) and any other fields, nulls left out.
        "RequestBodyGraphQL" => {
            let mut value = match c.get("value") {
                Some(Value::Object(m)) => m,
                None | Some(Value::Null) => serde_json::Map::new(),
                Some(other) => {
                    return Err(c.error(format!("'value' must be a mapping, got {other}")));
                }
            };
            value.retain(|_, v| !v.is_null());
            value
                .entry("query")
                .or_insert_with(|| Value::String("query {\n    \n}".into()));
            Body::Json(
                crate::interpolation::Structure::new(
                    &b.interp,
                    &Value::Object(value),
                    &c.params_value(),
                )
                .map_err(|e| c.error(format!("'value': {e}")))?,
            )
        }
        "RequestBodyJsonObject" => Body::Json(
            c.opt_structure(b, "value")?
                .ok_or_else(|| c.error("the field 'value' is required"))?,
        ),
        "RequestBodyUrlEncodedForm" => Body::Form(
            c.opt_structure(b, "value")?
                .ok_or_else(|| c.error("the field 'value' is required"))?,
        ),
        _ => Body::Text(c.template(b, "value")?),
    };
    c.finish()?;
    Ok(body)
}

/// `request_parameters` without its `QueryProperties` (decoded apart; at most one).
fn query_params(
    c: &mut crate::manifest::Component<'_>,
    b: &Build,
) -> Result<(Option<QueryProperties>, Option<Structure>)> {
    let Some(Value::Object(mut m)) = c.get("request_parameters") else {
        return Ok((None, c.opt_structure(b, "request_parameters")?));
    };
    let keys: Vec<String> = m
        .iter()
        .filter(|(_, v)| v.get("type").and_then(Value::as_str) == Some("QueryProperties"))
        .map(|(k, _)| k.clone())
        .collect();
    let key = match keys.as_slice() {
        [] => return Ok((None, c.opt_structure(b, "request_parameters")?)),
        [k] => k.clone(),
        more => {
            return Err(c.error(format!(
                "request_parameters only supports one QueryProperties field, found {}",
                more.len()
            )));
        }
    };
    let value = m.remove(&key).unwrap_or(Value::Null);
    let node = Node {
        value: &value,
        path: format!("{}/request_parameters/{key}", c.at()),
        params: c.params().clone(),
    };
    let qp = QueryProperties::decode(&key, node, b)?;
    let params = Structure::new(&b.interp, &Value::Object(m), &c.params_value())
        .map_err(|e| c.error(format!("'request_parameters': {e}")))?;
    Ok((Some(qp), Some(params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_airbyte() {
        assert_eq!(join_url("https://x/v1/", "/items"), "https://x/v1/items");
        assert_eq!(join_url("https://x/v1", "items"), "https://x/v1/items");
        assert_eq!(join_url("https://x/v1/", ""), "https://x/v1");
        assert_eq!(
            join_url("https://x/v1", "https://y/next?p=2"),
            "https://y/next?p=2"
        );
        assert_eq!(redact_url("https://x/a?key=secret"), "https://x/a");
    }
}
