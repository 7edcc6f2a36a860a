//! Integration tests of {{name}}: the real binary through the shared acceptance suite.

use cdk::testing::acceptance::SourceSuite;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/integration_tests/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

#[test]
fn passes_the_acceptance_suite() {
    SourceSuite {
        bin: env!("CARGO_BIN_EXE_{{name}}").into(),
        config: fixture("config.json"),
        invalid_config: fixture("invalid_config.json"),
        catalog: fixture("configured_catalog.json"),
        future_state: Some(fixture("abnormal_state.json")),
        ..SourceSuite::default()
    }
    .run()
    .assert_all_passed();
}
