//! The source checks, each a plain function over captured output, so that each can be shown
//! to fail: spec, check, discover and failure checks here, the basic read's in `read.rs`, the
//! checks over pairs of reads in `incremental.rs`.

mod incremental;
mod read;
mod values;

pub use incremental::{no_records, resume_from_middle, same_records, second_read};
pub use read::basic_read;

use serde_json::Value;

use crate::protocol::*;
use crate::testing::acceptance::Verdict;
use crate::testing::capture::Captured;
use values::schema_has_path;

/// One SPEC whose connectionSpecification is a sound spec and accepts `config`.
pub fn spec(c: &Captured, config: &Value) -> Verdict {
    let mut problems = common(c, true);
    let specs: Vec<&ConnectorSpecification> = c
        .messages
        .iter()
        .filter_map(|m| match m {
            AirbyteMessage::Spec { spec } => Some(spec),
            _ => None,
        })
        .collect();
    if specs.len() != 1 {
        problems.push(format!(
            "expected exactly one SPEC message, got {}",
            specs.len()
        ));
        return Verdict::from_problems(problems);
    }
    let schema = &specs[0].connection_specification;
    problems.extend(crate::testing::acceptance::spec_problems(schema));
    if let Ok(v) = jsonschema::draft7::new(schema) {
        problems.extend(v.iter_errors(config).map(|e| {
            format!(
                "the valid config does not match the spec: {}: {e}",
                e.instance_path()
            )
        }));
    }
    Verdict::from_problems(problems)
}

/// Exactly one CONNECTION_STATUS with `expected`, exit 0.
pub fn connection_status(c: &Captured, expected: ConnectionStatus) -> Verdict {
    let mut problems = common(c, true);
    let statuses: Vec<&AirbyteConnectionStatus> = c
        .messages
        .iter()
        .filter_map(|m| match m {
            AirbyteMessage::ConnectionStatus { connection_status } => Some(connection_status),
            _ => None,
        })
        .collect();
    match statuses.as_slice() {
        [s] if s.status == expected => {}
        [s] => problems.push(format!(
            "expected {expected:?}, got {:?}: {:?}",
            s.status, s.message
        )),
        other => problems.push(format!(
            "expected one CONNECTION_STATUS, got {}",
            other.len()
        )),
    }
    Verdict::from_problems(problems)
}

/// Exactly one CATALOG of object schemas with sync modes, and keys that exist.
pub fn discover(c: &Captured) -> Verdict {
    let mut problems = common(c, true);
    let catalogs: Vec<&AirbyteCatalog> = c
        .messages
        .iter()
        .filter_map(|m| match m {
            AirbyteMessage::Catalog { catalog } => Some(catalog),
            _ => None,
        })
        .collect();
    let [catalog] = catalogs.as_slice() else {
        problems.push(format!(
            "expected exactly one CATALOG, got {}",
            catalogs.len()
        ));
        return Verdict::from_problems(problems);
    };
    if catalog.streams.is_empty() {
        problems.push("the catalog has no streams".into());
    }
    for s in &catalog.streams {
        let name = s.descriptor();
        if s.json_schema.get("type").and_then(Value::as_str) != Some("object") {
            problems.push(format!(
                "stream '{name}': json_schema is not `type: object`"
            ));
        }
        if s.supported_sync_modes.is_empty() {
            problems.push(format!("stream '{name}': no supported_sync_modes"));
        }
        if s.json_schema.to_string().contains("\"$ref\"") {
            problems.push(format!("stream '{name}': unresolved $ref in json_schema"));
        }
        let keys = s
            .source_defined_primary_key
            .iter()
            .flatten()
            .chain(s.default_cursor_field.iter());
        for path in keys {
            if !schema_has_path(&s.json_schema, path) {
                problems.push(format!(
                    "stream '{name}': key {path:?} is not in the schema"
                ));
            }
        }
    }
    Verdict::from_problems(problems)
}

/// The read failed the protocol's way: a TRACE ERROR and a non-zero exit, no crash.
pub fn fails_with_trace(c: &Captured) -> Verdict {
    let mut problems = common(c, false);
    if c.exit_code == Some(0) {
        problems.push("exit code 0".into());
    }
    if c.trace_errors().is_empty() {
        problems.push("no TRACE ERROR message".into());
    }
    Verdict::from_problems(problems)
}

/// Problems every run shares: non-protocol stdout lines, a crash, a failed exit.
pub(super) fn common(c: &Captured, expect_success: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !c.bad_lines.is_empty() {
        problems.push(format!(
            "{} stdout lines are not protocol messages, e.g. {:?}",
            c.bad_lines.len(),
            c.bad_lines[0]
        ));
    }
    if let Some(schema) = crate::testing::protocol_schema()
        && let Some((line, e)) = c
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| schema.validate_message(&v).err().map(|e| (v, e)))
    {
        problems.push(format!(
            "a message does not match the protocol: {e}: {line}"
        ));
    }
    match c.exit_code {
        None => problems.push("the connector was killed by a signal (crash)".into()),
        Some(101) => problems.push("the connector panicked (exit code 101)".into()),
        Some(code) if expect_success && code != 0 => problems.push(format!("exit code {code}")),
        _ => {}
    }
    if expect_success && let Some(e) = c.trace_errors().first() {
        problems.push(format!("TRACE ERROR: {}", e.message));
    }
    problems
}
