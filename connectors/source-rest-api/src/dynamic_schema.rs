//! `DynamicSchemaLoader`: a stream's schema built from the first record its `retriever` reads,
//! as airbyte-cdk builds it — the property definitions at `schema_pointer`, each named by
//! `key_pointer` and typed by `type_pointer` through `types_mapping` (`TypesMap`, with
//! `condition` seeing `raw_schema`), filtered by `schema_filter` and changed by
//! `schema_transformations`. [`resolve`] replaces each such loader by an `InlineSchemaLoader`
//! (for discover, and for the streams a read selects); elsewhere the schema is open.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use cdk::{Error, Result};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::interpolation::{Template, Vars, to_mj};
use crate::manifest::{Build, Component, Node};
use crate::read::{self, Msg, Plan};
use crate::stream::StreamDef;
use crate::transform::Transformation;

/// The manifest with the `DynamicSchemaLoader`s of `streams` (all with `None`) inlined.
pub async fn resolve(
    manifest: &Value,
    config: &Value,
    base_dir: Option<PathBuf>,
    only: Option<&HashSet<String>>,
) -> Result<Value> {
    let mut out = manifest.clone();
    let Some(streams) = out.get_mut("streams").and_then(Value::as_array_mut) else {
        return Ok(out);
    };
    let b = Build::new(config, base_dir, crate::source::DEFAULT_CONCURRENCY);
    for (i, stream) in streams.iter_mut().enumerate() {
        let name = stream
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let dynamic = stream
            .get("schema_loader")
            .and_then(|l| l.get("type"))
            .and_then(Value::as_str)
            == Some("DynamicSchemaLoader");
        if !dynamic || only.is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let mut params = stream
            .get("$parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(p) = stream["schema_loader"]
            .get("$parameters")
            .and_then(Value::as_object)
        {
            params.extend(p.clone());
        }
        let loader = stream["schema_loader"].clone();
        let node = Node {
            value: &loader,
            path: format!("/streams/{i}/schema_loader"),
            params,
        };
        let schema = load(node, &b, &name).await?;
        stream["schema_loader"] = json!({"type": "InlineSchemaLoader", "schema": schema});
    }
    Ok(out)
}

async fn load(node: Node<'_>, b: &Build, stream: &str) -> Result<Value> {
    let mut c = node.component(Some("DynamicSchemaLoader"))?;
    let reader = Arc::new(StreamDef::of_retriever(&mut c, b, stream)?);
    let filter = match c.child("schema_filter") {
        Some(n) => {
            let mut f = n.component(Some("RecordFilter"))?;
            let t = f.opt_template(b, "condition")?;
            f.finish()?;
            t
        }
        None => None,
    };
    let transformations = c
        .children("schema_transformations")?
        .into_iter()
        .map(|n| Transformation::decode(n, b))
        .collect::<Result<Vec<_>>>()?;
    let ident = Identifier::decode(c.required_child("schema_type_identifier")?, b)?;
    c.finish()?;
    let record = first_record(reader).await?;
    let raw = match &record {
        Some(r) => lookup(r, &ident.schema_pointer)
            .cloned()
            .unwrap_or(Value::Null),
        None => Value::Array(Vec::new()),
    };
    let Value::Array(definitions) = raw else {
        return Err(Error::config(format!(
            "DynamicSchemaLoader of stream '{stream}': no list of property definitions at schema_pointer {:?}",
            ident.schema_pointer
        )));
    };
    let mut properties = Map::new();
    for d in &definitions {
        let key = match lookup(d, &ident.key_pointer) {
            Some(Value::String(k)) => k.clone(),
            other => {
                return Err(Error::config(format!(
                    "Expected key to be a string. Got {}",
                    other.cloned().unwrap_or(Value::Null)
                )));
            }
        };
        properties.insert(key, ident.field_type(d)?);
    }
    if let Some(f) = filter {
        let mut kept = Map::new();
        for (k, v) in properties {
            let mut item = json!({ k.clone(): v.clone() });
            if f.eval_bool_with_record(&mut item, &Vars::new())? {
                kept.insert(k, v);
            }
        }
        properties = kept;
    }
    let mut properties = Value::Object(properties);
    for t in &transformations {
        t.apply(&mut properties, &Vars::new())?;
    }
    Ok(json!({
        "$schema": "https://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": true,
        "properties": properties,
    }))
}

/// The first record the retriever reads.
async fn first_record(stream: Arc<StreamDef>) -> Result<Option<Value>> {
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
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Page { records, .. } => {
                if let Some(r) = records.into_values()?.into_iter().next() {
                    return Ok(Some(r));
                }
            }
            Msg::Failed(e) => return Err(e),
            _ => {}
        }
    }
    Ok(None)
}

