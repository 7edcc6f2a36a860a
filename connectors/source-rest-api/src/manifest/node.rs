//! Reading one component of a resolved manifest: its `type` (or the default type of the field
//! it sits in), its fields, and `$parameters` propagated from its parents (a field missing or
//! falsy on a component takes the parameter of the same name, as in Airbyte). A field no
//! decoder reads is ignored with a debug log line naming the component and its path, as
//! Airbyte's engine ignores fields its components do not define.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cdk::{Error, Result};
use serde_json::{Map, Value};

use crate::auth::Authenticator;
use crate::http::Http;
use crate::interpolation::{Interpolator, Structure, Template};

/// What decoders share: the template engine, where relative files are, the HTTP client, the
/// config (which OAuth may update) and the stateful authenticators already built.
#[derive(Clone)]
pub struct Build {
    pub interp: Arc<Interpolator>,
    /// The manifest's directory (for `JsonFileSchemaLoader`), when it came from a file.
    pub base_dir: Option<PathBuf>,
    pub http: Arc<Http>,
    pub config: Arc<Mutex<Value>>,
    /// Authenticators that hold tokens, by their definition: streams sharing a definition share
    /// the tokens (a single-use refresh token is refreshed once).
    pub auths: Arc<Mutex<HashMap<String, Arc<dyn Authenticator>>>>,
    /// How many `AsyncRetriever` jobs of the source may run at once.
    pub job_slots: Arc<tokio::sync::Semaphore>,
    /// The cursor fields the configured catalog picked, by stream (for a read), which cursors
    /// with `allow_catalog_defined_cursor_field` use.
    pub catalog_cursors: Arc<HashMap<String, Vec<String>>>,
    /// The JSON schemas of the configured catalog's streams, by name (for a read), which
    /// `JsonSchemaPropertySelector` narrows query properties to.
    pub catalog_schemas: Arc<HashMap<String, Value>>,
}

impl Build {
    pub fn new(config: &Value, base_dir: Option<PathBuf>, concurrency: usize) -> Self {
        Self {
            interp: Interpolator::new(config),
            base_dir,
            http: Arc::new(Http::new(concurrency)),
            config: Arc::new(Mutex::new(config.clone())),
            auths: Arc::new(Mutex::new(HashMap::new())),
            job_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            catalog_cursors: Arc::new(HashMap::new()),
            catalog_schemas: Arc::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Build")
            .field("base_dir", &self.base_dir)
            .finish()
    }
}

/// A place in the manifest: a value, where it is, and the parameters it inherits.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
    pub params: Map<String, Value>,
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: String::new(),
            params: Map::new(),
        }
    }

    pub fn at(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    /// Opens the node as a component; `default_type` is used when it has no `type`.
    pub fn component(self, default_type: Option<&str>) -> Result<Component<'a>> {
        let Value::Object(obj) = self.value else {
            return Err(Error::config(format!(
                "expected a component at {}, got {}",
                self.at(),
                self.value
            )));
        };
        let type_name = match obj.get("type") {
            Some(Value::String(t)) => t.clone(),
            None => default_type
                .ok_or_else(|| {
                    Error::config(format!("the component at {} has no 'type'", self.at()))
                })?
                .to_string(),
            Some(other) => {
                return Err(Error::config(format!(
                    "'type' at {} must be a string, got {other}",
                    self.at()
                )));
            }
        };
        if let Some(own) = obj.get("$parameters")
            && !own.is_object()
        {
            return Err(Error::config(format!(
                "'$parameters' at {} must be a mapping",
                self.at()
            )));
        }
        let mut params = self.params;
        if let Some(Value::Object(own)) = obj.get("$parameters") {
            params.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut used = BTreeSet::new();
        used.insert("type".to_string());
        used.insert("$parameters".to_string());
        Ok(Component {
            type_name,
            obj,
            path: self.path,
            params,
            used,
        })
    }
}

