//! `QueryProperties` in a requester's `request_parameters`: the list of properties to ask
//! for (given, or read from an endpoint), narrowed to the catalog's selected fields, sent as
//! one comma-joined parameter, split into chunks (one request per chunk for each page), and
//! the records of the chunks merged by key.

use std::collections::HashSet;
use std::sync::Arc;

use cdk::{Error, Result};
use serde_json::{Map, Value};
use tokio::sync::{OnceCell, mpsc};

use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Node};
use crate::read::{self, Msg, Plan};
use crate::stream::StreamDef;
use crate::transform::Transformation;

/// One `QueryProperties` component and the request parameter it fills.
#[derive(Debug)]
pub struct QueryProperties {
    /// The request parameter the joined properties are sent as.
    pub key: String,
    list: PropertyList,
    always: Vec<String>,
    chunking: Option<Chunking>,
    selector: Option<Vec<Transformation>>,
}

#[derive(Debug)]
enum PropertyList {
    Given(Vec<String>),
    Endpoint(Box<Endpoint>),
}

/// `PropertiesFromEndpoint`: a retriever whose records name the properties (read once).
#[derive(Debug)]
struct Endpoint {
    field_path: Vec<Template>,
    stream: Arc<StreamDef>,
    cache: OnceCell<Vec<String>>,
}

/// `PropertyChunking` and its `GroupByKeyMergeStrategy` keys.
#[derive(Debug)]
struct Chunking {
    characters: bool,
    limit: Option<i64>,
    keys: Vec<String>,
}

impl QueryProperties {
    /// Decodes the `QueryProperties` sent as request parameter `key`.
    pub fn decode(key: &str, node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("QueryProperties"))?;
        c.expect(&["QueryProperties"])?;
        let list = match c.get("property_list") {
            None | Some(Value::Null) => PropertyList::Given(Vec::new()),
            Some(Value::Array(_)) => PropertyList::Given(
                c.string_list("property_list")?
                    .ok_or_else(|| c.error("property_list must be a list of strings"))?,
            ),
            Some(_) => {
                let n = c.required_child("property_list")?;
                PropertyList::Endpoint(Box::new(Endpoint::decode(n, b)?))
            }
        };
        let always = c
            .string_list("always_include_properties")?
            .unwrap_or_default();
        let chunking = match c.child("property_chunking") {
            Some(n) => Some(Chunking::decode(n)?),
            None => None,
        };
        let selector = match c.child("property_selector") {
            Some(n) => {
                let mut s = n.component(Some("JsonSchemaPropertySelector"))?;
                s.expect(&["JsonSchemaPropertySelector"])?;
                let t = s
                    .children("transformations")?
                    .into_iter()
                    .map(|n| Transformation::decode(n, b))
                    .collect::<Result<Vec<_>>>()?;
                s.finish()?;
                Some(t)
            }
            None => None,
        };
        c.finish()?;
        Ok(Self {
            key: key.to_string(),
            list,
            always,
            chunking,
            selector,
        })
    }

    /// Whether the records of the chunks are merged by key.
    pub fn merges(&self) -> bool {
        self.chunking.is_some()
    }

    /// The chunks of properties to request, each sent as one request per page.
    /// `schema` is the configured catalog's JSON schema of the stream (none outside a read).
    pub async fn chunks(&self, schema: Option<&Value>) -> Result<Vec<Vec<String>>> {
        let selected = match (&self.selector, schema) {
            (Some(t), Some(s)) => Some(selected_fields(t, s)?),
            _ => None,
        };
        let fields = match &self.list {
            PropertyList::Given(l) => l.clone(),
            PropertyList::Endpoint(e) => e.properties().await?.clone(),
        };
        let Some(ch) = &self.chunking else {
            let mut all: Vec<String> = match &selected {
                Some(s) => fields.into_iter().filter(|f| s.contains(f)).collect(),
                None => fields,
            };
            if !self.always.is_empty() {
                let mut with = self.always.clone();
                with.append(&mut all);
                all = with;
            }
            return Ok(vec![all]);
        };
        Ok(ch.split(&fields, &self.always, selected.as_ref()))
    }

    /// The records of one page from the records of its chunks: those without a merge key as
    /// they came, then the merged ones in the order their keys were first seen.
    pub fn merge(&self, records: Vec<Value>) -> Vec<Value> {
        let Some(ch) = &self.chunking else {
            return records;
        };
        let mut out = Vec::new();
        let mut merged: Vec<(String, Value)> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for rec in records {
            match group_key(&rec, &ch.keys) {
                Some(k) => match index.get(&k) {
                    Some(&i) => deep_merge(&mut merged[i].1, rec),
                    None => {
                        index.insert(k.clone(), merged.len());
                        let mut first = Value::Object(Map::new());
                        deep_merge(&mut first, rec);
                        merged.push((k, first));
                    }
                },
                None => out.push(rec),
            }
        }
        out.extend(merged.into_iter().map(|(_, v)| v));
        out
    }
}

impl Chunking {
    fn decode(node: Node<'_>) -> Result<Self> {
        let mut c = node.component(Some("PropertyChunking"))?;
        c.expect(&["PropertyChunking"])?;
        let characters = match c.str("property_limit_type")?.as_str() {
            "characters" => true,
            "property_count" => false,
            other => {
                return Err(c.error(format!(
                    "property_limit_type must be 'characters' or 'property_count', got '{other}'"
                )));
            }
        };
        let limit = c.opt_i64("property_limit")?;
        let keys = match c.child("record_merge_strategy") {
            Some(n) => {
                let mut m = n.component(Some("GroupByKeyMergeStrategy"))?;
                m.expect(&["GroupByKeyMergeStrategy"])?;
                let keys = match m.get("key") {
                    Some(Value::String(k)) => vec![k],
                    Some(Value::Array(_)) => m
                        .string_list("key")?
                        .ok_or_else(|| m.error("key must be a string or a list of strings"))?,
                    _ => return Err(m.error("key must be a string or a list of strings")),
                };
                m.finish()?;
                keys
            }
            None => vec!["id".to_string()],
        };
        c.finish()?;
        Ok(Self {
            characters,
            limit,
            keys,
        })
    }

