//! The shared acceptance suite against the generator.

use cdk::testing::acceptance::SourceSuite;

use super::{BIN, fixture};

#[test]
fn passes_the_acceptance_suite() {
    let report = SourceSuite {
        bin: BIN.into(),
        config: fixture("config.json"),
        invalid_config: fixture("invalid_config.json"),
        catalog: fixture("configured_catalog.json"),
        future_state: Some(fixture("abnormal_state.json")),
        ..SourceSuite::default()
    }
    .run();
    println!("{}", report.table());
    report.assert_all_passed();
    // Nothing this connector supports is skipped.
    let skipped: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| matches!(c.verdict, cdk::testing::acceptance::Verdict::Skip(_)))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(skipped, ["bad catalog: unsupported sync mode"]);
}
