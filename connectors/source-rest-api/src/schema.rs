//! Schema loaders: `InlineSchemaLoader` and `JsonFileSchemaLoader` (a file beside the manifest;
//! by default `schemas/<stream>.json`). A stream without a loader and without that file gets a
//! schema that accepts any object.

use cdk::{Error, Result};
use serde_json::Value;

use crate::interpolation::Vars;
use crate::manifest::{Build, Node};
use crate::stream::open_schema;

pub fn decode(node: Option<Node<'_>>, b: &Build, stream: &str) -> Result<Value> {
    let Some(node) = node else {
        if let Some(dir) = &b.base_dir {
            let path = dir.join("schemas").join(format!("{stream}.json"));
            if path.is_file() {
                return read(&path);
            }
        }
        return Ok(open_schema());
    };
    let mut c = node.component(Some("JsonFileSchemaLoader"))?;
    c.expect(&[
        "InlineSchemaLoader",
        "JsonFileSchemaLoader",
        "DynamicSchemaLoader",
    ])?;
    if c.type_name == "DynamicSchemaLoader" {
        // Resolved by `dynamic_schema::resolve` where the schema is needed; open elsewhere.
        return Ok(open_schema());
    }
    let schema = if c.type_name == "InlineSchemaLoader" {
        match c.get("schema") {
            None | Some(Value::Null) => open_schema(),
            Some(Value::Object(m)) if m.is_empty() => open_schema(),
            Some(v @ Value::Object(_)) => v,
            Some(other) => return Err(c.error(format!("schema must be a mapping, got {other}"))),
        }
    } else {
        let rel = match c.opt_template(b, "file_path")? {
            Some(t) => t.eval_str(&Vars::new())?.unwrap_or_default(),
            None => format!("schemas/{stream}.json"),
        };
        let base = b.base_dir.clone().unwrap_or_default();
        let path = base.join(rel.trim_start_matches("./"));
        read(&path).map_err(|e| c.error(e.message))?
    };
    c.finish()?;
    Ok(schema)
}

fn read(path: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read schema '{}': {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "schema '{}' is not valid JSON: {e}",
            path.display()
        ))
    })
}
