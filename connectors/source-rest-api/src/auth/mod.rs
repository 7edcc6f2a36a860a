//! Authenticators: `NoAuth`, `ApiKeyAuthenticator` (anywhere a `RequestOption` can put it),
//! `BearerAuthenticator`, `BasicHttpAuthenticator`, and the token-holding
//! `OAuthAuthenticator` ([`oauth`]) and `SessionTokenAuthenticator` ([`session`]), and
//! `JwtAuthenticator` ([`jwt`]); `SelectiveAuthenticator` ([`selective`]) picks one of them by
//! a config value; `RateLimitedMultipleTokenAuthenticator` ([`token_quota`]) rotates tokens by
//! their quotas, which is why an authenticator sees the whole request and every response.

mod jwt;
pub mod legacy;
mod oauth;
mod selective;
mod session;
mod token_quota;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use cdk::{Error, Result};
use serde_json::Value;

use crate::http::Prepared;
use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Node, unsupported_type};
use crate::request_option::{RequestOption, RequestParts};

/// Adds credentials to requests.
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()>;

    /// Forgets a token so the next request gets a new one (`REFRESH_TOKEN_THEN_RETRY`).
    async fn invalidate(&self) {}

    /// Adds credentials to a whole request, whose method and URL it may depend on. Called
    /// before every attempt; by default [`Authenticator::apply`] to its parts.
    async fn sign(&self, req: &mut Prepared) -> Result<()> {
        self.apply(&mut req.parts).await
    }

    /// Sees the response to a request it signed (every attempt, before the error handler).
    fn observe(&self, _req: &Prepared, _status: u16, _headers: &[(String, String)]) {}

    /// True when a rate-limited `req` can be retried at once with another credential instead
    /// of waiting out the rate limit.
    fn has_alternative(&self, _req: &Prepared) -> bool {
        false
    }
}

const SUPPORTED: [&str; 10] = [
    "LegacySessionTokenAuthenticator",
    "NoAuth",
    "ApiKeyAuthenticator",
    "BearerAuthenticator",
    "BasicHttpAuthenticator",
    "OAuthAuthenticator",
    "SessionTokenAuthenticator",
    "JwtAuthenticator",
    "SelectiveAuthenticator",
    "RateLimitedMultipleTokenAuthenticator",
];

pub fn none() -> Arc<dyn Authenticator> {
    Arc::new(NoAuth)
}

/// Decodes an authenticator. Token-holding ones are shared by identical definitions.
pub fn decode(node: Node<'_>, b: &Build) -> Result<Arc<dyn Authenticator>> {
    let key = format!("{}|{}", node.value, Value::Object(node.params.clone()));
    let c = node.clone().component(None)?;
    c.expect(&SUPPORTED)?;
    let stateful = matches!(
        c.type_name.as_str(),
        "OAuthAuthenticator" | "SessionTokenAuthenticator" | "LegacySessionTokenAuthenticator"
    );
    if stateful && let Some(existing) = b.auths.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
    {
        return Ok(existing.clone());
    }
    let mut c = c;
    let auth: Arc<dyn Authenticator> = match c.type_name.as_str() {
        "NoAuth" => Arc::new(NoAuth),
        "ApiKeyAuthenticator" => {
            let token = c.template(b, "api_token")?;
            let option = match (c.child("inject_into"), c.opt_str("header")?) {
                (Some(n), None) => RequestOption::decode(n, b)?,
                (None, Some(header)) => header_option(b, &header)?,
                (Some(_), Some(_)) => {
                    return Err(
                        c.error("set either 'inject_into' or the deprecated 'header', not both")
                    );
                }
                (None, None) => return Err(c.error("'inject_into' is required")),
            };
            Arc::new(ApiKey { token, option })
        }
        "BearerAuthenticator" => Arc::new(Bearer {
            token: c.template(b, "api_token")?,
        }),
        "BasicHttpAuthenticator" => Arc::new(Basic {
            username: c.template(b, "username")?,
            password: c.opt_template(b, "password")?,
        }),
        "OAuthAuthenticator" => Arc::new(oauth::OAuth::decode(&mut c, b)?),
        "SessionTokenAuthenticator" => Arc::new(session::Session::decode(&mut c, b)?),
        "JwtAuthenticator" => Arc::new(jwt::Jwt::decode(&mut c, b)?),
        "LegacySessionTokenAuthenticator" => Arc::new(legacy::Legacy::decode(&mut c, b)?),
        "SelectiveAuthenticator" => selective::decode(&mut c, b)?,
        "RateLimitedMultipleTokenAuthenticator" => token_quota::decode(&mut c, b)?,
        other => return Err(unsupported_type(other, c.at(), &SUPPORTED)),
    };
    c.finish()?;
    if stateful {
        b.auths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, auth.clone());
    }
    Ok(auth)
}

fn header_option(b: &Build, header: &str) -> Result<RequestOption> {
    let v =
        serde_json::json!({"type": "RequestOption", "inject_into": "header", "field_name": header});
    RequestOption::decode(Node::root(&v), b)
}

#[derive(Debug)]
struct NoAuth;

#[async_trait]
impl Authenticator for NoAuth {
    async fn apply(&self, _parts: &mut RequestParts) -> Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct ApiKey {
    token: Template,
    option: RequestOption,
}

#[async_trait]
impl Authenticator for ApiKey {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()> {
        let vars = Vars::new();
        let token = self
            .token
            .eval_str(&vars)?
            .ok_or_else(|| Error::config("the API key evaluated to an empty value"))?;
        self.option.inject(&Value::String(token), &vars, parts)
    }
}

#[derive(Debug)]
struct Bearer {
    token: Template,
}

#[async_trait]
impl Authenticator for Bearer {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()> {
        let token = self
            .token
            .eval_str(&Vars::new())?
            .ok_or_else(|| Error::config("the bearer token evaluated to an empty value"))?;
        parts.set_header("Authorization".into(), format!("Bearer {token}"));
        Ok(())
    }
}

#[derive(Debug)]
struct Basic {
    username: Template,
    password: Option<Template>,
}

#[async_trait]
impl Authenticator for Basic {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()> {
        let vars = Vars::new();
        let user = self.username.eval_str(&vars)?.unwrap_or_default();
        let password = match &self.password {
            Some(p) => p.eval_str(&vars)?.unwrap_or_default(),
            None => String::new(),
        };
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        parts.set_header("Authorization".into(), format!("Basic {encoded}"));
        Ok(())
    }
}

/// Finds `key` in a token response: at the top, else anywhere below (as Airbyte does).
pub(crate) fn find_key<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|child| find_key(child, key))),
        Value::Array(items) => items.iter().find_map(|child| find_key(child, key)),
        _ => None,
    }
}
