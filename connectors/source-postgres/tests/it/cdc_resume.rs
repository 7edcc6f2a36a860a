//! A CDC sync killed at random points (3 seeds × 5 kills), each resumed from the last state
//! it emitted: every change arrives at least once, the replayed records converge to the
//! table, and the slot never moves past a position not handed back in a state.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use cdk::protocol::SyncMode;
use serde_json::{Value, json};

use crate::cdc::{cdc_database, confirmed_flush, drop_slot, state_lsn};
use crate::{configure, discover};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs a read, killing it after `kill_after` output lines (never when `None`); returns the
/// lines it wrote.
fn read_lines(
    cfg: &Value,
    catalog: &Value,
    state: Option<&Value>,
    kill_after: Option<usize>,
) -> Vec<Value> {
    let (mut child, _files) = crate::spawn_read(cfg, catalog, state);
    let mut out = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        out.push(serde_json::from_str(&line).expect("a JSON line"));
        if Some(out.len()) == kill_after {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    if kill_after.is_none() {
        assert!(status.success(), "the last read failed: {out:?}");
    }
    out
}

/// The last state in `lines` as a state file.
fn last_state(lines: &[Value]) -> Option<Value> {
    lines.iter().rev().find(|m| m["type"] == "STATE").map(|m| {
        let mut s = m["state"].clone();
        s.as_object_mut().unwrap().remove("sourceStats");
        json!([s])
    })
}

async fn one_seed(seed: u64) {
    let (db, cfg, slot) = cdc_database(
        &format!("cdc_kill_{seed}"),
        "CREATE TABLE t (id int PRIMARY KEY, rev int NOT NULL);
         INSERT INTO t SELECT i, 0 FROM generate_series(1, 300) i;",
        "t",
    )
    .await;
    let catalog = configure(&discover(&cfg), &[("t", SyncMode::Incremental, None)]);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut kills = Rng(seed * 31 + 7);
    // Every change made after the slot: (id, Some(rev)) for a write, (id, None) a delete.
    let mut expected: Vec<(i64, Option<i64>)> = Vec::new();
    let mut next_id = 301;
    let mut rev = 0;
    let mut live: Vec<i64> = (1..=300).collect();
    let mut changes = |n: usize, expected: &mut Vec<(i64, Option<i64>)>| {
        let mut sql = String::new();
        for _ in 0..n {
            rev += 1;
            sql.push_str("BEGIN;");
            for _ in 0..3 {
                match rng.below(3) {
                    0 => {
                        sql.push_str(&format!("INSERT INTO t VALUES ({next_id}, {rev});"));
                        expected.push((next_id, Some(rev)));
                        live.push(next_id);
                        next_id += 1;
                    }
                    1 if !live.is_empty() => {
                        let id = live[rng.below(live.len() as u64) as usize];
                        sql.push_str(&format!("UPDATE t SET rev = {rev} WHERE id = {id};"));
                        expected.push((id, Some(rev)));
                    }
                    _ if !live.is_empty() => {
                        let id = live.swap_remove(rng.below(live.len() as u64) as usize);
                        sql.push_str(&format!("DELETE FROM t WHERE id = {id};"));
                        expected.push((id, None));
                    }
                    _ => {}
                }
            }
            sql.push_str("COMMIT;");
        }
        sql
    };
    let sql = changes(60, &mut expected);
    db.execute(&sql).await;

    let mut state: Option<Value> = None;
    let mut handed_back = confirmed_flush(&db, &slot).await;
    let mut records: Vec<Value> = Vec::new();
    let mut replay_kills = 0;
    for kill in 0..6 {
        let kill_after = (kill < 5).then(|| 2 + kills.below(250) as usize);
        let lines = read_lines(&cfg, &catalog, state.as_ref(), kill_after);
        records.extend(
            lines
                .iter()
                .filter(|m| m["type"] == "RECORD")
                .map(|m| m["record"]["data"].clone()),
        );
        let in_replay = lines.iter().any(|m| {
            m["type"] == "STATE"
                && m["state"]["global"]["stream_states"][0]["stream_state"]["state_type"] == "cdc"
        });
        replay_kills += usize::from(kill < 5 && in_replay);
        let confirmed = confirmed_flush(&db, &slot).await;
        assert!(
            confirmed <= handed_back,
            "seed {seed} run {kill}: the slot is at {confirmed}, past the last position handed back {handed_back}"
        );
        if let Some(s) = last_state(&lines) {
            state = Some(s);
        }
        if let Some(s) = &state
            && s[0]["type"] == "GLOBAL"
        {
            handed_back = handed_back.max(state_lsn(s));
        }
        if kill < 5 {
            let sql = changes(5, &mut expected);
            db.execute(&sql).await;
        }
    }
    assert!(
        replay_kills >= 1,
        "seed {seed}: no kill fell in the change replay"
    );
    // Every change arrived at least once.
    for (id, rev) in &expected {
        let found = records.iter().any(|r| {
            r["id"] == *id
                && match rev {
                    Some(rev) => r["rev"] == *rev && r["_ab_cdc_deleted_at"].is_null(),
                    None => r["_ab_cdc_deleted_at"].is_string(),
                }
        });
        assert!(found, "seed {seed}: change ({id}, {rev:?}) never arrived");
    }
    // Deduplicated by key, latest `_ab_cdc_lsn` (then latest emitted) wins: equals the table.
    let mut latest: BTreeMap<i64, (u64, &Value)> = BTreeMap::new();
    for r in &records {
        let lsn = r["_ab_cdc_lsn"].as_u64().unwrap();
        let id = r["id"].as_i64().unwrap();
        if latest.get(&id).is_none_or(|(l, _)| lsn >= *l) {
            latest.insert(id, (lsn, r));
        }
    }
    let synced: BTreeMap<i64, i64> = latest
        .into_iter()
        .filter(|(_, (_, r))| r["_ab_cdc_deleted_at"].is_null())
        .map(|(id, (_, r))| (id, r["rev"].as_i64().unwrap()))
        .collect();
    let rows = db
        .connect()
        .await
        .query("SELECT id, rev FROM t", &[])
        .await
        .unwrap();
    let table: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (r.get::<_, i32>(0) as i64, r.get::<_, i32>(1) as i64))
        .collect();
    assert_eq!(synced, table, "seed {seed}");
    drop_slot(&db, &slot).await;
}

