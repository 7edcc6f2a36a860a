//! Parity cases of the components source-rest-api gained after the first harness: each manifest
//! groups a few (see its header) and reads the endpoints of `components_api.rs`, through
//! `reads::parity_with` (records and final states identical, then each engine reading on from
//! the other's state).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::api::{self, API_KEY, Variant};
use crate::components_api;
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

/// incremental_dependency, global_substream_cursor, LegacyToPerPartitionStateMigration (from a
/// legacy state of `legacy_members`) and GroupingPartitionRouter.
#[tokio::test(flavor = "multi_thread")]
async fn substreams_dependency_global_cursor_legacy_state_grouping() {
    let legacy = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "legacy_members"},
        "stream_state": {"2": {"updated_at": "2024-03-03T00:00:00Z"}}}}]);
    let records = parity_with(
        "lineage.yaml",
        Variant::Standard,
        &[
            ("teams", Some("updated_at")),
            ("members", Some("updated_at")),
            ("notes", Some("updated_at")),
            ("notes_since_teams", Some("updated_at")),
            ("legacy_members", Some("updated_at")),
            ("batches", None),
            ("team_batches", None),
            ("batches_since", Some("updated_at")),
        ],
        json!({}),
        Some(legacy),
    )
    .await;
    // The migrated partition (`{"team_id": "2"}`) is kept in the state by both engines but
    // resumes no partition: the partitions read carry `parent_slice` beside `team_id`, so
    // `legacy_members` reads all of team 2 too, in airbyte-cdk as in ours.
    counts(
        &records,
        &[
            ("teams", 4),
            ("members", 12),
            ("notes", 8),
            ("notes_since_teams", 8),
            ("legacy_members", 12),
            ("batches", 5),
            ("team_batches", 4),
            ("batches_since", 5),
        ],
    );
}

/// IncrementingCountCursor, is_data_feed, clamping to days, weeks and months,
/// StateDelegatingStream.
#[tokio::test(flavor = "multi_thread")]
async fn cursors_counting_data_feed_clamping_state_delegating() {
    let records = parity_with(
        "cursors.yaml",
        Variant::Standard,
        &[
            ("ledger", Some("id")),
            ("feed", Some("updated_at")),
            ("daily", Some("updated_at")),
            ("weekly", Some("updated_at")),
            ("monthly", Some("updated_at")),
            ("catalogue", Some("updated_at")),
        ],
        json!({"first_id": 0}),
        None,
    )
    .await;
    // Six-hourly readings of June 2 to 7 (whole days clamped within 10:00 on June 1 and noon
    // on June 8), of the three weeks from Monday June 3 (the last week ends on the 23rd), and
    // of June (July ends after the end).
    counts(
        &records,
        &[
            ("ledger", 12),
            ("feed", 24),
            ("daily", 6 * 4),
            ("weekly", 3 * 7 * 4),
            ("monthly", 30 * 4),
            ("catalogue", 6),
        ],
    );
}

/// CSV, gzip, zip, XML, iterable and JSON-items decoders; schema_normalization Default;
/// record_expander.
#[tokio::test(flavor = "multi_thread")]
async fn decoders_normalization_record_expander() {
    let records = parity_with(
        "formats.yaml",
        Variant::Standard,
        &[
            ("csv_rows", None),
            ("latin_rows", None),
            ("gzip_rows", None),
            ("zip_rows", None),
            ("xml_entries", None),
            ("lines", None),
            ("report_rows", None),
            ("typed", None),
            ("typed_edges", None),
            ("basket_lines", None),
            ("basket_items", None),
        ],
        json!({}),
        None,
    )
    .await;
    // The blank line of the text is a record too (`{"record": ""}`), in both engines.
    counts(
        &records,
        &[
            ("csv_rows", 4),
            ("latin_rows", 2),
            ("gzip_rows", 4),
            ("zip_rows", 3),
            ("xml_entries", 2),
            ("lines", 4),
            ("report_rows", 2),
            ("typed", 2),
            ("typed_edges", 4),
            ("basket_lines", 3),
            ("basket_items", 2 + 1 + 1),
        ],
    );
}

/// JwtAuthenticator, SelectiveAuthenticator, api_budget, RESET_PAGINATION.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_selective_auth_api_budget_reset_pagination() {
    let records = parity_with(
        "access.yaml",
        Variant::Standard,
        &[
            ("signed", None),
            ("signed_b64", None),
            ("signed_rsa", None),
            ("selected", None),
            ("metered", None),
            ("expiring", None),
        ],
        json!({"credentials": {"auth_type": "key", "key": API_KEY},
               "private_key": components_api::rsa_key("pem")}),
        None,
    )
    .await;
    // Page 1 of `expiring` is read twice: once before the reset, once after.
    counts(
        &records,
        &[
            ("signed", 3),
            ("signed_b64", 3),
            ("signed_rsa", 2),
            ("selected", 2),
            ("metered", 5),
            ("expiring", 7),
        ],
    );
}

fn sheets() -> Value {
    json!({"sheets": [{"name": "gamma", "table": 3, "label": "g"}, {"name": "delta", "table": 1}]})
}

/// dynamic_streams from an HttpComponentsResolver (the API's tables) and a
/// ConfigComponentsResolver (the config's sheets).
#[tokio::test(flavor = "multi_thread")]
async fn dynamic_streams_from_the_api_and_the_config() {
    let sheets = sheets();
    let records = parity_with(
        "live/dynamic.yaml",
        Variant::Standard,
        &[
            ("alpha", None),
            ("beta", None),
            ("gamma", None),
            ("delta", None),
        ],
        sheets,
        None,
    )
    .await;
    counts(
        &records,
        &[("alpha", 2), ("beta", 3), ("gamma", 4), ("delta", 2)],
    );
    // The conditional mapping gave the labelled sheet its parameter, and only it.
    let labelled = |stream: &str| records[stream].iter().all(|r| r.contains(r#""label":"g""#));
    assert!(labelled("gamma") && !labelled("delta"), "{records:#?}");
}

/// The catalog `discover` gives for the dynamic streams (the corpus test cannot: it has no API).
#[tokio::test(flavor = "multi_thread")]
async fn dynamic_streams_discover_as_airbyte() {
    let venv = engines::venv();
    let server = api::start(Variant::Standard).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = sheets();
    config["base_url"] = json!(server.uri());
    let config = write_json(dir.path(), "config.json", &config);
    let manifest = engines::fixtures().join("manifests/live/dynamic.yaml");
    let catalogs = tokio::task::spawn_blocking(move || {
        [
            venv.join("bin/source-declarative-manifest"),
            engines::ours(),
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
    let [theirs, ours] = catalogs;
    let names: Vec<&String> = ours
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(names, ["alpha", "beta", "delta", "gamma"]);
    let mut out = Vec::new();
    diff("catalog", &ours, &theirs, &mut out);
    assert!(out.is_empty(), "the catalogs differ:\n{}", out.join("\n"));
    drop(server);
}
