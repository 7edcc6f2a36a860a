//! Integration tests of {{name}}: the shared destination suite.

use std::path::PathBuf;

use cdk::testing::acceptance::{DestinationReader, DestinationSuite};
use serde_json::{Value, json};

struct Files(PathBuf);

#[cdk::async_trait]
impl DestinationReader for Files {
    async fn read(&self, stream: &str) -> Result<Vec<Value>, String> {
        let text = std::fs::read_to_string(self.0.join(format!("{stream}.jsonl"))).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).map_err(|e| e.to_string())).collect()
    }
}

#[tokio::test]
async fn passes_the_destination_suite() {
    let dir = tempfile::tempdir().unwrap();
    DestinationSuite {
        bin: env!("CARGO_BIN_EXE_{{name}}").into(),
        config: json!({"directory": dir.path()}),
        ..DestinationSuite::default()
    }
    .run(&Files(dir.path().into()))
    .await
    .assert_all_passed();
}
