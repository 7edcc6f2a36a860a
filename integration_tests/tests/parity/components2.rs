//! Parity cases of the components source-rest-api gained after `components.rs`: each manifest
//! groups a few (see its header) and reads the endpoints of `components2_api.rs`, through
//! `reads::parity_with`.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::json;

use crate::api::{self, Variant};
use crate::components2_api::key;
use crate::corpus::{by_name, plain};
use crate::engines::{self, diff, run, write_json};
use crate::reads::{count, parity_with};

/// Asserts the number of records of each stream.
fn counts(records: &BTreeMap<String, Vec<String>>, expected: &[(&str, usize)]) {
    for (stream, n) in expected {
        assert_eq!(
            count(records, stream),
            *n,
            "records of {stream}: {records:#?}"
        );
    }
}

/// KeysToSnakeCase, DpathFlattenFields, FlattenFields, CombinedExtractor, UnionPartitionRouter,
/// RequestBodyGraphQL, WaitTimeFromResponse, ConditionalStreams,
/// LegacySessionTokenAuthenticator, DynamicSchemaLoader, allow_catalog_defined_cursor_field,
/// stream_groups.
#[tokio::test(flavor = "multi_thread")]
async fn shapes_extractors_routers_bodies_waits_sessions_schemas() {
    let records = parity_with(
        "live/shapes.yaml",
        Variant::Standard,
        &[
            ("profiles", None),
            ("profiles_kept", None),
            ("metas", None),
            ("paged_mixed", None),
            ("mixed", None),
            ("first_found", None),
            ("repo_issues", None),
            ("gql", None),
            ("patient", None),
            ("extra", None),
            ("sessioned", None),
            ("described", None),
            ("touched", Some("touched_at")),
        ],
        json!({"owner": "acme", "extra": true, "user": "ada", "pass": "secret"}),
        None,
    )
    .await;
    // Repo b comes from both routers and is read once.
    counts(
        &records,
        &[
            ("profiles", 2),
            ("profiles_kept", 2),
            ("metas", 2),
            ("paged_mixed", 2),
            ("mixed", 3),
            ("first_found", 2),
            ("repo_issues", 3 * 2),
            ("gql", 2),
            ("patient", 3),
            ("extra", 1),
            ("sessioned", 2),
            ("described", 2),
            ("touched", 6),
        ],
    );
    // Keys snake-cased (`HTTPCode` is one word to airbyte-cdk's tokenizer: `httpcode`), `attrs`
    // flattened with its prefix, the rest flattened with dots (numbers as the harness compares
    // them, floats).
    let profile = &records["profiles"];
    let wanted = [
        r#""user_name":"a""#,
        r#""meta.httpcode":200.0"#,
        r#""attr_y":2.0"#,
        r#""tags.1":"q""#,
    ];
    assert!(
        wanted.iter().all(|w| profile.iter().any(|p| p.contains(w))),
        "{profile:#?}"
    );
}

/// JwtAuthenticator with ES256K, ES512 and a passphrase-protected RSA key; OAuth's
/// profile_assertion.
#[tokio::test(flavor = "multi_thread")]
async fn keys_ec_jwts_passphrase_profile_assertion() {
    let keys = json!({"k256": key("secp256k1.pem"), "p521": key("p521.pem"),
                      "rsa": key("rsa_encrypted.pem")});
    let records = parity_with(
        "keys.yaml",
        Variant::Standard,
        &[
            ("k256", None),
            ("p521", None),
            ("rsa", None),
            ("granted", None),
        ],
        json!({"keys": keys, "passphrase": "open-sesame", "assertion_key": "assertion-key"}),
        None,
    )
    .await;
    counts(
        &records,
        &[("k256", 2), ("p521", 1), ("rsa", 3), ("granted", 1)],
    );
}