/// A component being decoded.
#[derive(Debug)]
pub struct Component<'a> {
    pub type_name: String,
    obj: &'a Map<String, Value>,
    pub path: String,
    params: Map<String, Value>,
    used: BTreeSet<String>,
}

fn python_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

impl<'a> Component<'a> {
    pub fn at(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    /// The component's effective `$parameters` (inherited and its own).
    pub fn params(&self) -> &Map<String, Value> {
        &self.params
    }

    pub fn params_value(&self) -> Value {
        Value::Object(self.params.clone())
    }

    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::config(format!("{} at {}: {message}", self.type_name, self.at()))
    }

    /// Fails unless the component is of one of `types`.
    pub fn expect(&self, types: &[&str]) -> Result<()> {
        if types.contains(&self.type_name.as_str()) {
            Ok(())
        } else {
            Err(unsupported_type(&self.type_name, self.at(), types))
        }
    }

    /// Marks fields as accepted without effect (legacy or informational fields).
    pub fn ignore(&mut self, keys: &[&str]) {
        for k in keys {
            self.used.insert((*k).to_string());
        }
    }

    /// Whether the field is written on the component (parameters aside).
    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    /// The field's value: the component's own unless missing or falsy, then the parameter.
    pub fn get(&mut self, key: &str) -> Option<Value> {
        self.used.insert(key.to_string());
        let own = self.obj.get(key);
        match (own, self.params.get(key)) {
            (Some(v), Some(p)) if python_falsy(v) => Some(p.clone()),
            (Some(v), _) => Some(v.clone()),
            (None, Some(p)) => Some(p.clone()),
            (None, None) => None,
        }
    }

    pub fn required(&mut self, key: &str) -> Result<Value> {
        self.get(key)
            .filter(|v| !v.is_null())
            .ok_or_else(|| self.error(format!("the field '{key}' is required")))
    }

    pub fn opt_str(&mut self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.error(format!("'{key}' must be a string, got {other}"))),
        }
    }

    pub fn str(&mut self, key: &str) -> Result<String> {
        self.opt_str(key)?
            .ok_or_else(|| self.error(format!("the field '{key}' is required")))
    }

    pub fn opt_bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(self.error(format!("'{key}' must be true or false, got {other}"))),
        }
    }

    pub fn bool_or(&mut self, key: &str, default: bool) -> Result<bool> {
        Ok(self.opt_bool(key)?.unwrap_or(default))
    }

    pub fn opt_f64(&mut self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.error(format!("'{key}' must be a number, got '{s}'"))),
            Some(other) => Err(self.error(format!("'{key}' must be a number, got {other}"))),
        }
    }

    pub fn opt_i64(&mut self, key: &str) -> Result<Option<i64>> {
        match self.opt_f64(key)? {
            None => Ok(None),
            Some(f) if f.fract() == 0.0 => Ok(Some(f as i64)),
            Some(f) => Err(self.error(format!("'{key}' must be an integer, got {f}"))),
        }
    }

    pub fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(self.error(format!("'{key}' must list strings, got {other}"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(vec![s])),
            Some(other) => Err(self.error(format!("'{key}' must be a list, got {other}"))),
        }
    }

    /// A string field that may hold `{{ }}`.
    pub fn opt_template(&mut self, b: &Build, key: &str) -> Result<Option<Template>> {
        let raw = match self.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(v)) => if v { "True" } else { "False" }.to_string(),
            Some(other) => {
                return Err(self.error(format!("'{key}' must be a string, got {other}")));
            }
        };
        self.template_of(b, key, &raw).map(Some)
    }

    pub fn template(&mut self, b: &Build, key: &str) -> Result<Template> {
        self.opt_template(b, key)?
            .ok_or_else(|| self.error(format!("the field '{key}' is required")))
    }

    /// Compiles `text` as a template of this component (for values found inside fields).
    pub fn template_of(&self, b: &Build, key: &str, text: &str) -> Result<Template> {
        Template::new(&b.interp, text, &self.params_value())
            .map_err(|e| self.error(format!("'{key}': {e}")))
    }

    /// A field of any shape whose strings are templates (request parameters, bodies).
    pub fn opt_structure(&mut self, b: &Build, key: &str) -> Result<Option<Structure>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Structure::new(&b.interp, &v, &self.params_value())
                .map(Some)
                .map_err(|e| self.error(format!("'{key}': {e}"))),
        }
    }

    /// A sub-component field. The field's own name is not passed down as a parameter.
    pub fn child(&mut self, key: &str) -> Option<Node<'a>> {
        self.used.insert(key.to_string());
        let value = self.obj.get(key).filter(|v| !v.is_null())?;
        let mut params = self.params.clone();
        params.remove(key);
        Some(Node {
            value,
            path: format!("{}/{key}", self.path),
            params,
        })
    }

    pub fn required_child(&mut self, key: &str) -> Result<Node<'a>> {
        self.child(key)
            .ok_or_else(|| self.error(format!("the field '{key}' is required")))
    }

    /// A list of sub-components.
    pub fn children(&mut self, key: &str) -> Result<Vec<Node<'a>>> {
        let Some(node) = self.child(key) else {
            return Ok(Vec::new());
        };
        match node.value {
            Value::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Node {
                    value: v,
                    path: format!("{}/{i}", node.path),
                    params: node.params.clone(),
                })
                .collect()),
            other => Err(self.error(format!("'{key}' must be a list, got {other}"))),
        }
    }

    /// Ends decoding. Fields no decoder read are ignored, as Airbyte's engine ignores fields a
    /// component does not define (its models accept extra fields); each is logged at debug level.
    pub fn finish(self) -> Result<()> {
        for k in self.unknown_fields() {
            tracing::debug!(component = %self.type_name, at = %self.at(), field = %k,
                "ignoring a field the component does not define");
        }
        Ok(())
    }

    /// The fields written on the component that no decoder read.
    pub fn unknown_fields(&self) -> Vec<&String> {
        self.obj
            .keys()
            .filter(|k| !self.used.contains(k.as_str()))
            .collect()
    }
}

