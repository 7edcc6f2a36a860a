//! The config without `--manifest-path`: a manifest injected under
//! `__injected_declarative_manifest` (as Airbyte's manifest runner takes it), or the simple form
//! — a base URL, authentication and a list of endpoints — that expands into a manifest.

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
}

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
    /// The simple form of `config`, checked by the kit against its spec and its rules below.
    pub fn from_config(config: &Value) -> Result<Self> {
        cdk::config::from_value(config, &generic_spec())
    }
}

/// Rules the JSON Schema cannot say.
impl cdk::config::Validate for SimpleConfig {
    fn validate(&self) -> Result<()> {
        if self.url_base.as_deref().is_none_or(str::is_empty) {
            return Err(Error::config(format!(
                "the config needs 'url_base' and 'endpoints', or a manifest under '{INJECTED_MANIFEST}' \
                 (or run with --manifest-path)"
            )));
        }
        if self.endpoints.is_empty() {
            return Err(Error::config("'endpoints' must list at least one endpoint"));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.name.trim().is_empty() {
                return Err(Error::config(format!("endpoint {i} has an empty name")));
            }
        }
        Ok(())
    }
}

impl SimpleConfig {
    /// The manifest this config stands for.
    pub fn to_manifest(&self) -> Value {
        let authenticator = match &self.authentication {
            None | Some(Authentication::None {}) => json!({"type": "NoAuth"}),
            Some(Authentication::Bearer { .. }) => json!({
                "type": "BearerAuthenticator",
                "api_token": "{{ config['authentication']['token'] }}"
            }),
            Some(Authentication::ApiKey { header, .. }) => json!({
                "type": "ApiKeyAuthenticator",
                "api_token": "{{ config['authentication']['api_key'] }}",
                "inject_into": {"type": "RequestOption", "inject_into": "header", "field_name": header}
            }),
            Some(Authentication::Basic { .. }) => json!({
                "type": "BasicHttpAuthenticator",
                "username": "{{ config['authentication']['username'] }}",
                "password": "{{ config['authentication'].get('password', '') }}"
            }),
        };
        let streams: Vec<Value> = self
            .endpoints
            .iter()
            .map(|e| {
                json!({
                    "type": "DeclarativeStream",
                    "name": e.name,
                    "primary_key": e.primary_key,
                    "retriever": {
                        "type": "SimpleRetriever",
                        "requester": {
                            "type": "HttpRequester",
                            "url_base": "{{ config['url_base'] }}",
                            "path": e.path,
                            "http_method": match e.http_method { Method::Get => "GET", Method::Post => "POST" },
                            "request_parameters": e.params,
                            "request_headers": e.headers,
                            "authenticator": authenticator,
                        },
                        "record_selector": {
                            "type": "RecordSelector",
                            "extractor": {"type": "DpathExtractor", "field_path": e.record_path}
                        }
                    },
                    "schema_loader": {"type": "InlineSchemaLoader", "schema": {}}
                })
            })
            .collect();
        json!({
            "version": "6.0.0",
            "type": "DeclarativeSource",
            "check": {"type": "CheckStream", "stream_names": [self.endpoints[0].name]},
            "streams": streams,
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
