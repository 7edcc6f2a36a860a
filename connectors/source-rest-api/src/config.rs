//! The config without `--manifest-path`: a manifest injected under
//! `__injected_declarative_manifest` (as Airbyte's manifest runner takes it), or the simple form
//! — a base URL, authentication and a list of endpoints, each with optional pagination,
//! incremental reads and schema — that expands into a manifest. The API form
//! `{"url": …, "api_key": …, "method": "GET"}` is the simple form with one endpoint.

use std::collections::BTreeMap;

use cdk::{Error, JsonSchema, Result, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

/// The key Airbyte's platform puts a manifest under in the config.
pub const INJECTED_MANIFEST: &str = "__injected_declarative_manifest";

/// A REST API read without a manifest: each endpoint is a stream.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(title = "REST API Source Spec")]
pub struct SimpleConfig {
    /// The API's base URL, e.g. https://api.example.com/v1. Required unless the config holds a
    /// manifest under __injected_declarative_manifest.
    #[serde(default)]
    pub url_base: Option<String>,
    /// How requests are authenticated.
    #[serde(default)]
    pub authentication: Option<Authentication>,
    /// The endpoints to read, one stream each.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The API form: the full URL of one endpoint (instead of url_base and endpoints). The
    /// stream is named after the URL's last path segment.
    #[serde(default)]
    pub url: Option<String>,
    /// The API form: an API key sent in the `X-API-Key` header (or `api_key_header`).
    #[serde(default)]
    #[schemars(extend("airbyte_secret" = true))]
    pub api_key: Option<Secret>,
    /// The API form: the header that carries `api_key`.
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// The API form: GET or POST.
    #[serde(default)]
    pub method: Option<Method>,
    /// The API form: where the records are in the response (empty: the whole response).
    #[serde(default)]
    pub record_path: Vec<String>,
    /// Set when the config was the API form (its keys are read from the top of the config).
    #[serde(skip)]
    api_form: bool,
}

/// Authentication of every request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Authentication {
    /// No authentication.
    #[serde(rename = "none")]
    None {},
    /// `Authorization: Bearer <token>`.
    #[serde(rename = "bearer")]
    Bearer {
        /// The token.
        token: Secret,
    },
    /// An API key in a header.
    #[serde(rename = "api_key")]
    ApiKey {
        /// The header that carries the key.
        #[serde(default = "default_api_key_header")]
        header: String,
        /// The API key.
        api_key: Secret,
    },
    /// HTTP basic authentication.
    #[serde(rename = "basic")]
    Basic {
        /// The user name.
        username: String,
        /// The password.
        #[serde(default)]
        password: Secret,
    },
}

fn default_api_key_header() -> String {
    "X-API-Key".into()
}

/// One endpoint, read as a stream.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Endpoint {
    /// The stream name.
    pub name: String,
    /// The path below the base URL (may use `{{ config['...'] }}`).
    pub path: String,
    /// GET or POST.
    #[serde(default = "default_method")]
    pub http_method: Method,
    /// Query parameters; values may use `{{ config['...'] }}`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Request headers; values may use `{{ config['...'] }}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Where the records are in the response, as a list of keys (empty: the whole response).
    #[serde(default)]
    pub record_path: Vec<String>,
    /// The fields identifying a record.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// How to ask for the next page (none: one request).
    #[serde(default)]
    pub pagination: Option<Pagination>,
    /// Incremental reads: the record field that orders records and the request parameter
    /// that takes the last value synced.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// The JSON schema of the records. Without it, discover infers one from the first page.
    #[serde(default)]
    pub schema: Option<Value>,
}