/// `SchemaTypeIdentifier`.
struct Identifier {
    schema_pointer: Vec<String>,
    key_pointer: Vec<String>,
    type_pointer: Option<Vec<String>>,
    mapping: Vec<(Value, Value, Option<Template>)>,
}

fn pointer(c: &mut Component<'_>, b: &Build, key: &str) -> Result<Option<Vec<String>>> {
    let Some(list) = c.string_list(key)? else {
        return Ok(None);
    };
    list.iter()
        .map(|p| {
            Ok(c.template_of(b, key, p)?
                .eval_str(&Vars::new())?
                .unwrap_or_default())
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

impl Identifier {
    fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("SchemaTypeIdentifier"))?;
        let schema_pointer = pointer(&mut c, b, "schema_pointer")?.unwrap_or_default();
        let key_pointer = pointer(&mut c, b, "key_pointer")?
            .ok_or_else(|| c.error("'key_pointer' is required"))?;
        let type_pointer = pointer(&mut c, b, "type_pointer")?.filter(|p| !p.is_empty());
        let mut mapping = Vec::new();
        for n in c.children("types_mapping")? {
            let mut m = n.component(Some("TypesMap"))?;
            let target = m.required("target_type")?;
            let current = m.required("current_type")?;
            let condition = m.opt_template(b, "condition")?;
            m.finish()?;
            mapping.push((target, current, condition));
        }
        c.finish()?;
        Ok(Self {
            schema_pointer,
            key_pointer,
            type_pointer,
            mapping,
        })
    }

    /// The JSON schema of one property definition.
    fn field_type(&self, definition: &Value) -> Result<Value> {
        let raw = match &self.type_pointer {
            Some(p) => lookup(definition, p)
                .cloned()
                .unwrap_or_else(|| json!("string")),
            None => json!("string"),
        };
        let mut mapped = raw.clone();
        for (target, current, condition) in &self.mapping {
            let holds = match condition {
                Some(t) => t.eval_bool(&Vars::new().with("raw_schema", to_mj(definition)))?,
                None => true,
            };
            if raw == *current && holds {
                mapped = target.clone();
                break;
            }
        }
        match &mapped {
            Value::Array(types) if types.len() == 2 && types.iter().all(Value::is_string) => {
                Ok(json!({"oneOf": [airbyte_type(&types[0])?, airbyte_type(&types[1])?]}))
            }
            Value::String(_) => airbyte_type(&mapped),
            Value::Object(_) => complex(&mapped),
            other => Err(Error::config(format!(
                "Invalid data type. Available string or two items list of string. Got {other}."
            ))),
        }
    }
}

/// A `ComplexFieldType`: `field_type`, with `items` for an array.
fn complex(t: &Value) -> Result<Value> {
    let field_type = t.get("field_type").cloned().unwrap_or(Value::Null);
    let mut out = airbyte_type(&field_type)?;
    match t.get("items") {
        None | Some(Value::Null) => {}
        Some(items) => {
            if field_type != "array" {
                return Err(Error::config(
                    "'items' can only be used when 'field_type' is an array.",
                ));
            }
            out["items"] = match items {
                Value::String(_) => airbyte_type(items)?,
                other => complex(other)?,
            };
        }
    }
    Ok(out)
}

/// airbyte-cdk's `AIRBYTE_DATA_TYPES`.
fn airbyte_type(t: &Value) -> Result<Value> {
    let nullable = |ty: &str| json!({"type": ["null", ty]});
    Ok(match t.as_str().unwrap_or_default() {
        "string" => nullable("string"),
        "boolean" => nullable("boolean"),
        "integer" => nullable("integer"),
        "number" => nullable("number"),
        "array" => nullable("array"),
        "object" => nullable("object"),
        "date" => json!({"type": ["null", "string"], "format": "date"}),
        "timestamp_without_timezone" => {
            json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"})
        }
        "timestamp_with_timezone" => json!({"type": ["null", "string"], "format": "date-time"}),
        "time_without_timezone" => {
            json!({"type": ["null", "string"], "format": "time", "airbyte_type": "time_without_timezone"})
        }
        "time_with_timezone" => {
            json!({"type": ["null", "string"], "format": "time", "airbyte_type": "time_with_timezone"})
        }
        _ => {
            return Err(Error::config(format!(
                "Invalid Airbyte data type: {}",
                crate::interpolation::scalar_text(t)
            )));
        }
    })
}

/// dpath's `get` on a plain path (the value itself for an empty one).
fn lookup<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, k| match cur {
        Value::Object(m) => m.get(k),
        Value::Array(a) => a.get(k.parse::<usize>().ok()?),
        _ => None,
    })
}