/// The error for a component type this engine does not implement.
pub fn unsupported_type(type_name: &str, at: &str, supported: &[&str]) -> Error {
    Error::config(format!(
        "unsupported component type '{type_name}' at {at} (supported here: {})",
        supported.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_fill_missing_and_falsy_fields() {
        let v = json!({"type": "X", "$parameters": {"path": "/p", "name": "n"}, "name": "", "keep": "k"});
        let mut c = Node::root(&v).component(None).unwrap();
        assert_eq!(c.get("path"), Some(json!("/p")));
        assert_eq!(c.get("name"), Some(json!("n")));
        assert_eq!(c.get("keep"), Some(json!("k")));
        c.finish().unwrap();
    }

    #[test]
    fn unknown_fields_are_ignored_and_types_named() {
        let v = json!({"type": "X", "bogus": 1, "known": 2});
        let mut c = Node::root(&v).component(None).unwrap();
        assert_eq!(c.get("known"), Some(json!(2)));
        assert_eq!(c.unknown_fields(), vec!["bogus"]);
        c.finish().unwrap();
        let c = Node::root(&v).component(None).unwrap();
        let e = c.expect(&["Y"]).unwrap_err();
        assert!(
            e.message.contains("unsupported component type 'X' at /"),
            "{}",
            e.message
        );
    }

    #[test]
    fn children_inherit_parameters_except_their_own_name() {
        let v = json!({"type": "A", "$parameters": {"x": 1, "inner": 2}, "inner": {"type": "B"}});
        let mut c = Node::root(&v).component(None).unwrap();
        let child = c.child("inner").unwrap();
        assert_eq!(child.path, "/inner");
        let child = child.component(None).unwrap();
        assert_eq!(child.params().get("x"), Some(&json!(1)));
        assert_eq!(child.params().get("inner"), None);
    }
}