/// How an endpoint pages.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Pagination {
    /// A page number parameter, counted from `start_from`.
    Page {
        /// The request parameter that takes the page number.
        #[serde(default = "default_page_param")]
        page_param: String,
        /// The first page's number.
        #[serde(default = "default_start_page")]
        start_from: i64,
        /// Records per page; a shorter page is the last. Sent as `size_param` when set.
        #[serde(default)]
        page_size: Option<i64>,
        /// The request parameter that takes the page size.
        #[serde(default)]
        size_param: Option<String>,
    },
    /// An offset parameter advanced by the records read.
    Offset {
        /// The request parameter that takes the offset.
        #[serde(default = "default_offset_param")]
        offset_param: String,
        /// Records per page, sent as `limit_param`; a shorter page is the last.
        page_size: i64,
        /// The request parameter that takes the page size.
        #[serde(default = "default_limit_param")]
        limit_param: String,
    },
    /// A cursor taken from the response body, sent back as a request parameter; no cursor
    /// (missing, null or empty) ends the read.
    Cursor {
        /// Where the next cursor is in the response, as a list of keys.
        cursor_path: Vec<String>,
        /// The request parameter that takes the cursor.
        #[serde(default = "default_cursor_param")]
        cursor_param: String,
    },
    /// The `Link` header's `rel="next"` URL is the next request.
    Link {},
}

/// Incremental reads of an endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct Incremental {
    /// The record field whose largest value is kept as the state (a date-time).
    pub cursor_field: String,
    /// The request parameter that takes the last value synced (or `start_value`).
    pub request_param: String,
    /// The value to start from when there is no state.
    #[serde(default = "default_start_value")]
    pub start_value: String,
    /// The format of the cursor values (Python strftime, e.g. %Y-%m-%dT%H:%M:%SZ, %Y-%m-%d,
    /// %s for epoch seconds).
    #[serde(default = "default_datetime_format")]
    pub datetime_format: String,
}

fn default_page_param() -> String {
    "page".into()
}
fn default_start_page() -> i64 {
    1
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_start_value() -> String {
    "1970-01-01T00:00:00Z".into()
}
fn default_datetime_format() -> String {
    "%Y-%m-%dT%H:%M:%SZ".into()
}

/// Formats tried on cursor values besides the endpoint's own.
const CURSOR_FORMATS: [&str; 5] = [
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
];

/// An HTTP method.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, JsonSchema)]
pub enum Method {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

fn default_method() -> Method {
    Method::Get
}

/// The spec without a manifest: the simple form, plus the injected manifest.
pub fn generic_spec() -> Value {
    let mut spec = cdk::spec::connection_specification::<SimpleConfig>();
    if let Some(props) = spec.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            INJECTED_MANIFEST.into(),
            json!({
                "type": "object",
                "title": "Low-code manifest",
                "description": "The low-code manifest that defines the components of the source (instead of the simple form)."
            }),
        );
    }
    spec
}

impl SimpleConfig {
    /// The simple form of `config`, checked by the kit against its spec and its rules below;
    /// the API form expanded to one endpoint.
    pub fn from_config(config: &Value) -> Result<Self> {
        let mut c: SimpleConfig = cdk::config::from_value(config, &generic_spec())?;
        c.expand_api_form()?;
        c.rules()?;
        Ok(c)
    }

