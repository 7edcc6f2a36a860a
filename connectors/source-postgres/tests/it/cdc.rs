//! CDC on the throwaway cluster: the first sync snapshots, later syncs replay inserts,
//! updates and deletes from a pgoutput slot with the `_ab_cdc_*` columns; TOAST, TRUNCATE,
//! tables joining the publication, tables without a primary key, and the setup errors.

use cdk::protocol::SyncMode;
use cdk::testing::postgres::TestDatabase;
use cdk::testing::{Captured, Run};
use serde_json::{Value, json};

use crate::{BIN, config, configure, database, discover};

/// A database with `setup` run, publication `pub` on `tables` and a pgoutput slot; returns
/// it, the CDC config and the slot's name.
pub async fn cdc_database(
    prefix: &str,
    setup: &str,
    tables: &str,
) -> (TestDatabase, Value, String) {
    let db = database(prefix).await;
    db.execute(setup).await;
    db.execute(&format!("CREATE PUBLICATION pub FOR TABLE {tables}"))
        .await;
    let slot = format!("slot_{}", db.name);
    db.execute(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ))
    .await;
    let cfg = config(
        &db,
        json!({"sync_checkpoint_records": 10, "replication_method": {"method": "CDC",
            "replication_slot": slot, "publication": "pub"}}),
    );
    (db, cfg, slot)
}

/// Drops the slot so the cluster's slots do not run out.
pub async fn drop_slot(db: &TestDatabase, slot: &str) {
    db.execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await;
}

/// The slot's confirmed position as a number.
pub async fn confirmed_flush(db: &TestDatabase, slot: &str) -> u64 {
    let c = db.connect().await;
    let row = c
        .query_one(
            "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.get::<_, i64>(0) as u64
}

/// The shared LSN of a run's last GLOBAL state.
pub fn state_lsn(state: &Value) -> u64 {
    state
        .as_array()
        .and_then(|a| a.iter().find(|s| s["type"] == "GLOBAL"))
        .map(|s| s["global"]["shared_state"]["lsn"].as_u64().expect("lsn"))
        .expect("a GLOBAL state")
}

fn incremental(cfg: &Value, streams: &[&str]) -> Value {
    let catalog = discover(cfg);
    let list: Vec<(&str, SyncMode, Option<&str>)> = streams
        .iter()
        .map(|s| (*s, SyncMode::Incremental, None))
        .collect();
    configure(&catalog, &list)
}

fn read(cfg: &Value, catalog: &Value, state: Option<&Value>) -> Captured {
    let run = Run::new(BIN).read(cfg, catalog, state);
    run.assert_success().assert_protocol();
    run
}

fn by_id<'a>(records: &[&'a Value], id: i64) -> Vec<&'a Value> {
    records.iter().copied().filter(|r| r["id"] == id).collect()
}

