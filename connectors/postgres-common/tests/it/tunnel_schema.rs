//! The `tunnel_method` schema: Airbyte's variants, titles, descriptions and order.

use postgres_common::tunnel::TunnelMethod;

#[test]
fn tunnel_method_schema_matches_snapshot() {
    // As a connector's spec shows it: inlined, draft-07, descriptions unwrapped.
    let schema = cdk::spec::connection_specification::<TunnelMethod>();
    let variants = schema["oneOf"]
        .as_array()
        .expect("tunnel_method is a oneOf");
    let tags: Vec<&str> = variants
        .iter()
        .map(|v| v["properties"]["tunnel_method"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["NO_TUNNEL", "SSH_KEY_AUTH", "SSH_PASSWORD_AUTH"]);
    assert_eq!(variants[1]["properties"]["ssh_key"]["airbyte_secret"], true);
    assert_eq!(variants[1]["properties"]["ssh_key"]["multiline"], true);
    assert_eq!(
        variants[2]["properties"]["tunnel_user_password"]["airbyte_secret"],
        true
    );
    assert_eq!(variants[1]["properties"]["tunnel_port"]["default"], 22);
    insta::assert_json_snapshot!(schema);
}
