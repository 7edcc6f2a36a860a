//! A read killed part way through a large table, resumed from its last state: every row
//! exactly once across the two runs for a full refresh; at least once, none lost, for
//! incremental (in the initial load and in the cursor phase).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};

use cdk::protocol::SyncMode;
use cdk::testing::{Captured, Run};
use serde_json::{Value, json};

use crate::{BIN, config, configure, database, discover};

/// What a run said before it was killed: records up to the last state (what a destination
/// would have committed), records after it, and that last state.
struct Killed {
    committed: Vec<i64>,
    uncommitted: Vec<i64>,
    last_state: Value,
}

impl Killed {
    /// Reads again from the last state; asserts success and returns the run and the ids of
    /// `stream`'s records.
    fn resume(&self, cfg: &Value, catalog: &Value, stream: &str) -> (Captured, Vec<i64>) {
        let resumed = Run::new(BIN).read(cfg, catalog, Some(&self.last_state));
        resumed.assert_success().assert_protocol();
        let ids = resumed
            .records_of(stream)
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        (resumed, ids)
    }
}

/// Starts a read and kills it after `states` STATE messages.
fn read_and_kill(cfg: &Value, catalog: &Value, state: Option<&Value>, states: usize) -> Killed {
    let (mut child, _files) = crate::spawn_read(cfg, catalog, state);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut committed, mut pending) = (Vec::new(), Vec::new());
    let mut last_state = Value::Null;
    let mut seen = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        let m: Value = serde_json::from_str(&line).unwrap();
        match m["type"].as_str() {
            Some("RECORD") => pending.push(m["record"]["data"]["id"].as_i64().unwrap()),
            Some("STATE") => {
                committed.append(&mut pending);
                let mut s = m["state"].clone();
                s.as_object_mut().unwrap().remove("sourceStats");
                last_state = json!([s]);
                seen += 1;
                if seen == states {
                    child.kill().unwrap();
                    break;
                }
            }
            _ => {}
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the read finished before it could be killed"
    );
    // Lines still in the pipe are not looked at: the process is gone.
    Killed {
        committed,
        uncommitted: pending,
        last_state,
    }
}

const ROWS: i64 = 200_000;

#[tokio::test]
async fn killed_full_refresh_resumes_with_every_row_exactly_once() {
    let db = database("kill_full").await;
    db.execute(&format!(
        "CREATE TABLE big (id int PRIMARY KEY, payload text);
         INSERT INTO big SELECT i, repeat('x', 60) || i FROM generate_series(1, {ROWS}) i;"
    ))
    .await;
    let cfg = config(
        &db,
        json!({"sync_checkpoint_records": 2000, "chunk_size_mb": 1}),
    );
    let catalog = configure(&discover(&cfg), &[("big", SyncMode::FullRefresh, None)]);
    let killed = read_and_kill(&cfg, &catalog, None, 25);
    assert!(
        killed.committed.len() >= 25 * 1000,
        "{}",
        killed.committed.len()
    );
    assert_eq!(
        killed.last_state[0]["stream"]["stream_state"]["state_type"],
        "ctid"
    );

    let (_, resumed) = killed.resume(&cfg, &catalog, "big");
    let mut all: Vec<i64> = killed.committed.clone();
    all.extend(&resumed);
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(n, all.len(), "some rows came twice");
    assert_eq!(all, (1..=ROWS).collect::<Vec<_>>(), "rows lost");
    // The uncommitted tail of the killed run is read again, not skipped.
    let again: BTreeSet<i64> = resumed.into_iter().collect();
    assert!(killed.uncommitted.iter().all(|id| again.contains(id)));
}

#[tokio::test]
async fn killed_incremental_resumes_with_no_row_lost() {
    let db = database("kill_incr").await;
    db.execute(&format!(
        "CREATE TABLE feed (id int PRIMARY KEY, seq bigint, payload text);
         INSERT INTO feed SELECT i, i / 3, repeat('y', 60) FROM generate_series(1, {ROWS}) i;"
    ))
    .await;
    let cfg = config(
        &db,
        json!({"sync_checkpoint_records": 2000, "chunk_size_mb": 1}),
    );
    let catalog = configure(
        &discover(&cfg),
        &[("feed", SyncMode::Incremental, Some("seq"))],
    );

    // Killed in the initial load.
    let killed = read_and_kill(&cfg, &catalog, None, 20);
    let (resumed, ids) = killed.resume(&cfg, &catalog, "feed");
    let got: BTreeSet<i64> = killed.committed.iter().copied().chain(ids).collect();
    assert_eq!(
        got,
        (1..=ROWS).collect::<BTreeSet<_>>(),
        "rows lost in the initial load"
    );
    let state = resumed.final_state();
    assert_eq!(
        state[0]["stream"]["stream_state"]["state_type"],
        "cursor_based"
    );

    // Killed in the cursor phase.
    db.execute(&format!(
        "INSERT INTO feed SELECT i, i / 3, 'new' FROM generate_series({}, {}) i;",
        ROWS + 1,
        2 * ROWS
    ))
    .await;
    let killed = read_and_kill(&cfg, &catalog, Some(&state), 20);
    assert_eq!(
        killed.last_state[0]["stream"]["stream_state"]["state_type"],
        "cursor_based"
    );
    let (_, ids) = killed.resume(&cfg, &catalog, "feed");
    let got: BTreeSet<i64> = killed.committed.iter().copied().chain(ids).collect();
    for id in ROWS + 1..=2 * ROWS {
        assert!(got.contains(&id), "row {id} lost in the cursor phase");
    }
    // At least once, but not the whole table again.
    assert!(got.iter().all(|id| *id >= ROWS - 3), "old rows came back");
}

#[tokio::test]
async fn a_table_rewritten_since_the_state_is_read_from_the_start() {
    let db = database("rewritten").await;
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT i, 'v' FROM generate_series(1, 100) i;",
    )
    .await;
    let cfg = config(&db, json!({"sync_checkpoint_records": 10}));
    let catalog = configure(&discover(&cfg), &[("t", SyncMode::FullRefresh, None)]);
    let first = Run::new(BIN).read(&cfg, &catalog, None);
    first.assert_success();
    let mut middle = first.states_of("t")[4].clone();
    middle.source_stats = None;
    let state = json!([middle]);
    let resumed = Run::new(BIN).read(&cfg, &catalog, Some(&state));
    assert_eq!(
        resumed.records_of("t").len(),
        50,
        "resumes after the 50th row"
    );
    db.execute("VACUUM FULL t").await;
    let after_rewrite = Run::new(BIN).read(&cfg, &catalog, Some(&state));
    after_rewrite.assert_success();
    assert_eq!(
        after_rewrite.records_of("t").len(),
        100,
        "a new file node: read again"
    );
}