#[tokio::test]
async fn snapshot_then_inserts_updates_deletes_toast_and_truncate() {
    let (db, cfg, slot) = cdc_database(
        "cdc_basic",
        "CREATE TABLE items (id int PRIMARY KEY, name text, big text, price numeric(8,2),
           at timestamptz, tags int[]);
         INSERT INTO items VALUES
           (1, 'one', NULL, 1.50, '2024-01-01 00:00:00+00', '{1,2}'),
           (2, 'two', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 3000) i),
              2.00, NULL, NULL),
           (3, 'three', 'small', NULL, NULL, '{}');",
        "items",
    )
    .await;
    let catalog = incremental(&cfg, &["items"]);
    let stream = &discover(&cfg).streams[0];
    assert_eq!(stream.source_defined_cursor, Some(true));
    assert_eq!(
        stream.default_cursor_field,
        Some(vec!["_ab_cdc_lsn".to_string()])
    );
    assert!(stream.json_schema["properties"]["_ab_cdc_deleted_at"].is_object());

    // First sync: the snapshot, every row with the CDC columns.
    let first = read(&cfg, &catalog, None);
    let rows = first.records_of("items");
    assert_eq!(rows.len(), 3);
    let snapshot_lsn = rows[0]["_ab_cdc_lsn"].as_u64().expect("lsn");
    assert_eq!(rows[0]["at"], "2024-01-01T00:00:00.000000Z");
    assert_eq!(rows[0]["tags"], json!([1, 2]));
    assert!(rows.iter().all(|r| r["_ab_cdc_deleted_at"].is_null()));
    assert!(rows[0]["_ab_cdc_updated_at"].is_string());
    let state1 = first.final_state();
    let global = &state1[0]["global"];
    assert_eq!(global["shared_state"]["replication_slot"], slot.as_str());
    assert_eq!(
        global["stream_states"][0]["stream_state"]["state_type"],
        "cdc"
    );
    let before = confirmed_flush(&db, &slot).await;

    db.execute(
        "INSERT INTO items VALUES (4, 'four', NULL, 4.25, '2024-02-01 10:30:00.5+00', '{4}');
         UPDATE items SET name = 'uno', price = 1.75 WHERE id = 1;
         UPDATE items SET name = 'dos' WHERE id = 2;
         DELETE FROM items WHERE id = 3;",
    )
    .await;
    let second = read(&cfg, &catalog, Some(&state1));
    // The slot moved to the state the sync started with, not further.
    assert_eq!(
        confirmed_flush(&db, &slot).await,
        before.max(state_lsn(&state1))
    );
    let rows = second.records_of("items");
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let four = by_id(&rows, 4)[0];
    assert_eq!(four["name"], "four");
    assert_eq!(four["price"], json!(4.25));
    assert_eq!(four["at"], "2024-02-01T10:30:00.500000Z");
    assert!(four["_ab_cdc_deleted_at"].is_null());
    assert!(four["_ab_cdc_lsn"].as_u64().unwrap() > snapshot_lsn);
    let one = by_id(&rows, 1)[0];
    assert_eq!(
        (one["name"].as_str(), one["price"].as_f64()),
        (Some("uno"), Some(1.75))
    );
    // The TOASTed value was not changed, so the log does not carry it: left out, and said.
    let two = by_id(&rows, 2)[0];
    assert_eq!(two["name"], "dos");
    assert!(two.get("big").is_none(), "{two}");
    let meta: Vec<Value> = second
        .records()
        .filter(|r| r.data["id"] == 2)
        .flat_map(|r| r.meta.clone())
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    assert_eq!(meta[0]["changes"][0]["field"], "big", "{meta:?}");
    // A delete: the key, and the time of the delete.
    let three = by_id(&rows, 3)[0];
    assert!(three["_ab_cdc_deleted_at"].is_string(), "{three}");
    assert_eq!(three.get("name"), None);
    let lsns: Vec<u64> = rows
        .iter()
        .map(|r| r["_ab_cdc_lsn"].as_u64().unwrap())
        .collect();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "{lsns:?}");

    // Nothing new: no records, the position kept.
    let state2 = second.final_state();
    let third = read(&cfg, &catalog, Some(&state2));
    assert_eq!(third.records_of("items").len(), 0);
    assert_eq!(confirmed_flush(&db, &slot).await, state_lsn(&state2));
    let state3 = third.final_state();
    assert!(state_lsn(&state3) >= state_lsn(&state2));

    // A new primary key: a delete of the old key, then the row under the new one.
    db.execute("UPDATE items SET id = 40 WHERE id = 4").await;
    let moved = read(&cfg, &catalog, Some(&state3));
    let rows = moved.records_of("items");
    assert_eq!(rows.len(), 2, "{}", moved.describe());
    assert_eq!(rows[0]["id"], 4);
    assert!(rows[0]["_ab_cdc_deleted_at"].is_string());
    assert_eq!(
        (rows[1]["id"].as_i64(), rows[1]["name"].as_str()),
        (Some(40), Some("four"))
    );
    assert!(rows[1]["_ab_cdc_deleted_at"].is_null());
    let state3 = moved.final_state();

    // TRUNCATE is said in the log; changes after it still arrive.
    db.execute("TRUNCATE items; INSERT INTO items (id, name) VALUES (10, 'ten');")
        .await;
    let fourth = read(&cfg, &catalog, Some(&state3));
    let rows = fourth.records_of("items");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], 10);
    assert!(
        fourth
            .logs()
            .iter()
            .any(|l| l.message.contains("truncated")),
        "{}",
        fourth.describe()
    );
    drop_slot(&db, &slot).await;
}

