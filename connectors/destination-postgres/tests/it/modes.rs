//! Sync modes through the real binary: overwrite that keeps the old table on failure and
//! resumes after a crash, dedup that survives a crash without duplicates, CDC deletes, and the
//! modes that are refused.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdk::testing::Run;
use serde_json::{Value, json};

use super::*;

/// The names of the `people` table's indexes, sorted.
async fn people_indexes(db: &TestDatabase) -> Vec<String> {
    let client = db.connect().await;
    let rows = client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' \
             AND tablename = 'people' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Runs a write, feeds `lines` without closing stdin, waits until `states` states were echoed,
/// then kills the process (as a crashed or cancelled sync).
fn write_then_kill(config: &Value, catalog: &Value, lines: &[String], states: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, cat) = (
        dir.path().join("config.json"),
        dir.path().join("catalog.json"),
    );
    std::fs::write(&cfg, config.to_string()).unwrap();
    std::fs::write(&cat, catalog.to_string()).unwrap();
    let mut child = Command::new(BIN)
        .arg("write")
        .arg("--config")
        .arg(&cfg)
        .arg("--catalog")
        .arg(&cat)
        .env("CDK_COMMIT_INTERVAL_MS", "50")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    let mut seen = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        if line.contains("\"type\":\"STATE\"") {
            seen += 1;
            if seen == states {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no state echoed"
        );
    }
    assert_eq!(
        seen, states,
        "the destination stopped before echoing the states"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
}

fn people(range: std::ops::RangeInclusive<i64>, name: &str, seq: i64) -> Vec<String> {
    range
        .map(|i| {
            record_at(
                "people",
                json!({"id": i, "name": name, "seq": seq}),
                1_700_000_000_000 + seq,
            )
        })
        .collect()
}

#[tokio::test]
async fn overwrite_keeps_the_old_table_until_success_and_resumes_after_a_crash() {
    let (db, config) = database("overwrite").await;
    let schema = simple_schema();
    let generation = |g: i64| catalog("people", schema.clone(), "overwrite", g, g);

    let mut lines = people(1..=3, "old", 1);
    lines.push(state("people", 1));
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &generation(1))
        .assert_success();
    assert_eq!(rows(&db, "public", "people", "id").await.len(), 3);

    // Generation 2 crashes after its first state: readers still see generation 1.
    let mut lines = people(1..=50, "new", 2);
    lines.push(state("people", 50));
    lines.extend(people(51..=60, "lost", 2));
    write_then_kill(&config, &generation(2), &lines, 1);
    let now = user_fields(&rows(&db, "public", "people", "id").await);
    assert_eq!(now.len(), 3, "the previous table is untouched: {now:?}");
    assert!(now.iter().all(|r| r["name"] == "old"));

    // The retry of generation 2 resends what came after the last state and completes.
    let mut lines = people(51..=80, "new", 2);
    lines.push(state("people", 80));
    let out = Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &generation(2));
    out.assert_success();
    let now = rows(&db, "public", "people", "id").await;
    let mut ids: Vec<i64> = now.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids, (1..=80).collect::<Vec<_>>(), "nothing lost");
    // At least once: only records sent after the last echoed state may appear twice.
    let twice: Vec<i64> = now
        .windows(2)
        .filter(|w| w[0]["id"] == w[1]["id"])
        .map(|w| w[0]["id"].as_i64().unwrap())
        .collect();
    assert!(twice.iter().all(|i| (51..=60).contains(i)), "{twice:?}");
    assert!(now.iter().all(|r| r["_airbyte_generation_id"] == 2));
    let generation_2 = now.len();

    // Generation 3 fails after committing part of its load: generation 2 stays.
    let mut lines = people(1..=5, "gen3", 3);
    lines.push(state("people", 5));
    lines.push(record("not_in_catalog", json!({"id": 1})));
    let out = Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &generation(3));
    out.assert_failure();
    assert!(
        out.trace_errors()[0]
            .message
            .contains("not in the configured catalog"),
        "{}",
        out.describe()
    );
    assert_eq!(
        rows(&db, "public", "people", "id").await.len(),
        generation_2
    );

    // Generation 4 does not pick up generation 3's leftovers.
    let mut lines = people(1..=2, "gen4", 4);
    lines.push(state("people", 2));
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &generation(4))
        .assert_success();
    let now = user_fields(&rows(&db, "public", "people", "id").await);
    assert_eq!(
        now,
        [
            json!({"id": 1, "name": "gen4", "seq": 4}),
            json!({"id": 2, "name": "gen4", "seq": 4})
        ]
    );
    // Its indexes moved with it and keep the final table's names.
    assert!(
        people_indexes(&db)
            .await
            .contains(&"people_extracted_at".to_string())
    );
    let client = db.connect().await;
    let default: Option<String> = client
        .query_one(
            "SELECT column_default::text FROM information_schema.columns \
             WHERE table_name = 'people' AND column_name = '_airbyte_meta'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        default, None,
        "the swapped-in table has no load-time default"
    );
}