    /// `{"url": …, "api_key": …, "method": …}` → `url_base` = the URL, one endpoint named after
    /// its last path segment, API key authentication.
    fn expand_api_form(&mut self) -> Result<()> {
        let Some(url) = self.url.clone().filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        if self.url_base.is_some() || !self.endpoints.is_empty() {
            return Err(Error::config(
                "give either 'url' (one endpoint) or 'url_base' and 'endpoints', not both",
            ));
        }
        let parsed = url::Url::parse(&url)
            .map_err(|e| Error::config(format!("'url' is not a valid URL: '{url}': {e}")))?;
        let name = parsed
            .path_segments()
            .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(str::to_string))
            .unwrap_or_else(|| "records".to_string());
        self.url_base = Some(url);
        self.api_form = true;
        if self.authentication.is_none()
            && let Some(key) = self.api_key.clone()
        {
            self.authentication = Some(Authentication::ApiKey {
                header: self
                    .api_key_header
                    .clone()
                    .unwrap_or_else(default_api_key_header),
                api_key: key,
            });
        }
        self.endpoints.push(Endpoint {
            name,
            path: String::new(),
            http_method: self.method.unwrap_or(Method::Get),
            params: BTreeMap::new(),
            headers: BTreeMap::new(),
            record_path: self.record_path.clone(),
            primary_key: Vec::new(),
            pagination: None,
            incremental: None,
            schema: None,
        });
        Ok(())
    }

    /// The rules of the expanded simple form.
    fn rules(&self) -> Result<()> {
        if self.url_base.as_deref().is_none_or(str::is_empty) {
            return Err(Error::config(format!(
                "the config needs 'url_base' and 'endpoints', or 'url' (one endpoint), or a manifest \
                 under '{INJECTED_MANIFEST}' (or run with --manifest-path)"
            )));
        }
        if self.endpoints.is_empty() {
            return Err(Error::config("'endpoints' must list at least one endpoint"));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.name.trim().is_empty() {
                return Err(Error::config(format!("endpoint {i} has an empty name")));
            }
            if e.schema.as_ref().is_some_and(|s| !s.is_object()) {
                return Err(Error::config(format!(
                    "endpoint '{}': 'schema' must be a JSON schema object",
                    e.name
                )));
            }
            if let Some(Pagination::Cursor { cursor_path, .. }) = &e.pagination
                && cursor_path.is_empty()
            {
                return Err(Error::config(format!(
                    "endpoint '{}': pagination 'cursor_path' must name at least one key",
                    e.name
                )));
            }
        }
        Ok(())
    }
}

/// Rules the JSON Schema cannot say (the API form is checked once expanded).
impl cdk::config::Validate for SimpleConfig {
    fn validate(&self) -> Result<()> {
        if self.url.as_deref().is_some_and(|u| !u.is_empty()) {
            return Ok(());
        }
        self.rules()
    }
}

impl SimpleConfig {
    /// The manifest this config stands for.
    pub fn to_manifest(&self) -> Value {
        let authenticator = self.authenticator();
        let url_base = if self.api_form {
            "{{ config['url'] }}"
        } else {
            "{{ config['url_base'] }}"
        };
        let streams: Vec<Value> = self
            .endpoints
            .iter()
            .map(|e| e.to_stream(url_base, &authenticator))
            .collect();
        json!({
            "version": "6.0.0",
            "type": "DeclarativeSource",
            "check": {"type": "CheckStream", "stream_names": [self.endpoints[0].name]},
            "streams": streams,
        })
    }

    fn authenticator(&self) -> Value {
        let key = if self.api_form {
            "config['api_key']"
        } else {
            "config['authentication']['api_key']"
        };
        match &self.authentication {
            None | Some(Authentication::None {}) => json!({"type": "NoAuth"}),
            Some(Authentication::Bearer { .. }) => json!({
                "type": "BearerAuthenticator",
                "api_token": "{{ config['authentication']['token'] }}"
            }),
            Some(Authentication::ApiKey { header, .. }) => json!({
                "type": "ApiKeyAuthenticator",
                "api_token": format!("{{{{ {key} }}}}"),
                "inject_into": {"type": "RequestOption", "inject_into": "header", "field_name": header}
            }),
            Some(Authentication::Basic { .. }) => json!({
                "type": "BasicHttpAuthenticator",
                "username": "{{ config['authentication']['username'] }}",
                "password": "{{ config['authentication'].get('password', '') }}"
            }),
        }
    }
}

impl Endpoint {
    /// Whether discover must infer the schema from the first page.
    pub fn infers_schema(&self) -> bool {
        self.schema.is_none()
    }