fn check_message(cfg: &Value) -> String {
    let run = Run::new(BIN).check(cfg);
    run.assert_success();
    let status = run.connection_status();
    assert_eq!(
        serde_json::to_value(status.status).unwrap(),
        "FAILED",
        "{}",
        run.describe()
    );
    status.message.clone().unwrap_or_default()
}

fn with_cdc(cfg: &Value, key: &str, value: Value) -> Value {
    let mut c = cfg.clone();
    c["replication_method"][key] = value;
    c
}

#[tokio::test]
async fn setup_errors_say_what_to_run() {
    let (db, cfg, slot) = cdc_database(
        "cdc_errors",
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         INSERT INTO a VALUES (1); CREATE ROLE plain LOGIN PASSWORD 'plain-secret-pw';
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain;",
        "a",
    )
    .await;
    let ok = Run::new(BIN).check(&cfg);
    assert_eq!(
        serde_json::to_value(ok.connection_status().status).unwrap(),
        "SUCCEEDED",
        "{}",
        ok.describe()
    );
    let m = check_message(&with_cdc(&cfg, "replication_slot", json!("nope")));
    assert!(
        m.contains("pg_create_logical_replication_slot('nope', 'pgoutput')"),
        "{m}"
    );
    let m = check_message(&with_cdc(&cfg, "publication", json!("nopub")));
    assert!(m.contains("CREATE PUBLICATION \"nopub\""), "{m}");
    let other = format!("{slot}_td");
    db.execute(&format!(
        "SELECT pg_create_logical_replication_slot('{other}', 'test_decoding')"
    ))
    .await;
    let m = check_message(&with_cdc(&cfg, "replication_slot", json!(other)));
    assert!(m.contains("of plugin 'test_decoding'"), "{m}");
    drop_slot(&db, &other).await;
    let mut plain = cfg.clone();
    plain["username"] = json!("plain");
    plain["password"] = json!("plain-secret-pw");
    let m = check_message(&plain);
    assert!(m.contains("ALTER USER \"plain\" REPLICATION"), "{m}");

    // A table outside the publication is full refresh only, and refused as incremental.
    let catalog = discover(&cfg);
    let b = catalog.streams.iter().find(|s| s.name == "b").unwrap();
    assert_eq!(b.supported_sync_modes, vec![SyncMode::FullRefresh]);
    let mut b_inc = configure(&catalog, &[("a", SyncMode::Incremental, None)]);
    b_inc["streams"][0]["stream"]["name"] = json!("b");
    let run = Run::new(BIN).read(&cfg, &b_inc, None);
    run.assert_failure();
    assert!(
        run.describe()
            .contains("ALTER PUBLICATION <publication> ADD TABLE \\\"public\\\".\\\"b\\\"")
            || run.describe().contains("ADD TABLE \"public\".\"b\""),
        "{}",
        run.describe()
    );

    // A state whose position the slot has passed: "Fail sync" fails with a config error,
    // "Re-sync data" snapshots again.
    let catalog = incremental(&cfg, &["a"]);
    let first = read(&cfg, &catalog, None);
    let state = first.final_state();
    // Flushed at commit (the test cluster runs with synchronous_commit off): the slot can only
    // advance up to flushed WAL, and must pass this insert.
    db.execute("BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO a VALUES (2); COMMIT;")
        .await;
    db.execute(&format!(
        "SELECT pg_replication_slot_advance('{slot}', pg_current_wal_lsn())"
    ))
    .await;
    let failed = Run::new(BIN).read(&cfg, &catalog, Some(&state));
    failed.assert_failure();
    let errors = failed.trace_errors();
    assert_eq!(
        serde_json::to_value(errors[0].failure_type).unwrap(),
        "config_error"
    );
    assert!(
        errors[0].message.contains("changes in between are gone"),
        "{}",
        errors[0].message
    );
    let resync = with_cdc(
        &cfg,
        "invalid_cdc_cursor_position_behavior",
        json!("Re-sync data"),
    );
    let again = read(&resync, &catalog, Some(&state));
    let ids: Vec<i64> = again
        .records_of("a")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2]);
    assert!(
        again
            .logs()
            .iter()
            .any(|l| l.message.contains("new snapshot"))
    );
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn a_table_joining_the_publication_is_snapshotted_then_followed() {
    let (db, cfg, slot) = cdc_database(
        "cdc_later",
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
         CREATE TABLE nokey (v text);
         INSERT INTO a VALUES (1, 'a1'); INSERT INTO b VALUES (1, 'b1'), (2, 'b2');
         INSERT INTO nokey VALUES ('x');",
        "a, nokey",
    )
    .await;
    // No primary key: full refresh only (and read that way).
    let catalog = discover(&cfg);
    let nokey = catalog.streams.iter().find(|s| s.name == "nokey").unwrap();
    assert_eq!(nokey.supported_sync_modes, vec![SyncMode::FullRefresh]);
    let full = configure(&catalog, &[("nokey", SyncMode::FullRefresh, None)]);
    assert_eq!(read(&cfg, &full, None).records_of("nokey").len(), 1);

    let first = read(&cfg, &incremental(&cfg, &["a"]), None);
    assert_eq!(first.records_of("a").len(), 1);
    db.execute(
        "INSERT INTO b VALUES (3, 'b3'); ALTER PUBLICATION pub ADD TABLE b;
         INSERT INTO b VALUES (4, 'b4'); UPDATE a SET v = 'a1!' WHERE id = 1;",
    )
    .await;
    let both = incremental(&cfg, &["a", "b"]);
    let second = read(&cfg, &both, Some(&first.final_state()));
    let a = second.records_of("a");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["v"], "a1!");
    // b: its snapshot (1..4), then the insert after it joined (4 again, at least once).
    let mut b: Vec<i64> = second
        .records_of("b")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    b.dedup();
    assert!(b.starts_with(&[1, 2, 3, 4]), "{b:?}");
    db.execute("DELETE FROM b WHERE id = 2").await;
    let third = read(&cfg, &both, Some(&second.final_state()));
    let b = third.records_of("b");
    assert_eq!(b.len(), 1);
    assert!(b[0]["_ab_cdc_deleted_at"].is_string());
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn while_reading_and_heartbeat_options_are_honoured() {
    let (db, cfg, slot) = cdc_database(
        "cdc_options",
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE hb (at timestamptz);
         INSERT INTO a VALUES (1);",
        "a, hb",
    )
    .await;
    let catalog = incremental(&cfg, &["a"]);
    // "While reading Data": the slot follows the final state at the end of each read.
    let eager = with_cdc(&cfg, "lsn_commit_behaviour", json!("While reading Data"));
    let first = read(&eager, &catalog, None);
    db.execute("INSERT INTO a VALUES (2)").await;
    let second = read(&eager, &catalog, Some(&first.final_state()));
    assert_eq!(second.records_of("a").len(), 1);
    let state2 = second.final_state();
    assert_eq!(confirmed_flush(&db, &slot).await, state_lsn(&state2));
    // Idle published tables: the position stays, unless the heartbeat query writes to a
    // published table, which moves it (its changes are not in the catalog: no records).
    let idle = read(&cfg, &catalog, Some(&state2));
    assert_eq!(state_lsn(&idle.final_state()), state_lsn(&state2));
    let beating = with_cdc(
        &cfg,
        "heartbeat_action_query",
        json!("INSERT INTO hb VALUES (now())"),
    );
    let beat = read(&beating, &catalog, Some(&state2));
    assert_eq!(beat.records_of("a").len(), 0);
    assert!(state_lsn(&beat.final_state()) > state_lsn(&state2));
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn changes_decode_every_type_as_the_snapshot_does() {
    let (db, cfg, slot) = cdc_database("cdc_golden", crate::golden::SETUP, "all_types").await;
    let catalog = incremental(&cfg, &["all_types"]);
    let first = read(&cfg, &catalog, None);
    // Touch every row: the log carries every column as text.
    db.execute("UPDATE all_types SET c_int4 = c_int4").await;
    let second = read(&cfg, &catalog, Some(&first.final_state()));
    let snapshot = first.records_of("all_types");
    let changes = second.records_of("all_types");
    assert_eq!(changes.len(), snapshot.len());
    let mut differences = Vec::new();
    for before in &snapshot {
        let after = by_id(&changes, before["id"].as_i64().unwrap())[0];
        for (k, v) in before.as_object().unwrap() {
            if !k.starts_with("_ab_cdc") && after.get(k) != Some(v) {
                differences.push(format!("{k}: snapshot {v}, change {:?}", after.get(k)));
            }
        }
    }
    assert!(differences.is_empty(), "{differences:#?}");
    drop_slot(&db, &slot).await;
}