    /// Splits `fields` as airbyte-cdk does: each chunk starts with `always`, a property
    /// counts 1 (or its length + 3 for the encoded delimiter, by characters).
    fn split(
        &self,
        fields: &[String],
        always: &[String],
        selected: Option<&HashSet<String>>,
    ) -> Vec<Vec<String>> {
        let limit = match self.limit {
            Some(l) if l != 0 => l,
            _ => {
                let mut one = fields.to_vec();
                one.extend(always.iter().cloned());
                return vec![one];
            }
        };
        let mut chunks = Vec::new();
        let mut current = always.to_vec();
        let mut size = 0i64;
        for f in fields {
            if selected.is_some_and(|s| !s.contains(f)) {
                continue;
            }
            let cost = if self.characters {
                f.chars().count() as i64 + 3
            } else {
                1
            };
            if size + cost > limit {
                chunks.push(std::mem::replace(&mut current, always.to_vec()));
                size = 0;
            }
            current.push(f.clone());
            size += cost;
        }
        chunks.push(current);
        chunks
    }
}

impl Endpoint {
    fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("PropertiesFromEndpoint"))?;
        c.expect(&["PropertiesFromEndpoint"])?;
        let field_path = c
            .string_list("property_field_path")?
            .ok_or_else(|| c.error("the field 'property_field_path' is required"))?
            .iter()
            .map(|p| c.template_of(b, "property_field_path", p))
            .collect::<Result<Vec<_>>>()?;
        let stream = StreamDef::of_retriever(&mut c, b, "dynamic_properties")?;
        c.finish()?;
        Ok(Self {
            field_path,
            stream: Arc::new(stream),
            cache: OnceCell::new(),
        })
    }

    /// The properties, read from the endpoint on first use.
    async fn properties(&self) -> Result<&Vec<String>> {
        self.cache.get_or_try_init(|| self.read()).await
    }

    async fn read(&self) -> Result<Vec<String>> {
        let path = self
            .field_path
            .iter()
            .map(|t| Ok(t.eval_str(&Vars::new())?.unwrap_or_default()))
            .collect::<Result<Vec<String>>>()?;
        let (tx, mut rx) = mpsc::channel(8);
        let _guard = read::spawn(
            Plan {
                stream: self.stream.clone(),
                starts: None,
                concurrency: 1,
                first_page_only: false,
                state: None,
            },
            tx,
        );
        let mut out = Vec::new();
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Page { records, .. } => {
                    for rec in records.into_values()? {
                        out.push(python_str(dig(&rec, &path)));
                    }
                }
                Msg::Failed(e) => {
                    return Err(e.context("reading the properties of PropertiesFromEndpoint"));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The catalog schema's property names after the selector's transformations.
fn selected_fields(transformations: &[Transformation], schema: &Value) -> Result<HashSet<String>> {
    let mut props = schema
        .get("properties")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let vars = Vars::new();
    for t in transformations {
        t.apply(&mut props, &vars)?;
    }
    match props {
        Value::Object(m) => Ok(m.keys().cloned().collect()),
        _ => Err(Error::config(
            "JsonSchemaPropertySelector: the stream's schema properties must be a mapping",
        )),
    }
}

fn dig<'v>(rec: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(rec, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A value as Python's `str()` writes it (a missing one is `[]`, dpath's default).
fn python_str(v: Option<&Value>) -> String {
    match v {
        None => "[]".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(Value::Null) => "None".into(),
        Some(other) => other.to_string(),
    }
}

/// `GroupByKey`: the values of `keys` joined by commas, none when one is missing or falsy.
fn group_key(rec: &Value, keys: &[String]) -> Option<String> {
    let mut parts = Vec::with_capacity(keys.len());
    for k in keys {
        let v = rec.get(k)?;
        if !crate::interpolation::truthy(v) {
            return None;
        }
        parts.push(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    Some(parts.join(","))
}

/// Merges `source` into `target`, mappings recursively, anything else replaced.
fn deep_merge(target: &mut Value, source: Value) {
    match (target, source) {
        (Value::Object(t), Value::Object(s)) => {
            for (k, v) in s {
                match t.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (t, s) => *t = s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunking(characters: bool, limit: i64) -> Chunking {
        Chunking {
            characters,
            limit: Some(limit),
            keys: vec!["id".into()],
        }
    }

    #[test]
    fn splits_by_count_and_by_characters() {
        let f: Vec<String> = ["a", "bb", "ccc", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let always = vec!["id".to_string()];
        assert_eq!(
            chunking(false, 2).split(&f, &always, None),
            vec![vec!["id", "a", "bb"], vec!["id", "ccc", "d"]]
        );
        // a=4, bb=5 (9), ccc=6 (new chunk), d=4 (10)
        assert_eq!(
            chunking(true, 10).split(&f, &[], None),
            vec![vec!["a", "bb"], vec!["ccc", "d"]]
        );
    }

    #[test]
    fn merges_nested_mappings() {
        let mut t = json!({"id": "1", "p": {"a": 1}});
        deep_merge(&mut t, json!({"id": "1", "p": {"b": 2}, "c": 3}));
        assert_eq!(t, json!({"id": "1", "p": {"a": 1, "b": 2}, "c": 3}));
    }
}
