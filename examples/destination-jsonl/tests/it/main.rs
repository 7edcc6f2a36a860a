//! Integration tests of the JSON-lines destination: the real binary, the acceptance suite,
//! and the loader's guarantees seen from outside.

mod acceptance;
mod write;

pub const BIN: &str = env!("CARGO_BIN_EXE_destination-jsonl");

/// Rows stored for `stream` under `dir` (the `_airbyte_data` of each line).
pub fn stored(dir: &std::path::Path, stream: &str) -> Result<Vec<serde_json::Value>, String> {
    let path = dir.join(format!("_airbyte_raw_{stream}.jsonl"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
            Ok(v["_airbyte_data"].clone())
        })
        .collect()
}