    fn to_stream(&self, url_base: &str, authenticator: &Value) -> Value {
        let mut retriever = json!({
            "type": "SimpleRetriever",
            "requester": {
                "type": "HttpRequester",
                "url_base": url_base,
                "path": self.path,
                "http_method": match self.http_method { Method::Get => "GET", Method::Post => "POST" },
                "request_parameters": self.params,
                "request_headers": self.headers,
                "authenticator": authenticator,
            },
            "record_selector": {
                "type": "RecordSelector",
                "extractor": {"type": "DpathExtractor", "field_path": self.record_path}
            }
        });
        if let Some(p) = &self.pagination {
            retriever["paginator"] = p.to_paginator();
        }
        let mut stream = json!({
            "type": "DeclarativeStream",
            "name": self.name,
            "primary_key": self.primary_key,
            "retriever": retriever,
            "schema_loader": {"type": "InlineSchemaLoader", "schema": self.schema.clone().unwrap_or(json!({}))}
        });
        if let Some(i) = &self.incremental {
            stream["incremental_sync"] = i.to_cursor();
        }
        stream
    }
}

fn param(field_name: &str) -> Value {
    json!({"type": "RequestOption", "inject_into": "request_parameter", "field_name": field_name})
}

impl Pagination {
    fn to_paginator(&self) -> Value {
        let mut p = json!({"type": "DefaultPaginator"});
        match self {
            Pagination::Page {
                page_param,
                start_from,
                page_size,
                size_param,
            } => {
                p["pagination_strategy"] = json!({"type": "PageIncrement", "start_from_page": start_from,
                    "page_size": page_size, "inject_on_first_request": true});
                p["page_token_option"] = param(page_param);
                if let Some(size) = size_param {
                    p["page_size_option"] = param(size);
                }
            }
            Pagination::Offset {
                offset_param,
                page_size,
                limit_param,
            } => {
                p["pagination_strategy"] = json!({"type": "OffsetIncrement", "page_size": page_size,
                    "inject_on_first_request": true});
                p["page_token_option"] = param(offset_param);
                p["page_size_option"] = param(limit_param);
            }
            Pagination::Cursor {
                cursor_path,
                cursor_param,
            } => {
                let path: String = cursor_path
                    .iter()
                    .map(|k| format!("[{}]", json!(k)))
                    .collect();
                p["pagination_strategy"] = json!({"type": "CursorPagination",
                    "cursor_value": format!("{{{{ response{path} }}}}"),
                    "stop_condition": format!("{{{{ not response{path} }}}}")});
                p["page_token_option"] = param(cursor_param);
            }
            Pagination::Link {} => {
                p["pagination_strategy"] = json!({"type": "CursorPagination",
                    "cursor_value": "{{ headers['link']['next']['url'] }}",
                    "stop_condition": "{{ 'next' not in headers['link'] }}"});
                p["page_token_option"] = json!({"type": "RequestPath"});
            }
        }
        p
    }
}

impl Incremental {
    fn to_cursor(&self) -> Value {
        let mut formats = vec![self.datetime_format.clone()];
        formats.extend(CURSOR_FORMATS.iter().map(|f| f.to_string()));
        json!({
            "type": "DatetimeBasedCursor",
            "cursor_field": self.cursor_field,
            "datetime_format": self.datetime_format,
            "cursor_datetime_formats": formats,
            "start_datetime": {"type": "MinMaxDatetime", "datetime": self.start_value,
                               "datetime_format": self.datetime_format},
            "start_time_option": param(&self.request_param),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_expands() {
        let config = json!({
            "url_base": "https://api.example.com/v1",
            "authentication": {"type": "bearer", "token": "t0k"},
            "start_date": "2024-01-01",
            "endpoints": [
                {"name": "customers", "path": "/customers", "http_method": "GET"},
                {"name": "orders", "path": "/orders", "http_method": "GET",
                 "params": {"start_date": "{{ config['start_date'] }}"}}
            ]
        });
        let m = SimpleConfig::from_config(&config).unwrap().to_manifest();
        assert_eq!(
            m["streams"][1]["retriever"]["requester"]["request_parameters"]["start_date"],
            "{{ config['start_date'] }}"
        );
        assert_eq!(
            m["streams"][0]["retriever"]["requester"]["authenticator"]["type"],
            "BearerAuthenticator"
        );
        assert!(SimpleConfig::from_config(&json!({})).is_err());
    }
}
