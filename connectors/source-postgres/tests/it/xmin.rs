//! Xmin incremental: the initial load switches to an xmin state in Airbyte's shape, and
//! later syncs read again exactly the rows written since.

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use serde_json::{Value, json};

use crate::{BIN, config, configure, database, discover};

fn ids(run: &cdk::testing::Captured) -> Vec<i64> {
    let mut v: Vec<i64> = run
        .records_of("t")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    v.sort();
    v
}

fn stream_state(state: &Value) -> &Value {
    &state[0]["stream"]["stream_state"]
}

#[tokio::test]
async fn xmin_rereads_updated_rows() {
    let db = database("xmin").await;
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE VIEW vw AS SELECT * FROM t;
         INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 30) i;",
    )
    .await;
    let cfg = config(
        &db,
        json!({"sync_checkpoint_records": 7,
        "replication_method": {"method": "Xmin"}}),
    );
    let catalog = discover(&cfg);
    let t = catalog.streams.iter().find(|s| s.name == "t").unwrap();
    assert_eq!(t.source_defined_cursor, Some(true));
    let vw = catalog.streams.iter().find(|s| s.name == "vw").unwrap();
    assert_eq!(vw.supported_sync_modes, vec![SyncMode::FullRefresh]);
    let configured = configure(&catalog, &[("t", SyncMode::Incremental, None)]);

    let first = Run::new(BIN).read(&cfg, &configured, None);
    first.assert_success().assert_protocol();
    assert_eq!(ids(&first), (1..=30).collect::<Vec<_>>());
    let states = first.states_of("t");
    let ctid = states[0]
        .stream
        .as_ref()
        .unwrap()
        .stream_state
        .as_ref()
        .unwrap();
    assert_eq!(ctid["state_type"], "ctid");
    assert_eq!(ctid["incremental_state"]["state_type"], "xmin");
    let state1 = first.final_state();
    let x = stream_state(&state1);
    assert_eq!(x["state_type"], "xmin");
    assert_eq!(x["version"], 2);
    assert_eq!(x["num_wraparound"], 0);
    assert_eq!(x["xmin_raw_value"], x["xmin_xid_value"]);

    db.execute("UPDATE t SET v = 'changed' WHERE id IN (3, 17); INSERT INTO t VALUES (31, 'new');")
        .await;
    let second = Run::new(BIN).read(&cfg, &configured, Some(&state1));
    second.assert_success().assert_protocol();
    assert_eq!(ids(&second), [3, 17, 31]);
    assert!(
        second
            .records_of("t")
            .iter()
            .filter(|r| r["id"] != 31)
            .all(|r| r["v"] == "changed")
    );
    let state2 = second.final_state();
    assert!(stream_state(&state2)["xmin_raw_value"].as_i64() > x["xmin_raw_value"].as_i64());
    let third = Run::new(BIN).read(&cfg, &configured, Some(&state2));
    third.assert_success();
    assert_eq!(ids(&third), Vec::<i64>::new());

    // A state from two xid epochs back: the 32-bit xmin cannot tell old rows from new ones,
    // so every row is read again.
    let mut old = state2.clone();
    old[0]["stream"]["stream_state"]["num_wraparound"] = json!(-2);
    let all = Run::new(BIN).read(&cfg, &configured, Some(&old));
    all.assert_success();
    assert_eq!(ids(&all).len(), 31);
}
