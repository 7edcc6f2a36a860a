//! Writing through an SSH tunnel (Airbyte's `tunnel_method`) on a throwaway sshd, with
//! password auth.

use cdk::testing::Run;
use cdk::testing::sshd::TestSshd;
use serde_json::json;

use super::*;

#[tokio::test]
async fn writes_through_the_tunnel() {
    let sshd = TestSshd::start();
    let (db, mut config) = database("tunnel").await;
    config["tunnel_method"] = sshd.password_auth_config();
    let out = Run::new(BIN).check(&config);
    out.assert_success().assert_protocol();
    assert_eq!(
        serde_json::to_value(out.connection_status().status).unwrap(),
        json!("SUCCEEDED"),
        "{}",
        out.describe()
    );

    let schema = json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "seq": {"type": "integer"}}});
    let mut lines: Vec<String> = (1..=100)
        .map(|i| record("people", json!({"id": i, "name": "via tunnel", "seq": 1})))
        .collect();
    lines.push(state("people", 100));
    let out = Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &catalog("people", schema, "append", 1, 0));
    out.assert_success().assert_protocol();
    assert_eq!(out.states().len(), 1, "the state is echoed once written");
    let rows = user_fields(&rows(&db, "public", "people", "id").await);
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[0], json!({"id": 1, "name": "via tunnel", "seq": 1}));
    let log = sshd.log();
    assert!(log.contains("Accepted password for"), "{log}");
    assert!(
        log.contains(&format!("target {} port {}", db.host, db.port)),
        "{log}"
    );
}
