//! CDC end to end: source-postgres in CDC mode → `cdk sync` → destination-postgres
//! append_dedup. Inserts, updates (one changing a key) and deletes between jobs, and jobs
//! whose source is killed (SIGKILL) at random points (3 seeds × 5 kills), each resuming from
//! the last acknowledged state: the final table equals the source table, and the slot never
//! passes the position of the state the last job started from.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

use crate::common::{bin, jobs};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The pid of a child of `parent` running `name read …` (not its `check`).
fn child_named(parent: u32, name: &str) -> Option<i32> {
    let comm: String = name.chars().take(15).collect();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, tail) = stat.rsplit_once(") ")?;
        let ppid: u32 = tail.split(' ').nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let reading = cmdline.split(|b| *b == 0).any(|a| a == b"read");
        (ppid == parent && reading && head.ends_with(&format!("({comm}"))).then_some(pid)
    })
}

/// When a job's source is killed.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This many milliseconds after it started (if it still runs).
    After(u64),
    /// This many milliseconds after the job's first acknowledged state, so that a killed job
    /// surely synced something (a random delay alone often lands before the first commit).
    AfterAck(u64),
}

/// One `cdk sync` job; with `kill`, its source is killed at that point.
async fn job(file: &Path, kill: Option<Kill>) {
    let state_file = file.with_file_name(".cdk").join("cdc").join("state.json");
    let mut child = tokio::process::Command::new(bin("cdk"))
        .env("CDK_COMMIT_INTERVAL_MS", "5")
        .arg("sync")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    if let Some(ms) = kill {
        let target = loop {
            if let Some(t) = child_named(pid, "source-postgres") {
                break Some(t);
            }
            if child.try_wait().unwrap().is_some() {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let ms = match ms {
            Kill::After(ms) => ms,
            Kill::AfterAck(ms) => {
                // `cdk sync` saves the state once before it starts the source.
                let state_at_start = std::fs::read(&state_file).unwrap_or_default();
                while std::fs::read(&state_file).unwrap_or_default() == state_at_start
                    && child.try_wait().unwrap().is_none()
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                ms
            }
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if let Some(target) = target {
            // SAFETY: a process this test's `cdk` started (if it ended, the pid is not
            // reused within milliseconds on this test machine).
            unsafe { libc::kill(target, libc::SIGKILL) };
        }
    }
    child.wait().await.unwrap();
}

async fn rows(db: &TestDatabase, sql: &str) -> BTreeMap<i64, String> {
    db.connect()
        .await
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .collect()
}

async fn confirmed_flush(db: &TestDatabase, slot: &str) -> u64 {
    let row = db
        .connect()
        .await
        .query_one(
            "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.get::<_, i64>(0) as u64
}

/// The shared LSN of the connection's state file (0 without one).
fn acknowledged_lsn(state_dir: &Path) -> u64 {
    let text = std::fs::read_to_string(state_dir.join("state.json")).unwrap_or_default();
    let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    state
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["type"] == "GLOBAL")
        .and_then(|s| s["global"]["shared_state"]["lsn"].as_u64())
        .unwrap_or(0)
}

async fn one_seed(seed: u64) {
    let pg = TestPostgres::shared();
    let source = pg.fresh_database(&format!("cdc_e2e_src_{seed}")).await;
    let dest = pg.fresh_database(&format!("cdc_e2e_dst_{seed}")).await;
    let slot = format!("slot_{}", source.name);
    source
        .execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
             INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 20000) i;
             CREATE PUBLICATION pub FOR TABLE items;",
        )
        .await;
    // Not in the same (implicit) transaction as writes.
    source
        .execute(&format!(
            "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
        ))
        .await;
    let mut config = source.connector_config();
    config["sync_checkpoint_records"] = json!(50);
    config["replication_method"] =
        json!({"method": "CDC", "replication_slot": slot, "publication": "pub"});
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("cdc.json");
    let connection = json!({
        "source": {"connector": bin("source-postgres"), "config": config},
        "destination": {"connector": bin("destination-postgres"), "config": dest.connector_config()},
        "streams": [{"name": "items", "namespace": "public", "syncMode": "incremental",
            "cursorField": ["_ab_cdc_lsn"], "destinationSyncMode": "append_dedup",
            "primaryKey": [["id"]]}]
    });
    std::fs::write(&file, connection.to_string()).unwrap();
    let state_dir = work.path().join(".cdk").join("cdc");
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut next_id = 20001;
    for round in 0..6 {
        let mut sql = String::new();
        for change in 0..1000 {
            if change % 10 == 0 {
                sql.push_str("BEGIN;");
            }
            let id = 1 + rng.below(next_id as u64 - 1) as i64;
            match rng.below(4) {
                0 => {
                    sql.push_str(&format!(
                        "INSERT INTO items VALUES ({next_id}, 'new {round}');"
                    ));
                    next_id += 1;
                }
                1 => sql.push_str(&format!("DELETE FROM items WHERE id = {id};")),
                _ => sql.push_str(&format!(
                    "UPDATE items SET v = 'r{round} {id}' WHERE id = {id};"
                )),
            }
            if change % 10 == 9 {
                sql.push_str("COMMIT;");
            }
        }
        // A key change: the old key must disappear downstream.
        sql.push_str(&format!(
            "UPDATE items SET id = {next_id} WHERE id = (SELECT min(id) FROM items);"
        ));
        next_id += 1;
        source.execute(&sql).await;
        let before = acknowledged_lsn(&state_dir);
        // Round 0 (the snapshot, the longest job) is killed mid-way, so some killed job surely
        // synced something; the others at a random time or just after their first commit.
        let kill = match round {
            0 => Some(Kill::AfterAck(rng.below(100))),
            1 | 3 => Some(Kill::After(rng.below(1500))),
            2 | 4 => Some(Kill::AfterAck(rng.below(20))),
            _ => None,
        };
        job(&file, kill).await;
        let confirmed = confirmed_flush(&source, &slot).await;
        assert!(
            before == 0 || confirmed <= before.max(acknowledged_lsn(&state_dir)),
            "seed {seed} round {round}: the slot at {confirmed} passed the acknowledged {before}"
        );
    }
    job(&file, None).await;
    let all = jobs(&state_dir);
    assert_eq!(all.last().unwrap()["status"], "succeeded", "{all:?}");
    let killed = all.iter().filter(|j| j["status"] != "succeeded").count();
    let synced: Vec<(&Value, &Value)> = all
        .iter()
        .map(|j| (&j["recordsSynced"], &j["duration"]))
        .collect();
    eprintln!(
        "seed {seed}: {killed} of {} jobs killed; records synced {synced:?}",
        all.len()
    );
    assert!(
        killed >= 1,
        "seed {seed}: no kill landed inside a job: {all:?}"
    );
    let progressed = all
        .iter()
        .filter(|j| j["status"] != "succeeded" && j["recordsSynced"].as_i64() > Some(0))
        .count();
    assert!(
        progressed >= 1,
        "seed {seed}: no killed job had synced anything: {all:?}"
    );
    let want = rows(&source, "SELECT id, v FROM items").await;
    let got = rows(&dest, "SELECT id, v FROM public.items").await;
    assert_eq!(got.len(), want.len(), "seed {seed}: row counts");
    assert_eq!(got, want, "seed {seed}");
    source
        .execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cdc_into_postgres_dedup_equals_the_source_after_kills() {
    for seed in 1..=3 {
        one_seed(seed).await;
    }
}
