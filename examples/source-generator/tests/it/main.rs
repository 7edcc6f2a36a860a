//! Integration tests of the generator source: the real binary for every command.

mod acceptance;
mod commands;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_source-generator");

/// A fixture from `integration_tests/`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/integration_tests/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
