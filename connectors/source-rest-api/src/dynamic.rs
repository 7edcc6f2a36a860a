//! `dynamic_streams`: `DynamicDeclarativeStream`s whose `stream_template` is filled once per set
//! of component values, before the manifest is decoded. The values come from an API
//! (`HttpComponentsResolver`: every record its `retriever` reads), from the config
//! (`ConfigComponentsResolver`: the items at each `stream_config`'s `configs_pointer`, plus
//! `default_values`, in every combination) or from the manifest
//! (`ParametrizedComponentsResolver`: `stream_parameters.list_of_parameters_for_stream`). Each
//! `components_mapping` entry sets `field_path` of the template to its `value` template, which
//! sees `components_values` (and `stream_slice` for the HTTP resolver), as in Airbyte.

use std::path::PathBuf;
use std::sync::Arc;

use cdk::{Error, Result};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::interpolation::{Template, Vars, json_value, to_mj};
use crate::manifest::{Build, Component, Node, unsupported_type};
use crate::read::{self, Msg, Plan};
use crate::stream::StreamDef;

const RESOLVERS: [&str; 3] = [
    "HttpComponentsResolver",
    "ConfigComponentsResolver",
    "ParametrizedComponentsResolver",
];

/// One `components_mapping` entry.
struct Mapping {
    field_path: Vec<Template>,
    value: Template,
    value_type: Option<String>,
    create_or_update: bool,
    condition: Option<Template>,
}

/// The key under which [`expand`] lists the streams each dynamic stream definition generated
/// (by definition name, `dynamic_stream_<index>` without one).
pub const GENERATED: &str = "__generated_dynamic_streams";

/// The manifest with its dynamic streams resolved into `streams` (unchanged without any).
pub async fn expand(manifest: &Value, config: &Value, base_dir: Option<PathBuf>) -> Result<Value> {
    let defs = match manifest.get("dynamic_streams") {
        None | Some(Value::Null) => return Ok(manifest.clone()),
        Some(Value::Array(a)) if a.is_empty() => {
            let mut m = manifest.clone();
            if let Some(o) = m.as_object_mut() {
                o.remove("dynamic_streams");
            }
            return Ok(m);
        }
        Some(Value::Array(a)) => a.clone(),
        Some(other) => {
            return Err(Error::config(format!(
                "'dynamic_streams' must be a list, got {other}"
            )));
        }
    };
    let b = Build::new(config, base_dir, crate::source::DEFAULT_CONCURRENCY);
    let mut out = manifest.clone();
    let mut names: Vec<String> = manifest
        .get("streams")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut resolved = Vec::new();
    // Which streams each definition generated, for `dynamic_streams_check_configs`.
    let mut generated = Map::new();
    for (i, def) in defs.iter().enumerate() {
        let def_name = def
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("dynamic_stream_{i}"), str::to_string);
        let mut of_def = Vec::new();
        let node = Node {
            value: def,
            path: format!("/dynamic_streams/{i}"),
            params: Map::new(),
        };
        for stream in resolve(node, &b, i).await? {
            let name = match stream.get("name") {
                Some(Value::String(n)) => n.clone(),
                other => {
                    return Err(Error::config(format!(
                        "a stream of /dynamic_streams/{i} has no name (got {})",
                        other.cloned().unwrap_or(Value::Null)
                    )));
                }
            };
            if names.contains(&name) {
                return Err(Error::config(format!(
                    "dynamic streams give the stream name '{name}' twice"
                )));
            }
            names.push(name.clone());
            of_def.push(Value::String(name));
            resolved.push(stream);
        }
        generated.insert(def_name, Value::Array(of_def));
    }
    if let Some(o) = out.as_object_mut() {
        o.remove("dynamic_streams");
        o.insert(GENERATED.into(), Value::Object(generated));
        let streams = o.entry("streams").or_insert_with(|| json!([]));
        if let Some(list) = streams.as_array_mut() {
            list.extend(resolved);
        }
    }
    Ok(out)
}

/// The streams of one `DynamicDeclarativeStream`.
async fn resolve(node: Node<'_>, b: &Build, index: usize) -> Result<Vec<Value>> {
    let mut c = node.component(Some("DynamicDeclarativeStream"))?;
    c.expect(&["DynamicDeclarativeStream"])?;
    let name = c
        .opt_str("name")?
        .unwrap_or_else(|| format!("dynamic_stream_{index}"));
    let template = c.required("stream_template")?;
    if !template.is_object() {
        return Err(c.error("stream_template must be a stream definition"));
    }
    c.ignore(&["use_parent_parameters"]);
    let mut r = c.required_child("components_resolver")?.component(None)?;
    if !RESOLVERS.contains(&r.type_name.as_str()) {
        return Err(unsupported_type(&r.type_name, r.at(), &RESOLVERS));
    }
    let mappings = r
        .children("components_mapping")?
        .into_iter()
        .map(|n| Mapping::decode(n, b))
        .collect::<Result<Vec<_>>>()?;
    let values: Vec<(Value, Value)> = match r.type_name.as_str() {
        "HttpComponentsResolver" => http_values(&mut r, b, &name).await?,
        "ConfigComponentsResolver" => config_values(&mut r, b)?
            .into_iter()
            .map(|v| (v, Value::Null))
            .collect(),
        _ => parameter_values(&mut r)?
            .into_iter()
            .map(|v| (v, Value::Null))
            .collect(),
    };
    let yaml_values = r.type_name != "HttpComponentsResolver";
    let create = r.type_name != "HttpComponentsResolver";
    r.finish()?;
    c.finish()?;
    let mut streams = Vec::with_capacity(values.len());
    for (components_values, slice) in values {
        let vars = Vars::new()
            .with("components_values", json_value(Arc::new(components_values)))
            .with("stream_slice", to_mj(&slice));
        let mut stream = template.clone();
        for m in &mappings {
            m.apply(&mut stream, &vars, yaml_values, create)?;
        }
        if let Some(o) = stream.as_object_mut() {
            o.entry("type")
                .or_insert_with(|| Value::String("DeclarativeStream".into()));
        }
        streams.push(stream);
    }
    Ok(streams)
}

