//! `OAuthAuthenticator`: a bearer access token obtained from a token endpoint (refresh-token or
//! client-credentials grant) and refreshed when it expires. With `refresh_token_updater` the
//! refresh token is single-use: each new one is written into the config, announced in a CONTROL
//! message (so the platform stores it) and masked in all output. With `use_profile_assertion`,
//! the token request is the JWT-bearer grant: `grant_type` and an `assertion` signed by the
//! `profile_assertion` `JwtAuthenticator`, nothing else.

use std::time::Duration;

use async_trait::async_trait;
use cdk::{Error, Result};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Authenticator, find_key};
use crate::http::{Method, Prepared};
use crate::interpolation::datetime::{Dt, parse_airbyte, parse_loose, utc_now};
use crate::interpolation::{Structure, Template, Vars};
use crate::manifest::{Build, Component};
use crate::request_option::RequestParts;

#[derive(Debug)]
pub struct OAuth {
    endpoint: Option<Template>,
    client_id: Option<Template>,
    client_secret: Option<Template>,
    refresh_token: Option<Template>,
    client_id_name: String,
    client_secret_name: String,
    refresh_token_name: String,
    grant_type_name: String,
    grant_type: Template,
    access_token_name: String,
    expires_in_name: String,
    scopes: Vec<String>,
    expiry_format: Option<String>,
    body: Option<Structure>,
    headers: Option<Structure>,
    as_query: bool,
    updater: Option<Updater>,
    /// `profile_assertion` when `use_profile_assertion` is true.
    assertion: Option<super::jwt::Jwt>,
    state: Mutex<TokenState>,
    build: Build,
}

/// The grant type of the profile assertion flow (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `profile_assertion`, when `use_profile_assertion` evaluates to true.
fn profile_assertion(c: &mut Component<'_>, b: &Build) -> Result<Option<super::jwt::Jwt>> {
    let used = match c.get("use_profile_assertion") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(v)) => v,
        Some(Value::String(s)) => c
            .template_of(b, "use_profile_assertion", &s)?
            .eval_bool(&Vars::new())?,
        Some(other) => {
            return Err(c.error(format!(
                "'use_profile_assertion' must be true or false, got {other}"
            )));
        }
    };
    let jwt = match c.child("profile_assertion") {
        Some(n) if !n.value.is_null() => {
            let mut j = n.component(Some("JwtAuthenticator"))?;
            j.expect(&["JwtAuthenticator"])?;
            let jwt = super::jwt::Jwt::decode(&mut j, b)?;
            j.finish()?;
            Some(jwt)
        }
        _ => None,
    };
    match (used, jwt) {
        (false, _) => Ok(None),
        (true, None) => Err(c.error(
            "'profile_assertion' is required when using the profile assertion flow (use_profile_assertion)",
        )),
        (true, jwt) => Ok(jwt),
    }
}

#[derive(Debug)]
struct Updater {
    response_key: String,
    access_token_path: Vec<String>,
    refresh_token_path: Vec<String>,
    expiry_path: Vec<String>,
    error_codes: Vec<u16>,
    error_key: Option<String>,
    error_values: Vec<String>,
}

#[derive(Debug, Default)]
struct TokenState {
    access: Option<String>,
    expires: Option<Dt>,
    /// The current refresh token once it has rotated.
    refresh: Option<String>,
}

fn path_field(c: &mut Component<'_>, key: &str, default: &[&str]) -> Result<Vec<String>> {
    Ok(c.string_list(key)?
        .unwrap_or_else(|| default.iter().map(|s| (*s).to_string()).collect()))
}

fn at_path<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn set_path(v: &mut Value, path: &[String], new: Value) {
    let mut target = v;
    for k in &path[..path.len().saturating_sub(1)] {
        if !target.get(k).is_some_and(Value::is_object) {
            if let Value::Object(m) = target {
                m.insert(k.clone(), Value::Object(Default::default()));
            } else {
                return;
            }
        }
        target = &mut target[k.as_str()];
    }
    if let (Value::Object(m), Some(last)) = (target, path.last()) {
        m.insert(last.clone(), new);
    }
}

