//! The spec: Airbyte's field names and shapes, snapshotted.

use cdk::testing::Run;

use crate::BIN;

#[test]
fn spec_matches_snapshot() {
    let run = Run::new(BIN).spec();
    run.assert_success().assert_protocol();
    let spec = &run.spec().connection_specification;
    for field in [
        "host",
        "port",
        "database",
        "schemas",
        "username",
        "password",
        "jdbc_url_params",
        "ssl_mode",
        "replication_method",
        "tunnel_method",
    ] {
        assert!(
            spec["properties"].get(field).is_some(),
            "spec lacks '{field}'"
        );
    }
    assert_eq!(spec["properties"]["password"]["airbyte_secret"], true);
    insta::assert_json_snapshot!(spec);
}