#[tokio::test]
async fn killed_cdc_syncs_resume_without_losing_a_change() {
    for seed in 1..=3 {
        one_seed(seed).await;
    }
}

/// Runs a read to the end, counting the records of each id (0..n) without keeping them;
/// returns the counts, the last state and the peak RSS seen (kB).
fn count_records(
    cfg: &Value,
    catalog: &Value,
    state: Option<&Value>,
    n: usize,
) -> (Vec<u8>, Value, u64) {
    let (mut child, _files) = crate::spawn_read(cfg, catalog, state);
    let mut seen = vec![0u8; n + 1];
    let mut last = Value::Null;
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    for (i, line) in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .enumerate()
    {
        if i % 10_000 == 0 {
            peak_kb = peak_kb.max(vm_hwm_kb(&status));
        }
        let line = line.unwrap();
        if line.starts_with(r#"{"type":"RECORD""#) {
            let m: Value = serde_json::from_str(&line).unwrap();
            let id = m["record"]["data"]["id"].as_u64().unwrap() as usize;
            seen[id] = seen[id].saturating_add(1);
        } else if line.contains(r#""type":"STATE""#) {
            last = serde_json::from_str(&line).unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
    let mut s = last["state"].clone();
    s.as_object_mut().unwrap().remove("sourceStats");
    (seen, json!([s]), peak_kb)
}

/// The peak resident memory (`VmHWM`) of a running process, in kB (0 once it ended).
fn vm_hwm_kb(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_transaction_of_a_million_rows_arrives_whole() {
    const N: usize = 1_000_000;
    let (db, cfg, slot) =
        cdc_database("cdc_million", "CREATE TABLE m (id int PRIMARY KEY);", "m").await;
    let catalog = configure(&discover(&cfg), &[("m", SyncMode::Incremental, None)]);
    let (_, state, _) = count_records(&cfg, &catalog, None, 0);
    db.execute(&format!("INSERT INTO m SELECT generate_series(1, {N})"))
        .await;
    let started = std::time::Instant::now();
    let (seen, state2, peak_kb) = count_records(&cfg, &catalog, Some(&state), N);
    eprintln!(
        "1M-row transaction read in {:?}, source peak RSS {} MB",
        started.elapsed(),
        peak_kb / 1024
    );
    // Streamed, not collected: memory does not grow with the transaction.
    assert!(peak_kb > 0 && peak_kb < 100 * 1024, "peak RSS {peak_kb} kB");
    assert_eq!(seen[0], 0);
    assert!(seen[1..].iter().all(|c| *c == 1), "every row exactly once");
    assert!(state_lsn(&state2) > state_lsn(&state));
    drop_slot(&db, &slot).await;
}