impl OAuth {
    pub fn decode(c: &mut Component<'_>, b: &Build) -> Result<Self> {
        let assertion = profile_assertion(c, b)?;
        let name = |c: &mut Component<'_>, k: &str, d: &str| -> Result<String> {
            Ok(c.opt_str(k)?.unwrap_or_else(|| d.to_string()))
        };
        let updater = match c.child("refresh_token_updater") {
            None => None,
            Some(n) => {
                let mut u = n.component(Some("RefreshTokenUpdater"))?;
                let updater = Updater {
                    response_key: u
                        .opt_str("refresh_token_name")?
                        .unwrap_or_else(|| "refresh_token".into()),
                    access_token_path: path_field(
                        &mut u,
                        "access_token_config_path",
                        &["credentials", "access_token"],
                    )?,
                    refresh_token_path: path_field(
                        &mut u,
                        "refresh_token_config_path",
                        &["credentials", "refresh_token"],
                    )?,
                    expiry_path: path_field(
                        &mut u,
                        "token_expiry_date_config_path",
                        &["credentials", "token_expiry_date"],
                    )?,
                    error_codes: u
                        .string_list("refresh_token_error_status_codes")?
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|s| s.parse().ok())
                        .collect(),
                    error_key: u.opt_str("refresh_token_error_key")?,
                    error_values: u
                        .string_list("refresh_token_error_values")?
                        .unwrap_or_default(),
                };
                u.finish()?;
                Some(updater)
            }
        };
        let access_token_value = c.opt_template(b, "access_token_value")?;
        let token_expiry_date = c.opt_template(b, "token_expiry_date")?;
        let expiry_format = c.opt_str("token_expiry_date_format")?;
        let endpoint = c.opt_template(b, "token_refresh_endpoint")?;
        let oauth = OAuth {
            client_id: c.opt_template(b, "client_id")?,
            client_secret: c.opt_template(b, "client_secret")?,
            refresh_token: c.opt_template(b, "refresh_token")?,
            client_id_name: name(c, "client_id_name", "client_id")?,
            client_secret_name: name(c, "client_secret_name", "client_secret")?,
            refresh_token_name: name(c, "refresh_token_name", "refresh_token")?,
            grant_type_name: name(c, "grant_type_name", "grant_type")?,
            grant_type: c
                .opt_template(b, "grant_type")?
                .map_or_else(|| c.template_of(b, "grant_type", "refresh_token"), Ok)?,
            access_token_name: name(c, "access_token_name", "access_token")?,
            expires_in_name: name(c, "expires_in_name", "expires_in")?,
            scopes: c.string_list("scopes")?.unwrap_or_default(),
            expiry_format: expiry_format.clone(),
            body: c.opt_structure(b, "refresh_request_body")?,
            headers: c.opt_structure(b, "refresh_request_headers")?,
            as_query: c.bool_or("send_refresh_request_as_query_params", false)?,
            endpoint,
            // airbyte-cdk's single-use refresh token authenticator has no assertion flow.
            assertion: if updater.is_some() { None } else { assertion },
            updater,
            state: Mutex::new(TokenState::default()),
            build: b.clone(),
        };
        if oauth.endpoint.is_none() && access_token_value.is_none() {
            return Err(c.error("either token_refresh_endpoint or access_token_value is required"));
        }
        // The starting token: from the config paths of the updater, else the manifest.
        let vars = Vars::new();
        let mut state = TokenState::default();
        if let Some(u) = &oauth.updater {
            let config = b.config.lock().unwrap_or_else(|p| p.into_inner()).clone();
            state.access = at_path(&config, &u.access_token_path)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            state.expires = at_path(&config, &u.expiry_path)
                .and_then(Value::as_str)
                .and_then(|s| parse_expiry(s, expiry_format.as_deref()));
        }
        if state.access.is_none()
            && let Some(t) = &access_token_value
        {
            state.access = t.eval_str(&vars)?;
        }
        if state.expires.is_none()
            && let Some(t) = &token_expiry_date
        {
            state.expires = t
                .eval_str(&vars)?
                .and_then(|s| parse_expiry(&s, expiry_format.as_deref()));
        }
        if let Some(a) = &state.access {
            cdk::secrets::register(a);
        }
        Ok(OAuth {
            state: Mutex::new(state),
            ..oauth
        })
    }

    fn current_refresh_token(&self, state: &TokenState) -> Result<Option<String>> {
        if let Some(r) = &state.refresh {
            return Ok(Some(r.clone()));
        }
        if let Some(u) = &self.updater {
            let config = self.build.config.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = at_path(&config, &u.refresh_token_path).and_then(Value::as_str) {
                return Ok(Some(s.to_string()));
            }
        }
        match &self.refresh_token {
            Some(t) => t.eval_str(&Vars::new()),
            None => Ok(None),
        }
    }

    async fn refresh(&self, state: &mut TokenState) -> Result<()> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(());
        };
        let vars = Vars::new();
        let url = endpoint
            .eval_str(&vars)?
            .ok_or_else(|| Error::config("token_refresh_endpoint evaluated to an empty value"))?;
        let fields = match &self.assertion {
            Some(jwt) => vec![
                (self.grant_type_name.clone(), JWT_BEARER.to_string()),
                (
                    "assertion".into(),
                    jwt.token(chrono::Utc::now().timestamp())?,
                ),
            ],
            None => self.refresh_fields(state, &vars)?,
        };
        let mut parts = RequestParts::default();
        if self.as_query {
            parts.params = fields;
        } else {
            parts.body_form = fields;
        }
        if let Some(h) = &self.headers {
            for (k, v) in h.eval_strings(&vars)? {
                parts.set_header(k, v);
            }
        }
        let req = Prepared {
            method: Method::Post,
            url: url.clone(),
            parts,
        };
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match self.build.http.send(&req, Default::default()).await {
                Ok(r) if (r.status == 429 || r.status >= 500) && attempt < 4 => {}
                Ok(r) => break r,
                Err(Err(e)) => return Err(e),
                Err(Ok(e)) if attempt >= 4 => {
                    return Err(Error::transient(format!(
                        "OAuth token refresh at {url} failed: {e}"
                    )));
                }
                Err(Ok(_)) => {}
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        };
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if let Some(u) = &self.updater
            && u.error_codes.contains(&resp.status)
            && let Some(key) = &u.error_key
            && body
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|v| u.error_values.iter().any(|e| e == v))
        {
            return Err(Error::config(format!(
                "the OAuth refresh token was refused ({}: {}); re-authenticate the source",
                resp.status,
                crate::decoder::snippet(&resp.body)
            )));
        }
        if !(200..300).contains(&resp.status) {
            let text = format!(
                "OAuth token refresh at {url} failed: HTTP {}: {}",
                resp.status,
                crate::decoder::snippet(&resp.body)
            );
            return Err(if resp.status >= 500 || resp.status == 429 {
                Error::transient(text)
            } else {
                Error::config(text)
            });
        }
        let access = find_key(&body, &self.access_token_name)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::system(format!(
                    "the OAuth token response has no '{}'",
                    self.access_token_name
                ))
            })?
            .to_string();
        cdk::secrets::register(&access);
        let expires = match find_key(&body, &self.expires_in_name) {
            Some(Value::Number(n)) => n
                .as_f64()
                .map(|s| utc_now() + chrono::TimeDelta::milliseconds((s * 1000.0) as i64)),
            Some(Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(secs) if self.expiry_format.is_none() => {
                    Some(utc_now() + chrono::TimeDelta::milliseconds((secs * 1000.0) as i64))
                }
                _ => parse_expiry(s, self.expiry_format.as_deref()),
            },
            _ => None,
        };
        state.access = Some(access.clone());
        state.expires = expires;
        if let Some(u) = &self.updater {
            let rotated = find_key(&body, &u.response_key)
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(r) = &rotated {
                cdk::secrets::register(r);
                state.refresh = Some(r.clone());
            }
            let updated = {
                let mut config = self.build.config.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(r) = rotated {
                    set_path(&mut config, &u.refresh_token_path, Value::String(r));
                }
                set_path(&mut config, &u.access_token_path, Value::String(access));
                if let Some(e) = expires {
                    set_path(
                        &mut config,
                        &u.expiry_path,
                        Value::String(e.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)),
                    );
                }
                config.clone()
            };
            if let Value::Object(map) = updated {
                cdk::output::global().config_update(map);
            }
        }
        tracing::info!("obtained a new OAuth access token");
        Ok(())
    }

    /// The standard fields of a token request: grant type, client credentials, refresh token,
    /// scopes and `refresh_request_body`.
    fn refresh_fields(&self, state: &TokenState, vars: &Vars) -> Result<Vec<(String, String)>> {
        let grant_type = self
            .grant_type
            .eval_str(vars)?
            .unwrap_or_else(|| "refresh_token".into());
        let mut fields: Vec<(String, String)> =
            vec![(self.grant_type_name.clone(), grant_type.clone())];
        for (name, t) in [
            (&self.client_id_name, &self.client_id),
            (&self.client_secret_name, &self.client_secret),
        ] {
            if let Some(v) = t.as_ref().map(|t| t.eval_str(vars)).transpose()?.flatten() {
                fields.push((name.clone(), v));
            }
        }
        if grant_type == "refresh_token" {
            let token = self
                .current_refresh_token(state)?
                .ok_or_else(|| Error::config("no refresh token is configured for OAuth"))?;
            fields.push((self.refresh_token_name.clone(), token));
        }
        for s in &self.scopes {
            fields.push(("scopes".into(), s.clone()));
        }
        if let Some(body) = &self.body {
            for (k, v) in body.eval_strings(vars)? {
                if !fields.iter().any(|(x, _)| *x == k) {
                    fields.push((k, v));
                }
            }
        }
        Ok(fields)
    }
}

fn parse_expiry(s: &str, format: Option<&str>) -> Option<Dt> {
    match format {
        Some(f) => parse_airbyte(s, f).ok(),
        None => parse_loose(s).ok(),
    }
}

#[async_trait]
impl Authenticator for OAuth {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()> {
        let mut state = self.state.lock().await;
        let expired = state
            .expires
            .is_some_and(|e| utc_now() >= e - chrono::TimeDelta::seconds(10));
        if (state.access.is_none() || expired) && self.endpoint.is_some() {
            self.refresh(&mut state).await?;
        }
        let token = state
            .access
            .clone()
            .ok_or_else(|| Error::config("OAuth: no access token"))?;
        parts.set_header("Authorization".into(), format!("Bearer {token}"));
        Ok(())
    }

    async fn invalidate(&self) {
        let mut state = self.state.lock().await;
        state.access = None;
    }
}
