//! The spec: a snapshot, and the acceptance rules for specs.

use cdk::testing::Run;
use cdk::testing::acceptance::spec_problems;

use super::BIN;

#[test]
fn spec_snapshot_and_rules() {
    let out = Run::new(BIN).spec();
    out.assert_success().assert_protocol();
    let spec = out.spec();
    let value = serde_json::to_value(spec).unwrap();
    insta::assert_json_snapshot!(value);
    let problems = spec_problems(&spec.connection_specification);
    assert!(problems.is_empty(), "{problems:#?}");
    let text = value.to_string();
    for field in [
        "s3_bucket_name",
        "s3_path_format",
        "file_name_pattern",
        "compression_codec",
    ] {
        assert!(text.contains(field), "{field} missing from the spec");
    }
}