#[tokio::test]
async fn dedup_survives_a_crash_without_duplicate_keys() {
    let (db, config) = database("dedup_crash").await;
    let cat = catalog("people", simple_schema(), "append_dedup", 1, 0);
    let mut lines = people(1..=100, "v1", 1);
    lines.push(state("people", 100));
    lines.extend(people(101..=150, "v1", 1));
    write_then_kill(&config, &cat, &lines, 1);
    // Everything before the echoed state is stored (records read with it may be too).
    let stored = rows(&db, "public", "people", "id").await.len();
    assert!((100..=150).contains(&stored), "{stored}");

    // The retry resends from the last state (and, as sources do, some records twice).
    let mut lines = people(90..=200, "v1", 1);
    lines.extend(people(1..=10, "v2", 2));
    lines.push(state("people", 200));
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &cat)
        .assert_success();
    let now = user_fields(&rows(&db, "public", "people", "id").await);
    let ids: Vec<i64> = now.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    assert!(now[..10].iter().all(|r| r["name"] == "v2" && r["seq"] == 2));
    assert!(now[10..].iter().all(|r| r["name"] == "v1"));

    // An older version of a key arriving later does not win.
    let late = vec![record_at(
        "people",
        json!({"id": 1, "name": "stale", "seq": 1}),
        1_800_000_000_000,
    )];
    Run::new(BIN)
        .stdin_lines(&late)
        .write(&config, &cat)
        .assert_success();
    let now = user_fields(&rows(&db, "public", "people", "id").await);
    assert_eq!(now[0], json!({"id": 1, "name": "v2", "seq": 2}));
}

#[tokio::test]
async fn dedup_truncate_replaces_the_table_with_the_latest_rows() {
    let (db, config) = database("dedup_truncate").await;
    let mut lines = people(1..=3, "old", 1);
    lines.push(state("people", 1));
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(
            &config,
            &catalog("people", simple_schema(), "append_dedup", 1, 1),
        )
        .assert_success();
    let mut lines = people(2..=2, "a", 2);
    lines.extend(people(2..=2, "b", 3));
    lines.extend(people(9..=9, "c", 1));
    lines.push(state("people", 1));
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(
            &config,
            &catalog("people", simple_schema(), "append_dedup", 2, 2),
        )
        .assert_success();
    let now = user_fields(&rows(&db, "public", "people", "id").await);
    assert_eq!(
        now,
        [
            json!({"id": 2, "name": "b", "seq": 3}),
            json!({"id": 9, "name": "c", "seq": 1})
        ]
    );
    // The tmp table's indexes took the final table's names in the swap.
    let names = people_indexes(&db).await;
    assert_eq!(names, ["people_cursor", "people_extracted_at", "people_pk"]);
}

#[tokio::test]
async fn cdc_deletes_remove_the_key_in_dedup() {
    let (db, config) = database("cdc").await;
    let schema = json!({"properties": {"id": {"type": "integer"}, "seq": {"type": "integer"},
        "_ab_cdc_deleted_at": {"type": ["null", "string"], "format": "date-time"}}});
    let cat = catalog("c", schema.clone(), "append_dedup", 1, 0);
    let lines = vec![
        record_at("c", json!({"id": 1, "seq": 1}), 1),
        record_at("c", json!({"id": 2, "seq": 1}), 1),
        record_at("c", json!({"id": 3, "seq": 1}), 1),
    ];
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &cat)
        .assert_success();
    let lines = vec![
        record_at(
            "c",
            json!({"id": 2, "seq": 2, "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z"}),
            2,
        ),
        record_at(
            "c",
            json!({"id": 4, "seq": 2, "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z"}),
            2,
        ),
        record_at(
            "c",
            json!({"id": 3, "seq": 0, "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z"}),
            2,
        ),
    ];
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(&config, &cat)
        .assert_success();
    let ids: Vec<i64> = rows(&db, "public", "c", "id")
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [1, 3],
        "2 deleted; 4 never inserted; 3's delete is older than its row"
    );

    // Soft delete keeps the row with the marker.
    let mut soft = config.clone();
    soft["cdc_deletion_mode"] = json!("Soft delete");
    let lines = vec![record_at(
        "c",
        json!({"id": 1, "seq": 5, "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z"}),
        3,
    )];
    Run::new(BIN)
        .stdin_lines(&lines)
        .write(&soft, &cat)
        .assert_success();
    let now = rows(&db, "public", "c", "id").await;
    assert_eq!(now.len(), 2);
    assert!(now[0]["_ab_cdc_deleted_at"].is_string());
}

