//! `cdk test` and `cdk sync` from the command line, against the example connectors and a
//! deliberately broken one.

use std::path::{Path, PathBuf};
use std::process::Command;

const CDK: &str = env!("CARGO_BIN_EXE_cdk");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example binaries are built beside this test's target dir by the workspace build.
fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.ancestors().nth(2).unwrap().join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run the tests for the whole workspace (cargo test --workspace)",
        bin.display()
    );
    bin
}

#[test]
fn cdk_test_passes_the_generator() {
    let out = Command::new(CDK)
        .arg("test")
        .arg(example_bin("source-generator"))
        .arg(examples().join("source-generator/integration_tests"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("incremental: resume from middle     PASS"),
        "{table}"
    );
    assert!(!table.contains("FAIL"), "{table}");
}

#[test]
fn cdk_test_lists_the_failures_of_a_broken_connector() {
    let dir = tempfile::tempdir().unwrap();
    // A connector that gets most things wrong: a secret-looking field not marked secret,
    // a crash on check, records of the wrong type and no state.
    let script = dir.path().join("source-broken");
    std::fs::write(
        &script,
        r#"#!/bin/sh
case "$1" in
  spec) echo '{"type":"SPEC","spec":{"connectionSpecification":{"type":"object","properties":{"password":{"type":"string"}}}}}' ;;
  check) echo 'Traceback: it broke' ; exit 3 ;;
  discover) echo '{"type":"CATALOG","catalog":{"streams":[{"name":"s","json_schema":{"type":"object","properties":{"id":{"type":"integer"}}},"supported_sync_modes":["full_refresh"]}]}}' ;;
  read) echo '{"type":"RECORD","record":{"stream":"s","data":{"id":"one"},"emitted_at":1}}' ;;
esac
"#,
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let fixtures = dir.path().join("integration_tests");
    std::fs::create_dir(&fixtures).unwrap();
    std::fs::write(fixtures.join("config.json"), "{}").unwrap();
    std::fs::write(fixtures.join("invalid_config.json"), "{\"x\": 1}").unwrap();
    std::fs::write(
        fixtures.join("configured_catalog.json"),
        r#"{"streams":[{"stream":{"name":"s","json_schema":{},"supported_sync_modes":["full_refresh"]},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#,
    )
    .unwrap();
    let out = Command::new(CDK)
        .arg("test")
        .arg(&script)
        .arg(&fixtures)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{table}");
    for expected in [
        "spec                                FAIL    #/properties/password: looks like a secret",
        "check: valid config                 FAIL",
        "basic read                          FAIL",
        "bad catalog: unknown stream         FAIL",
    ] {
        assert!(
            table.contains(expected),
            "expected {expected:?} in\n{table}"
        );
    }
    assert!(
        table.contains("does not match its schema") && table.contains("no STATE message"),
        "{table}"
    );
}

#[test]
fn cdk_sync_keeps_state_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(CDK)
            .args(["sync", "--source"])
            .arg(example_bin("source-generator"))
            .arg("--destination")
            .arg(example_bin("destination-jsonl"))
            .arg("--output")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    let file = dir.path().join("_airbyte_raw_users.jsonl");
    assert_eq!(lines(&file), 1000);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(
        state[0]["stream"]["stream_state"],
        serde_json::json!({"id": 1000})
    );
    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        second.status.success() && stderr.contains("resuming from"),
        "{stderr}"
    );
    assert_eq!(
        lines(&file),
        1000,
        "the second, incremental run adds nothing"
    );
}

#[test]
fn cdk_sync_starts_a_generation_per_full_refresh_and_keeps_it_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        r#"{"streams":[{"stream":{"name":"users","json_schema":{},"supported_sync_modes":["full_refresh","incremental"]},"sync_mode":"full_refresh","destination_sync_mode":"overwrite"}]}"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = || {
        let o = Command::new(CDK)
            .args(["sync", "--source"])
            .arg(example_bin("source-generator"))
            .arg("--destination")
            .arg(example_bin("destination-jsonl"))
            .arg("--catalog")
            .arg(&catalog)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ids: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("generations.json")).unwrap()).unwrap();
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap();
        (ids, state)
    };
    let (ids, state) = run();
    assert_eq!(
        ids,
        serde_json::json!({"sync_id": 1, "streams": {"users": 1}})
    );
    assert_eq!(
        state,
        serde_json::json!([]),
        "a completed full refresh keeps no state"
    );
    let (ids, _) = run();
    assert_eq!(
        ids,
        serde_json::json!({"sync_id": 2, "streams": {"users": 2}})
    );

    // A state left by a sync that failed part way: the next run resumes that generation.
    std::fs::write(
        out.join("state.json"),
        r#"[{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"id":500}}}]"#,
    )
    .unwrap();
    let (ids, state) = run();
    assert_eq!(
        ids,
        serde_json::json!({"sync_id": 3, "streams": {"users": 2}})
    );
    assert_eq!(state, serde_json::json!([]));
}
