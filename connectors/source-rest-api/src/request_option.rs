//! `RequestOption`: where a value goes in a request (query parameter, header, form field or
//! JSON body field, possibly nested), and [`RequestParts`], the pieces of a request that
//! components add to.

use cdk::Result;
use serde_json::{Map, Value};

use crate::interpolation::{Template, Vars, scalar_text};
use crate::manifest::{Build, Node};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectInto {
    RequestParameter,
    Header,
    BodyData,
    BodyJson,
}

#[derive(Debug, Clone)]
pub struct RequestOption {
    pub inject_into: InjectInto,
    field: Field,
}

#[derive(Debug, Clone)]
enum Field {
    Name(Template),
    Path(Vec<Template>),
}

impl RequestOption {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("RequestOption"))?;
        c.expect(&["RequestOption"])?;
        let inject_into = match c.str("inject_into")?.as_str() {
            "request_parameter" => InjectInto::RequestParameter,
            "header" => InjectInto::Header,
            "body_data" => InjectInto::BodyData,
            "body_json" => InjectInto::BodyJson,
            other => {
                return Err(c.error(format!(
                    "inject_into must be request_parameter, header, body_data or body_json, \
                     got '{other}'"
                )));
            }
        };
        // As airbyte-cdk: an empty or null `field_path` (or `field_name`) counts as absent.
        let path = if c.has("field_path") {
            c.string_list("field_path")?.unwrap_or_default()
        } else {
            Vec::new()
        };
        let name = c
            .get("field_name")
            .filter(|v| !(v.is_null() || v.as_str() == Some("")));
        let field = match (path.is_empty(), name) {
            (false, Some(_)) => {
                return Err(c.error("only one of field_name or field_path can be given"));
            }
            (false, None) => {
                if inject_into != InjectInto::BodyJson {
                    return Err(c.error("field_path is only supported with inject_into: body_json"));
                }
                Field::Path(
                    path.iter()
                        .map(|p| c.template_of(b, "field_path", p))
                        .collect::<Result<_>>()?,
                )
            }
            (true, _) => Field::Name(c.template(b, "field_name")?),
        };
        c.finish()?;
        Ok(Self { inject_into, field })
    }

    /// Puts `value` where this option says.
    pub fn inject(&self, value: &Value, vars: &Vars, parts: &mut RequestParts) -> Result<()> {
        if value.is_null() {
            return Ok(());
        }
        match &self.field {
            Field::Name(name) => {
                let Some(name) = name.eval_str(vars)? else {
                    return Ok(());
                };
                match self.inject_into {
                    InjectInto::RequestParameter => parts.set_param(name, value),
                    InjectInto::Header => parts.set_header(name, scalar_text(value)),
                    InjectInto::BodyData => parts.set_form(name, scalar_text(value)),
                    InjectInto::BodyJson => {
                        parts.json_body().insert(name, value.clone());
                    }
                }
            }
            Field::Path(path) => {
                let keys: Vec<String> = path
                    .iter()
                    .map(|t| Ok(t.eval_str(vars)?.unwrap_or_default()))
                    .collect::<Result<_>>()?;
                let mut target = parts.json_body();
                for key in &keys[..keys.len() - 1] {
                    let entry = target
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    match entry {
                        Value::Object(next) => target = next,
                        _ => return Ok(()),
                    }
                }
                target.insert(keys[keys.len() - 1].clone(), value.clone());
            }
        }
        Ok(())
    }
}

/// The parts of an HTTP request that components contribute to.
#[derive(Debug, Clone, Default)]
pub struct RequestParts {
    pub params: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body_json: Option<Map<String, Value>>,
    pub body_form: Vec<(String, String)>,
    pub body_text: Option<String>,
}

impl RequestParts {
    /// Sets a query parameter (a list gives the key once per item).
    pub fn set_param(&mut self, key: String, value: &Value) {
        self.params.retain(|(k, _)| *k != key);
        match value {
            Value::Array(items) => {
                for item in items {
                    self.params.push((key.clone(), scalar_text(item)));
                }
            }
            v => self.params.push((key, scalar_text(v))),
        }
    }

    pub fn set_header(&mut self, key: String, value: String) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
        self.headers.push((key, value));
    }

    pub fn set_form(&mut self, key: String, value: String) {
        self.body_form.retain(|(k, _)| *k != key);
        self.body_form.push((key, value));
    }

    pub fn json_body(&mut self) -> &mut Map<String, Value> {
        self.body_json.get_or_insert_with(Map::new)
    }
}