#[tokio::test]
async fn append_over_two_connections_loads_every_row_once() {
    let (db, config) = database("two_lanes").await;
    // Three loader batches: they alternate between the two connections (or all go over one).
    let mut lines: Vec<String> = (0..25_000)
        .map(|i| record("people", json!({"id": i, "seq": i})))
        .collect();
    lines.push(state("people", 1));
    for (streams, table) in [("2", "people"), ("1", "people")] {
        let cat = catalog(table, simple_schema(), "overwrite", 1, 1);
        let run = Run::new(BIN)
            .env("DESTINATION_POSTGRES_COPY_STREAMS", streams)
            .stdin_lines(&lines)
            .write(&config, &cat);
        run.assert_success();
        assert_eq!(run.states().len(), 1);
        let client = db.connect().await;
        let row = client
            .query_one(
                "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.people",
                &[],
            )
            .await
            .unwrap();
        let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(
            counts,
            (25_000, 25_000, 0, 24_999),
            "{streams} connection(s)"
        );
    }
}

/// The distinct transaction ids that wrote the rows of `public.<table>` (one per connection
/// that loaded it in one commit).
async fn writers(db: &TestDatabase, table: &str) -> i64 {
    let client = db.connect().await;
    let sql = format!("SELECT count(DISTINCT xmin::text) FROM public.\"{table}\"");
    client.query_one(&sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn dedup_merges_in_the_background_keep_the_latest_row_per_key() {
    for streams in ["2", "1"] {
        dedup_merges_keep_the_latest_row_per_key(streams).await;
    }
}

/// Over one connection, or two splitting the keys by hash: the same result, and with two,
/// each connection loaded part of the keys in its own transaction.
async fn dedup_merges_keep_the_latest_row_per_key(streams: &str) {
    let (db, config) = database(&format!("dedup_chunks_{streams}")).await;
    let schema = json!({"properties": {"id": {"type": "integer"}, "seq": {"type": "integer"},
        "name": {"type": "string"},
        "_ab_cdc_deleted_at": {"type": ["null", "string"], "format": "date-time"}}});
    let cat = catalog("k", schema, "append_dedup", 1, 0);
    // 25,000 records over 5,000 keys in three loader batches, so stages merge part way (one
    // merge per batch here) and again at commit: the highest seq of each key wins.
    let mut lines: Vec<String> = (0..25_000)
        .map(|i| {
            record(
                "k",
                json!({"id": i % 5000, "seq": i, "name": format!("v{i}")}),
            )
        })
        .collect();
    // Keys 0..100 end deleted; keys 100..200 get older rows, which must not win.
    lines.extend((0..100).map(|k| {
        record(
            "k",
            json!({"id": k, "seq": 30_000 + k, "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z"}),
        )
    }));
    lines.extend((100..200).map(|k| record("k", json!({"id": k, "seq": 0, "name": "old"}))));
    lines.push(state("k", 1));
    let run = Run::new(BIN)
        .env("DESTINATION_POSTGRES_MERGE_EVERY", "1")
        .env("DESTINATION_POSTGRES_COPY_STREAMS", streams)
        .stdin_lines(&lines)
        .write(&config, &cat);
    run.assert_success();
    assert_eq!(run.states().len(), 1);
    let now = rows(&db, "public", "k", "id").await;
    assert_eq!(now.len(), 4900, "one row per key, deleted keys gone");
    for row in &now {
        let id = row["id"].as_i64().unwrap();
        assert!(id >= 100, "key {id} was deleted");
        assert_eq!(row["seq"].as_i64().unwrap(), 20_000 + id, "{row}");
        assert_eq!(row["name"], json!(format!("v{}", 20_000 + id)));
    }
    let expected = if streams == "2" { 2 } else { 1 };
    assert_eq!(writers(&db, "k").await, expected, "{streams} connection(s)");

    // A second sync, in loader batches of distinct keys (merged without a sort): each key
    // gets an older version (ignored) and 5,100 keys are new; then every key gets a newer
    // version, out of order; then keys 200..300 are deleted and key 0 comes back.
    let mut lines: Vec<String> = (100..5000)
        .map(|k| record("k", json!({"id": k, "seq": 1, "name": "older"})))
        .collect();
    lines.extend((5000..10_100).map(|k| record("k", json!({"id": k, "seq": 1, "name": "new"}))));
    assert_eq!(lines.len(), 10_000, "one loader batch");
    lines.extend(
        (100..10_100)
            .rev()
            .map(|k| record("k", json!({"id": k, "seq": 50_000 + k, "name": "newer"}))),
    );
    lines.extend((200..300).map(|k| {
        record(
            "k",
            json!({"id": k, "seq": 60_000, "_ab_cdc_deleted_at": "2024-02-01T00:00:00Z"}),
        )
    }));
    lines.push(record("k", json!({"id": 0, "seq": 70_000, "name": "back"})));
    lines.push(state("k", 2));
    let run = Run::new(BIN)
        .env("DESTINATION_POSTGRES_MERGE_EVERY", "7")
        .env("DESTINATION_POSTGRES_COPY_STREAMS", streams)
        .stdin_lines(&lines)
        .write(&config, &cat);
    run.assert_success();
    let now = rows(&db, "public", "k", "id").await;
    let ids: Vec<i64> = now.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = std::iter::once(0)
        .chain(100..200)
        .chain(300..10_100)
        .collect();
    assert_eq!(ids, expected, "one row per key");
    assert_eq!(now[0]["name"], "back");
    for row in &now[1..] {
        let id = row["id"].as_i64().unwrap();
        assert_eq!(row["seq"].as_i64().unwrap(), 50_000 + id, "{row}");
        assert_eq!(row["name"], "newer");
    }
}

#[tokio::test]
async fn dedup_state_is_acknowledged_only_after_both_connections_commit() {
    let (db, config) = database("dedup_lanes_fail").await;
    let cat = catalog("k", simple_schema(), "append_dedup", 1, 0);
    // The first sync creates the table; then key 4242 is refused by the table (whichever
    // connection merges it fails; the other one may commit its half, unacknowledged).
    let first: Vec<String> = (0..3000)
        .map(|k| record("k", json!({"id": k, "seq": 1, "name": "a"})))
        .chain(std::iter::once(state("k", 1)))
        .collect();
    Run::new(BIN)
        .stdin_lines(&first)
        .write(&config, &cat)
        .assert_success();
    let client = db.connect().await;
    client
        .batch_execute("ALTER TABLE public.k ADD CONSTRAINT no_4242 CHECK (id <> 4242)")
        .await
        .unwrap();
    let second: Vec<String> = (3000..6000)
        .map(|k| record("k", json!({"id": k, "seq": 2, "name": "b"})))
        .chain((0..100).map(|k| record("k", json!({"id": k, "seq": 2, "name": "b"}))))
        .chain(std::iter::once(state("k", 2)))
        .collect();
    let run = Run::new(BIN)
        .env("DESTINATION_POSTGRES_MERGE_EVERY", "500")
        .stdin_lines(&second)
        .write(&config, &cat);
    run.assert_failure();
    assert!(
        run.states().is_empty(),
        "no state acknowledged: {:?}",
        run.states()
    );

    // The retry of the same records (the key allowed again) stores each key once.
    client
        .batch_execute("ALTER TABLE public.k DROP CONSTRAINT no_4242")
        .await
        .unwrap();
    Run::new(BIN)
        .stdin_lines(&second)
        .write(&config, &cat)
        .assert_success();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE name = 'b') FROM public.k",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(counts, (6000, 6000, 3100));
}

#[tokio::test]
async fn unsupported_modes_are_config_errors() {
    let (_db, config) = database("modes").await;
    let hybrid = catalog("people", simple_schema(), "append", 5, 3);
    refused(&config, &hybrid, "hybrid refreshes are not supported");

    let update = catalog("people", simple_schema(), "update", 1, 0);
    refused(&config, &update, "'update' is not supported");

    let clash = json!({"streams": [
        stream("a b", None, simple_schema(), "append", 1, 0),
        stream("a_b", None, simple_schema(), "append", 1, 0),
    ]});
    refused(&config, &clash, "would both be written to table public.a_b");

    let mut no_key = catalog("people", simple_schema(), "append_dedup", 1, 0);
    no_key["streams"][0]["primary_key"] = json!([["missing"]]);
    refused(
        &config,
        &no_key,
        "the primary key field 'missing' is not a scalar field",
    );
}

/// Writes one record with `catalog`: the write must fail with a config error saying `why`.
fn refused(config: &Value, catalog: &Value, why: &str) {
    let out = Run::new(BIN)
        .stdin_lines(people(1..=1, "x", 1))
        .write(config, catalog);
    out.assert_failure();
    let error = &out.trace_errors()[0];
    assert_eq!(
        serde_json::to_value(error.failure_type).unwrap(),
        json!("config_error")
    );
    assert!(error.message.contains(why), "{}", out.describe());
}
