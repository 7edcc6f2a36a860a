//! `SessionTokenAuthenticator`: logs in with its own requester, takes the session token from
//! the login response and adds it to requests (as an API key or a bearer token), logging in
//! again after `expiration_duration`.

use std::time::Instant;

use async_trait::async_trait;
use cdk::{Error, Result};
use serde_json::Value;
use tokio::sync::Mutex;

use super::Authenticator;
use crate::decoder::Decoder;
use crate::interpolation::datetime::PyDuration;
use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Component};
use crate::request_option::{RequestOption, RequestParts};
use crate::requester::{Call, Requester};

#[derive(Debug)]
pub struct Session {
    login: Box<Requester>,
    token_path: Vec<String>,
    expiration: Option<PyDuration>,
    inject: Inject,
    decoder: Decoder,
    state: Mutex<Option<(String, Instant)>>,
}

#[derive(Debug)]
enum Inject {
    ApiKey {
        option: RequestOption,
        value: Template,
    },
    Bearer,
}

impl Session {
    pub fn decode(c: &mut Component<'_>, b: &Build) -> Result<Self> {
        let login = Box::new(Requester::decode(c.required_child("login_requester")?, b)?);
        login.refuse_retriever_actions("`login_requester` of the SessionTokenAuthenticator")?;
        let token_path = c
            .string_list("session_token_path")?
            .ok_or_else(|| c.error("the field 'session_token_path' is required"))?;
        let expiration = match c.opt_str("expiration_duration")? {
            Some(s) => Some(PyDuration::parse(&s).map_err(|e| c.error(e))?),
            None => None,
        };
        let decoder = Decoder::decode_node(c.child("decoder"))?;
        let mut r = c
            .required_child("request_authentication")?
            .component(None)?;
        let inject = match r.type_name.as_str() {
            "ApiKey" => {
                let option = RequestOption::decode(r.required_child("inject_into")?, b)?;
                let value = r
                    .opt_template(b, "api_token")?
                    .map_or_else(|| r.template_of(b, "api_token", "{{ session_token }}"), Ok)?;
                Inject::ApiKey { option, value }
            }
            "Bearer" => Inject::Bearer,
            other => {
                return Err(crate::manifest::unsupported_type(
                    other,
                    r.at(),
                    &["ApiKey", "Bearer"],
                ));
            }
        };
        r.finish()?;
        Ok(Self {
            login,
            token_path,
            expiration,
            inject,
            decoder,
            state: Mutex::new(None),
        })
    }

    async fn log_in(&self) -> Result<String> {
        let vars = Vars::new();
        let call = Call {
            vars: &vars,
            extra: RequestParts::default(),
            path_override: None,
            notice: None,
        };
        let resp = self
            .login
            .send(&call)
            .await
            .map_err(|e| e.context("session login failed"))?
            .ok_or_else(|| Error::config("session login failed: the response was ignored"))?;
        let docs = self.decoder.decode(&resp.body)?;
        let token = docs
            .first()
            .and_then(|d| self.token_path.iter().try_fold(d, |v, k| v.get(k)))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                Error::config(format!(
                    "session login response has no token at {:?}",
                    self.token_path
                ))
            })?;
        cdk::secrets::register(&token);
        Ok(token)
    }
}

#[async_trait]
impl Authenticator for Session {
    async fn apply(&self, parts: &mut RequestParts) -> Result<()> {
        let mut state = self.state.lock().await;
        let expired = match (&*state, &self.expiration) {
            (None, _) => true,
            (Some((_, at)), Some(d)) => at.elapsed().as_secs_f64() >= d.total_seconds(),
            (Some(_), None) => false,
        };
        if expired {
            *state = Some((self.log_in().await?, Instant::now()));
        }
        let token = state.as_ref().map(|(t, _)| t.clone()).unwrap_or_default();
        drop(state);
        match &self.inject {
            Inject::Bearer => {
                parts.set_header("Authorization".into(), format!("Bearer {token}"));
            }
            Inject::ApiKey { option, value } => {
                let vars = Vars::new().with("session_token", minijinja::Value::from(token));
                let v = value.eval_str(&vars)?.unwrap_or_default();
                option.inject(&Value::String(v), &vars, parts)?;
            }
        }
        Ok(())
    }

    async fn invalidate(&self) {
        *self.state.lock().await = None;
    }
}
