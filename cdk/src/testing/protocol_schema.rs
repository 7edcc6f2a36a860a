//! Validating what we write against the protocol definition (`airbyte_protocol.yaml`).
//!
//! The definition is looked up at `CDK_PROTOCOL_SCHEMA`, else in `shared/reference/` beside or
//! above the workspace. When it is nowhere, validation says once, plainly, that it was skipped.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The Airbyte protocol's JSON Schema, compiled: validates messages and configured catalogs.
pub struct ProtocolSchema {
    message: jsonschema::Validator,
    catalog: jsonschema::Validator,
}

impl ProtocolSchema {
    /// Validates one message line's JSON; the error lists every violation.
    pub fn validate_message(&self, message: &Value) -> Result<(), String> {
        collect(&self.message, message)
    }

    /// Validates a configured catalog; the error lists every violation.
    pub fn validate_configured_catalog(&self, catalog: &Value) -> Result<(), String> {
        collect(&self.catalog, catalog)
    }
}

fn collect(v: &jsonschema::Validator, value: &Value) -> Result<(), String> {
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The protocol schema, or `None` (with a note on stderr) when the definition is not found.
pub fn protocol_schema() -> Option<&'static ProtocolSchema> {
    static SCHEMA: OnceLock<Option<ProtocolSchema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let Some(path) = find() else {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED protocol validation: airbyte_protocol.yaml not found (set \
                     CDK_PROTOCOL_SCHEMA or place it in shared/reference/ beside the workspace)"
                );
                return None;
            };
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let mut doc: Value = serde_yaml::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            let definitions = doc
                .get_mut("definitions")
                .map(Value::take)
                .unwrap_or_default();
            let build = |root: &str| {
                let schema =
                    json!({"$ref": format!("#/definitions/{root}"), "definitions": definitions});
                jsonschema::draft7::new(&schema)
                    .unwrap_or_else(|e| panic!("the protocol schema does not compile: {e}"))
            };
            Some(ProtocolSchema {
                message: build("AirbyteMessage"),
                catalog: build("ConfiguredAirbyteCatalog"),
            })
        })
        .as_ref()
}

fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CDK_PROTOCOL_SCHEMA") {
        return Some(PathBuf::from(p));
    }
    let start = std::env::current_dir().ok()?;
    start
        .ancestors()
        .flat_map(|dir| {
            [
                dir.join("shared/reference/airbyte_protocol.yaml"),
                dir.join("../shared/reference/airbyte_protocol.yaml"),
            ]
        })
        .find(|p| p.is_file())
}
