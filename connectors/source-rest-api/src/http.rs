//! The HTTP client: one reqwest client per timeout setting, a limit on requests in flight
//! (the manifest's concurrency), and one attempt of a prepared request. Retries live in the
//! requester, which knows the error handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cdk::{Error, Result};
use tokio::sync::Semaphore;

use crate::request_option::RequestParts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timeouts {
    pub connect_ms: Option<u64>,
    pub read_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    pub url: String,
    pub parts: RequestParts,
}

/// A response, read whole (one page).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub url: String,
    /// What the error handler asked of the retriever instead of taking this response as a page
    /// (`RESET_PAGINATION`, `REDUCE_PAGE_SIZE`, `SPLIT_REQUEST_WINDOW`).
    pub redo: Option<Redo>,
}

/// A response that is not a page: the retriever must ask again differently.
#[derive(Debug, Clone, PartialEq)]
pub enum Redo {
    /// `RESET_PAGINATION`: the slice's pagination starts again from the first page.
    ResetPagination,
    /// `REDUCE_PAGE_SIZE`: the same page again with a smaller page size (the filter's message).
    ReducePageSize(Option<String>),
    /// `SPLIT_REQUEST_WINDOW`: the slice's window again as two smaller windows.
    SplitWindow(Option<String>),
}

#[derive(Debug)]
pub struct Http {
    clients: Mutex<HashMap<Timeouts, reqwest::Client>>,
    permits: Arc<Semaphore>,
    /// The manifest's `api_budget`, when it has one.
    budget: std::sync::OnceLock<crate::budget::Budget>,
}

const DEFAULT_CONNECT: Duration = Duration::from_secs(30);
const DEFAULT_READ: Duration = Duration::from_secs(300);

impl Http {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            budget: std::sync::OnceLock::new(),
        }
    }

    /// Sets the call budget every request passes (once).
    pub fn set_budget(&self, budget: crate::budget::Budget) {
        let _ = self.budget.set(budget);
    }

    fn client(&self, timeouts: Timeouts) -> Result<reqwest::Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&timeouts) {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(
                timeouts
                    .connect_ms
                    .map_or(DEFAULT_CONNECT, Duration::from_millis),
            )
            .read_timeout(timeouts.read_ms.map_or(DEFAULT_READ, Duration::from_millis))
            .user_agent(concat!("source-rest-api/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::system(format!("cannot build the HTTP client: {e}")))?;
        clients.insert(timeouts, client.clone());
        Ok(client)
    }

    /// Sends once. `Err(Ok(message))` is a transport failure worth retrying; `Err(Err(e))`
    /// a request that cannot be made (bad URL).
    pub async fn send(
        &self,
        req: &Prepared,
        timeouts: Timeouts,
    ) -> std::result::Result<Response, std::result::Result<String, Error>> {
        let client = self.client(timeouts).map_err(Err)?;
        let url = build_url(&req.url, &req.parts.params).map_err(Err)?;
        let mut builder = match req.method {
            Method::Get => client.get(url.clone()),
            Method::Post => client.post(url.clone()),
        };
        for (k, v) in &req.parts.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(json) = &req.parts.body_json {
            builder = builder.json(json);
        } else if !req.parts.body_form.is_empty() {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&req.parts.body_form)
                .finish();
            builder = builder
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body);
        } else if let Some(text) = &req.parts.body_text {
            builder = builder.body(text.clone());
        }
        let budget_req = crate::budget::Request {
            method: req.method.as_str(),
            url: &url,
            headers: &req.parts.headers,
        };
        if let Some(b) = self.budget.get() {
            b.acquire(&budget_req).await.map_err(Err)?;
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Ok(e.to_string()))?;
        let response = builder.send().await.map_err(|e| Ok(cdk::chain_text(&e)))?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if let Some(b) = self.budget.get() {
            b.update(&budget_req, status, &headers);
        }
        let final_url = response.url().to_string();
        let body = response
            .bytes()
            .await
            .map_err(|e| Ok(cdk::chain_text(&e)))?;
        Ok(Response {
            status,
            headers,
            body,
            url: final_url,
            redo: None,
        })
    }
}

/// `url` with `params` appended (a key already in the URL's query is not repeated).
pub fn build_url(url: &str, params: &[(String, String)]) -> Result<url::Url> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| Error::config(format!("invalid URL '{url}': {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::config(format!(
            "invalid URL '{url}': only http and https are supported"
        )));
    }
    if !params.is_empty() {
        let existing: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let mut q = parsed.query_pairs_mut();
        for (k, v) in params {
            if !existing.contains(k) {
                q.append_pair(k, v);
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_parameters_once() {
        let u = build_url(
            "https://x/a?page=2",
            &[("page".into(), "9".into()), ("q".into(), "a b".into())],
        )
        .unwrap();
        assert_eq!(u.as_str(), "https://x/a?page=2&q=a+b");
        assert!(build_url("ftp://x", &[]).is_err());
        assert!(build_url("not a url", &[]).is_err());
    }
}