impl Mapping {
    fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("ComponentMappingDefinition"))?;
        let field_path = c
            .string_list("field_path")?
            .ok_or_else(|| c.error("the field 'field_path' is required"))?
            .iter()
            .map(|p| c.template_of(b, "field_path", p))
            .collect::<Result<Vec<_>>>()?;
        let value = c.template(b, "value")?;
        let value_type = c.opt_str("value_type")?;
        let create_or_update = c.bool_or("create_or_update", false)?;
        let condition = c.opt_template(b, "condition")?;
        c.finish()?;
        Ok(Self {
            field_path,
            value,
            value_type,
            create_or_update,
            condition,
        })
    }

    fn apply(&self, stream: &mut Value, vars: &Vars, yaml: bool, create: bool) -> Result<()> {
        if let Some(cond) = &self.condition
            && !cond.eval_bool(vars)?
        {
            return Ok(());
        }
        let as_text = self.value_type.as_deref() == Some("string");
        let mut value = if as_text {
            Value::String(self.value.eval_str(vars)?.unwrap_or_default())
        } else {
            typed(self.value.eval(vars)?, self.value_type.as_deref())
        };
        if yaml
            && !as_text
            && let Value::String(s) = &value
            && let Ok(parsed) = serde_yaml::from_str::<Value>(s)
        {
            value = parsed;
        }
        let path = self
            .field_path
            .iter()
            .map(|t| Ok(t.eval_str(vars)?.unwrap_or_default()))
            .collect::<Result<Vec<String>>>()?;
        let updated = set_existing(stream, &path, &value);
        if updated == 0 && create && self.create_or_update && crate::interpolation::truthy(&value) {
            create_path(stream, &path, value);
        }
        Ok(())
    }
}

/// A value kept only when it has the type asked for (else its text), as Airbyte's
/// `valid_types`.
fn typed(v: Value, value_type: Option<&str>) -> Value {
    let ok = match value_type {
        None => true,
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(_) => true,
    };
    match (ok, v) {
        (true, v) => v,
        (false, Value::String(s)) => Value::String(s),
        (false, other) => Value::String(other.to_string()),
    }
}

/// dpath's `set`: the value at every existing path (`*` matches any key); how many were set.
fn set_existing(v: &mut Value, path: &[String], value: &Value) -> usize {
    let Some((head, rest)) = path.split_first() else {
        *v = value.clone();
        return 1;
    };
    let children: Vec<&mut Value> = match v {
        Value::Object(m) if head == "*" => m.values_mut().collect(),
        Value::Object(m) => m.get_mut(head).into_iter().collect(),
        Value::Array(a) if head == "*" => a.iter_mut().collect(),
        Value::Array(a) => head
            .parse::<usize>()
            .ok()
            .and_then(|i| a.get_mut(i))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    children
        .into_iter()
        .map(|c| set_existing(c, rest, value))
        .sum()
}

/// dpath's `new`: creates the objects along `path`.
fn create_path(v: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for key in parents {
        if !cur.is_object() {
            return;
        }
        let Value::Object(m) = cur else { return };
        cur = m.entry(key.clone()).or_insert_with(|| json!({}));
    }
    if let Value::Object(m) = cur {
        m.insert(last.clone(), value);
    }
}

/// Every record the resolver's retriever reads, with its partition.
async fn http_values(r: &mut Component<'_>, b: &Build, name: &str) -> Result<Vec<(Value, Value)>> {
    let stream = Arc::new(StreamDef::of_retriever(r, b, name)?);
    let (tx, mut rx) = mpsc::channel(8);
    let _guard = read::spawn(
        Plan {
            stream,
            starts: None,
            concurrency: 1,
            first_page_only: false,
            state: None,
        },
        tx,
    );
    let mut slices = std::collections::HashMap::new();
    let mut out = Vec::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Slice { id, partition, .. } => {
                slices.insert(id, Value::Object((*partition).clone()));
            }
            Msg::Page { id, records } => {
                let slice = slices.get(&id).cloned().unwrap_or(Value::Null);
                for rec in records.into_values()? {
                    out.push((rec, slice.clone()));
                }
            }
            Msg::Failed(e) => {
                return Err(e.context(format!("resolving the dynamic streams of {}", r.at())));
            }
            Msg::Done { .. } | Msg::RateLimited(_) => {}
        }
    }
    Ok(out)
}

