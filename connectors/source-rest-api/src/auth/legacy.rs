//! `LegacySessionTokenAuthenticator`, as airbyte-cdk runs it: the configured `session_token`
//! if `validate_session_url` accepts it (a 401 means it does not), else a token from a JSON
//! login (`{"username", "password"}` posted to `login_url`, the token at
//! `session_token_response_key`), sent in the `header` of every request. URLs are the
//! requester's `url_base` followed by the path, as airbyte-cdk concatenates them. The token is
//! obtained once per run (airbyte-cdk asks again for every request).

use async_trait::async_trait;
use cdk::{Error, Result};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::Authenticator;
use crate::http::{Method, Prepared};
use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Component};
use crate::request_option::RequestParts;

/// The key the requester puts its `url_base` under for this authenticator.
pub const API_URL: &str = "__api_url";

#[derive(Debug)]
pub struct Legacy {
    api_url: Template,
    header: Template,
    login_url: Template,
    validate_url: Template,
    session_token: Option<Template>,
    response_key: Option<Template>,
    username: Option<Template>,
    password: Option<Template>,
    build: Build,
    token: Mutex<Option<String>>,
}

fn text(t: &Option<Template>) -> Result<String> {
    Ok(match t {
        Some(t) => t.eval_str(&Vars::new())?.unwrap_or_default(),
        None => String::new(),
    })
}

impl Legacy {
    pub fn decode(c: &mut Component<'_>, b: &Build) -> Result<Self> {
        let api_url = c.opt_template(b, API_URL)?.ok_or_else(|| {
            c.error("LegacySessionTokenAuthenticator needs the requester's url_base")
        })?;
        Ok(Self {
            api_url,
            header: c.template(b, "header")?,
            login_url: c.template(b, "login_url")?,
            validate_url: c.template(b, "validate_session_url")?,
            session_token: c.opt_template(b, "session_token")?,
            response_key: c.opt_template(b, "session_token_response_key")?,
            username: c.opt_template(b, "username")?,
            password: c.opt_template(b, "password")?,
            build: b.clone(),
            token: Mutex::new(None),
        })
    }

    fn url(&self, path: &Template) -> Result<String> {
        Ok(format!(
            "{}{}",
            text(&Some(self.api_url.clone()))?,
            text(&Some(path.clone()))?
        ))
    }

    async fn send(&self, req: Prepared) -> Result<crate::http::Response> {
        match self.build.http.send(&req, Default::default()).await {
            Ok(r) => Ok(r),
            Err(Err(e)) => Err(e),
            Err(Ok(e)) => Err(Error::transient(format!(
                "{} {} failed: {e}",
                req.method.as_str(),
                req.url
            ))),
        }
    }

    /// Whether the validation URL accepts `token` (a 401 says no; other failures are errors).
    async fn valid(&self, header: &str, token: &str) -> Result<bool> {
        let mut parts = RequestParts::default();
        parts.set_header(header.to_string(), token.to_string());
        let url = self.url(&self.validate_url)?;
        let resp = self
            .send(Prepared {
                method: Method::Get,
                url,
                parts,
            })
            .await?;
        match resp.status {
            200..=399 => Ok(true),
            401 => {
                tracing::info!("the session token of the config is not valid (HTTP 401)");
                Ok(false)
            }
            s => Err(Error::config(format!(
                "Error while validating session token: HTTP {s}: {}",
                crate::decoder::snippet(&resp.body)
            ))),
        }
    }

    async fn log_in(&self, username: String, password: String) -> Result<String> {
        let mut parts = RequestParts::default();
        let mut body = Map::new();
        body.insert("username".into(), Value::String(username));
        body.insert("password".into(), Value::String(password));
        parts.body_json = Some(body);
        let url = self.url(&self.login_url)?;
        let resp = self
            .send(Prepared {
                method: Method::Post,
                url,
                parts,
            })
            .await?;
        if !(200..400).contains(&resp.status) {
            return Err(Error::config(format!(
                "Failed to retrieve new session token, response code {}: {}",
                resp.status,
                crate::decoder::snippet(&resp.body)
            )));
        }
        let key = text(&self.response_key)?;
        let doc: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        match doc.get(&key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) if !v.is_null() => Ok(crate::interpolation::scalar_text(v)),
            _ => Err(Error::config(format!("the login response has no '{key}'"))),
        }
    }

    async fn token(&self, header: &str) -> Result<String> {
        let configured = text(&self.session_token)?;
        if !configured.is_empty() && self.valid(header, &configured).await? {
            return Ok(configured);
        }
        let (username, password) = (text(&self.username)?, text(&self.password)?);
        if !username.is_empty() && !password.is_empty() {
            tracing::info!("using a session token generated with the username and password");
            return self.log_in(username, password).await;
        }
        Err(Error::config(
            "Invalid credentials: session token is not valid or provide username and password",
        ))
    }
}

#[async_trait]
impl Authenticator for Legacy {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()> {
        let header = text(&Some(self.header.clone()))?;
        let mut cached = self.token.lock().await;
        let token = match &*cached {
            Some(t) => t.clone(),
            None => {
                let t = self.token(&header).await?;
                cdk::secrets::register(&t);
                *cached = Some(t.clone());
                t
            }
        };
        parts.set_header(header, token);
        Ok(())
    }

    async fn invalidate(&self) {
        *self.token.lock().await = None;
    }
}
