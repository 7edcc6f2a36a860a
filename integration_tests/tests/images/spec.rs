//! Every image answers `spec` with exactly one valid SPEC (the one in its
//! `integration_tests/spec.json`) and carries what Airbyte reads: the labels of
//! `metadata.yaml`, `AIRBYTE_ENTRYPOINT` equal to the absolute entrypoint, user 1000.

use std::time::Instant;

use serde_json::Value;

use super::{CONNECTORS, docker_ok, image, metadata, root};

#[test]
fn every_image_answers_spec_and_carries_airbyte_metadata() {
    let base_size = size("debian:bookworm-slim");
    for dir in CONNECTORS {
        let tag = image(dir);
        let started = Instant::now();
        let stdout = docker_ok(&["run", "--rm", &tag, "spec"]);
        let elapsed = started.elapsed();
        let messages: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{tag}: {e}: {l}")))
            .collect();
        let specs: Vec<&Value> = messages.iter().filter(|m| m["type"] == "SPEC").collect();
        assert_eq!(specs.len(), 1, "{tag} spec: {stdout}");
        assert!(
            messages
                .iter()
                .all(|m| m["type"] == "SPEC" || m["type"] == "LOG"),
            "{tag} spec prints only the SPEC (and logs): {stdout}"
        );
        let expected = root().join(dir).join("integration_tests/spec.json");
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&expected).unwrap()).unwrap();
        assert_eq!(
            specs[0]["spec"], expected,
            "{tag}: the spec differs from {dir}/integration_tests/spec.json; if the change is \
             meant, regenerate it: `target/debug/<connector> spec | jq -S .spec > \
             {dir}/integration_tests/spec.json`"
        );
        if let Some(schema) = cdk::testing::protocol_schema() {
            schema
                .validate_message(specs[0])
                .unwrap_or_else(|e| panic!("{tag}: the SPEC is not valid: {e}"));
        }

        let config: Value = serde_json::from_str(&docker_ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config}}",
            &tag,
        ]))
        .unwrap();
        let (repository, version) = metadata(dir);
        assert_eq!(config["Labels"]["io.airbyte.name"], repository.as_str());
        assert_eq!(config["Labels"]["io.airbyte.version"], version.as_str());
        let env: Vec<&str> = config["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let entrypoint = config["Entrypoint"][0].as_str().unwrap();
        assert!(entrypoint.starts_with('/'), "{tag}: {entrypoint}");
        assert!(
            env.contains(&format!("AIRBYTE_ENTRYPOINT={entrypoint}").as_str()),
            "{tag}: {env:?}"
        );
        assert!(
            config["User"].as_str().unwrap().starts_with("1000"),
            "{tag}: {config}"
        );
        let uid = docker_ok(&["run", "--rm", "--entrypoint", "id", &tag, "-u"]);
        assert_eq!(uid.trim(), "1000");
        let version_line = docker_ok(&["run", "--rm", &tag, "--version"]);
        let name = dir.rsplit('/').next().unwrap();
        assert!(version_line.starts_with(name), "{tag}: {version_line}");
        eprintln!(
            "{tag}: adds {:.1} MB to the base image; docker run spec took {} ms",
            (size(&tag) - base_size) as f64 / 1e6,
            elapsed.as_millis()
        );
    }
}

/// An image's size in bytes.
fn size(tag: &str) -> i64 {
    docker_ok(&["image", "inspect", "--format", "{{.Size}}", tag])
        .trim()
        .parse()
        .unwrap()
}