/// RecordExpander's truncated_list_retriever, lazy_read_pointer, config_normalization_rules.
#[tokio::test(flavor = "multi_thread")]
async fn nested_truncated_lists_lazy_children_config_rules() {
    let records = parity_with(
        "nested.yaml",
        Variant::Standard,
        &[("order_lines", None), ("issues", None)],
        json!({"old_key": "migrated-key", "api_key": null, "filters": r#"{"status": "open"}"#}),
        None,
    )
    .await;
    // Order 1's two lines and order 4's one as embedded; orders 2 (three lines, two pages) and
    // 3 (one line) read again from their endpoint.
    counts(&records, &[("order_lines", 2 + 3 + 1 + 1), ("issues", 3)]);
}

/// The status `check` gives with `manifest` and `config` (the base URL added), from each engine
/// (ours, theirs), with the message.
async fn checks(manifest: String, config: serde_json::Value) -> [(String, String); 2] {
    let venv = engines::venv();
    let server = api::start(Variant::Standard).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config;
    config["base_url"] = json!(server.uri());
    let config = write_json(dir.path(), "config.json", &config);
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, manifest).expect("write the manifest");
    let out = tokio::task::spawn_blocking(move || {
        [
            engines::ours(),
            venv.join("bin/source-declarative-manifest"),
        ]
        .map(|program| {
            let mut cmd = Command::new(&program);
            cmd.arg("check").arg("--config").arg(&config);
            cmd.arg("--manifest-path").arg(&path);
            let msgs = run(cmd).unwrap_or_else(|e| panic!("{} check: {e}", program.display()));
            let status = msgs
                .iter()
                .find(|m| m["type"] == "CONNECTION_STATUS")
                .map(|m| m["connectionStatus"].clone())
                .expect("a connection status");
            (
                status["status"].as_str().unwrap_or_default().to_string(),
                status["message"].as_str().unwrap_or_default().to_string(),
            )
        })
    })
    .await
    .expect("the checks");
    drop(server);
    out
}

/// CheckDynamicStream: the first `stream_count` streams (here all dynamic: alpha and beta from
/// the API, then the config's sheets) are read; the fourth, `broken`, is refused by the API.
#[tokio::test(flavor = "multi_thread")]
async fn check_dynamic_stream_reads_the_first_streams() {
    let path = engines::fixtures().join("manifests/live/dynamic.yaml");
    let yaml = std::fs::read_to_string(&path).expect("the dynamic manifest");
    let config =
        json!({"sheets": [{"name": "gamma", "table": 3}, {"name": "broken", "table": 404}]});
    for (count, expected) in [(3, "SUCCEEDED"), (4, "FAILED")] {
        let check = format!("check:\n  type: CheckDynamicStream\n  stream_count: {count}\n");
        let manifest = yaml.replacen(
            "check:\n  type: CheckStream\n  stream_names: [alpha]\n",
            &check,
            1,
        );
        assert!(
            manifest.contains("CheckDynamicStream"),
            "the check was replaced"
        );
        let [ours, theirs] = checks(manifest, config.clone()).await;
        assert_eq!(
            ours.0, theirs.0,
            "stream_count {count}: ours {ours:?}, theirs {theirs:?}"
        );
        assert_eq!(ours.0, expected, "stream_count {count}: {ours:?}");
    }
}

/// The catalog of `live/shapes.yaml` (the DynamicSchemaLoader's schema read from the API, the
/// ConditionalStreams kept or dropped), from each engine (ours, theirs).
#[tokio::test(flavor = "multi_thread")]
async fn shapes_discover_as_airbyte() {
    let venv = engines::venv();
    let server = api::start(Variant::Standard).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = json!({"base_url": server.uri(), "token": "t", "start_date": "2024-01-01T00:00:00Z",
                        "owner": "acme", "extra": true, "user": "ada", "pass": "secret"});
    let config = write_json(dir.path(), "config.json", &config);
    let manifest = engines::fixtures().join("manifests/live/shapes.yaml");
    let catalogs = tokio::task::spawn_blocking(move || {
        [
            engines::ours(),
            venv.join("bin/source-declarative-manifest"),
        ]
        .map(|program| {
            let mut cmd = Command::new(&program);
            cmd.arg("discover").arg("--config").arg(&config);
            cmd.arg("--manifest-path").arg(&manifest);
            let msgs = run(cmd).unwrap_or_else(|e| panic!("{} discover: {e}", program.display()));
            let catalog = msgs
                .iter()
                .find(|m| m["type"] == "CATALOG")
                .map(|m| m["catalog"].clone())
                .expect("a catalog");
            serde_json::to_value(by_name(&plain(catalog))).expect("json")
        })
    })
    .await
    .expect("the discovers");
    drop(server);
    let [ours, theirs] = catalogs;
    assert!(
        ours.get("extra").is_some() && ours.get("hidden").is_none(),
        "{ours:#}"
    );
    let described = &ours["described"]["json_schema"]["properties"];
    assert_eq!(
        described["tags"]["items"],
        json!({"type": ["null", "string"]}),
        "{ours:#}"
    );
    let mut out = Vec::new();
    diff("catalog", &ours, &theirs, &mut out);
    assert!(out.is_empty(), "the catalogs differ:\n{}", out.join("\n"));
}