/// The combinations of the config values each `stream_config` points at.
fn config_values(r: &mut Component<'_>, b: &Build) -> Result<Vec<Value>> {
    let node = r.required_child("stream_config")?;
    let nodes: Vec<Node<'_>> = match node.value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| Node {
                value: v,
                path: format!("{}/{i}", node.path),
                params: node.params.clone(),
            })
            .collect(),
        _ => vec![node],
    };
    let config = b.config.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lists: Vec<Vec<(usize, Value)>> = Vec::new();
    for n in nodes {
        let mut s = n.component(Some("StreamConfig"))?;
        let pointer = s
            .string_list("configs_pointer")?
            .ok_or_else(|| s.error("the field 'configs_pointer' is required"))?
            .iter()
            .map(|p| {
                Ok(s.template_of(b, "configs_pointer", p)?
                    .eval_str(&Vars::new())?
                    .unwrap_or_default())
            })
            .collect::<Result<Vec<String>>>()?;
        let defaults = match s.get("default_values") {
            Some(Value::Array(d)) => d,
            _ => Vec::new(),
        };
        s.finish()?;
        let found = pointer
            .iter()
            .try_fold(&config, |v, k| v.get(k.as_str()))
            .cloned()
            .unwrap_or(json!([]));
        let mut items = match found {
            Value::Array(a) => a,
            other => vec![other],
        };
        items.extend(defaults);
        lists.push(items.into_iter().enumerate().collect());
    }
    let mut combos: Vec<Vec<(usize, (usize, Value))>> = vec![Vec::new()];
    for (ci, list) in lists.iter().enumerate() {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                list.iter().map(move |item| {
                    let mut c = combo.clone();
                    c.push((ci, item.clone()));
                    c
                })
            })
            .collect();
    }
    Ok(combos
        .into_iter()
        .map(|combo| {
            let mut merged = Map::new();
            for (ci, (ei, elem)) in combo {
                match elem {
                    Value::Object(o) => merged.extend(o),
                    other => {
                        merged
                            .entry(format!("source_config_{ci}"))
                            .or_insert(json!([ei, other]));
                    }
                }
            }
            Value::Object(merged)
        })
        .collect())
}

/// `stream_parameters.list_of_parameters_for_stream`.
fn parameter_values(r: &mut Component<'_>) -> Result<Vec<Value>> {
    let node = r.required_child("stream_parameters")?;
    let mut p = node.component(Some("StreamParametersDefinition"))?;
    let list = match p.required("list_of_parameters_for_stream")? {
        Value::Array(a) => a,
        other => {
            return Err(p.error(format!(
                "list_of_parameters_for_stream must be a list, got {other}"
            )));
        }
    };
    p.finish()?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn config_and_parameter_resolvers_fill_templates() {
        let manifest = json!({"type": "DeclarativeSource", "streams": [],
        "dynamic_streams": [
            {"type": "DynamicDeclarativeStream",
             "stream_template": {"type": "DeclarativeStream", "name": "x", "retriever": {"requester": {"path": "p"}}},
             "components_resolver": {"type": "ConfigComponentsResolver",
                "stream_config": {"type": "StreamConfig", "configs_pointer": ["tables"]},
                "components_mapping": [
                    {"type": "ComponentMappingDefinition", "field_path": ["name"], "value": "{{ components_values['name'] }}"},
                    {"type": "ComponentMappingDefinition", "field_path": ["retriever", "requester", "path"], "value": "/t/{{ components_values['id'] }}"},
                    {"type": "ComponentMappingDefinition", "field_path": ["primary_key"], "value": "{{ components_values['pk'] }}", "create_or_update": true}
                ]}},
            {"type": "DynamicDeclarativeStream",
             "stream_template": {"name": "y"},
             "components_resolver": {"type": "ParametrizedComponentsResolver",
                "stream_parameters": {"type": "StreamParametersDefinition", "list_of_parameters_for_stream": [{"n": "p1"}]},
                "components_mapping": [{"type": "ComponentMappingDefinition", "field_path": ["name"], "value": "{{ components_values.n }}"}]}}
        ]});
        let config =
            json!({"tables": [{"name": "a", "id": 1, "pk": "id"}, {"name": "b", "id": 2}]});
        let out = expand(&manifest, &config, None).await.unwrap();
        assert!(out.get("dynamic_streams").is_none());
        let streams = out["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 3);
        assert_eq!(streams[0]["name"], "a");
        assert_eq!(streams[0]["retriever"]["requester"]["path"], "/t/1");
        assert_eq!(streams[0]["primary_key"], "id");
        assert_eq!(streams[1]["name"], "b");
        assert!(streams[1].get("primary_key").is_none());
        assert_eq!(
            streams[2],
            json!({"name": "p1", "type": "DeclarativeStream"})
        );
    }
}
