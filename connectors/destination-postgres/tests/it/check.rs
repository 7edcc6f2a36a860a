//! `check` and connection failures: what the user must fix is FAILED at `check`; an
//! unreachable server during `write` is transient.

use cdk::protocol::{ConnectionStatus, FailureType};
use cdk::testing::Run;
use serde_json::json;

use super::*;

#[tokio::test]
async fn connection_failures_at_check_and_during_write() {
    let (_db, config) = database("check_fail").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (change, why) in [
        (json!({"port": port}), format!("'127.0.0.1:{port}/")),
        (
            json!({"password": "Wrong-Pass-9876"}),
            "password authentication failed".to_string(),
        ),
        (
            json!({"jdbc_url_params": "connectTimeout=soon"}),
            "'connectTimeout' must be a number".to_string(),
        ),
    ] {
        let mut c = config.clone();
        c.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let out = Run::new(BIN).check(&c);
        out.assert_success().assert_protocol();
        let status = out.connection_status();
        assert_eq!(status.status, ConnectionStatus::Failed, "{why}");
        let message = status.message.clone().unwrap_or_default();
        assert!(message.contains(&why), "{why}: {message}");
    }

    let mut refused = config.clone();
    refused["port"] = json!(port);
    let out = Run::new(BIN)
        .stdin_lines([record("t", json!({"id": 1, "name": "x", "seq": 1}))])
        .write(&refused, &catalog("t", simple_schema(), "append", 1, 0));
    out.assert_failure();
    let errors = out.trace_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.failure_type == Some(FailureType::TransientError)
                && e.message.contains("gave up after 3 attempts")),
        "{}",
        out.describe()
    );
}
