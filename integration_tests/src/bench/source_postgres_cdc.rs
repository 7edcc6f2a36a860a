//! Benchmark of source-postgres in CDC mode: 1,000,000 updated rows read from the replication
//! slot, once as one transaction and once as 1,000-row transactions, beside `pg_recvlogical`
//! (pgoutput, proto 1) streaming the same changes from its own slot to /dev/null. The server
//! decodes the WAL for both, so it sets the pace; the goal is that our client never does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

use super::{Bench, Measurement, goal, measure, report, report_ratio};

const TABLE: &str = "cdc_items";
const PUBLICATION: &str = "bench_pub";
const OUR_SLOT: &str = "bench_ours";

pub fn run(bench: &Bench) -> Result<()> {
    let bin = bench.binary("source-postgres")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let pg = TestPostgres::shared();
    let db = runtime.block_on(pg.fresh_database("bench_source_pg_cdc"));
    let n = bench.records;
    runtime.block_on(db.execute(&format!(
        "CREATE TABLE {TABLE} (id bigint PRIMARY KEY, name text, amount numeric(12, 2),
            updated_at timestamptz);
         INSERT INTO {TABLE} SELECT i, 'name ' || i, (i % 100000) / 100.0,
            '2024-01-01'::timestamptz + i * interval '1 second'
         FROM generate_series(1, {n}) i;
         CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE};"
    )));
    runtime.block_on(db.execute(&format!(
        "SELECT pg_create_logical_replication_slot('{OUR_SLOT}', 'pgoutput')"
    )));
    let reader = Reader::new(bench, &bin, &db)?;
    // The first sync snapshots the table; its final state is where the change reads start.
    reader.read("snapshot")?;

    let one = "one transaction";
    let (ours_one, theirs_one) = round(
        &runtime,
        &db,
        &reader,
        "one",
        &format!("UPDATE {TABLE} SET amount = amount + 1"),
    )?;
    report_pair(one, n, &ours_one, &theirs_one);
    let batches = n.div_ceil(1000);
    let (ours_many, theirs_many) = round(
        &runtime,
        &db,
        &reader,
        "many",
        &format!(
            "DO $$ BEGIN FOR b IN 0..{last} LOOP
            UPDATE {TABLE} SET amount = amount + 1 WHERE id > b * 1000 AND id <= (b + 1) * 1000;
            COMMIT;
         END LOOP; END $$",
            last = batches - 1
        ),
    )?;
    report_pair("1,000-row transactions", n, &ours_many, &theirs_many);
    goal(
        "≥ 0.8× pg_recvlogical's rate, one transaction",
        ours_one.elapsed.as_secs_f64() * 0.8 <= theirs_one.elapsed.as_secs_f64(),
    );
    goal(
        "≥ 0.8× pg_recvlogical's rate, 1,000-row transactions",
        ours_many.elapsed.as_secs_f64() * 0.8 <= theirs_many.elapsed.as_secs_f64(),
    );
    goal(
        "peak RSS < 100 MB",
        ours_one.peak_rss_mib.max(ours_many.peak_rss_mib) * 1.048_576 < 100.0,
    );
    goal(
        "peak RSS flat in transaction size (within 25%)",
        ours_one.peak_rss_mib <= ours_many.peak_rss_mib * 1.25 + 2.0,
    );
    Ok(())
}

fn report_pair(what: &str, n: u64, ours: &Measurement, theirs: &Measurement) {
    report(&format!("source-postgres CDC, {what}"), n, None, ours);
    report(&format!("pg_recvlogical, {what}"), n, None, theirs);
    report_ratio(
        &format!("source-postgres CDC vs pg_recvlogical, {what}"),
        ours,
        "pg_recvlogical",
        theirs,
    );
}

/// Applies `changes` with a fresh slot for pg_recvlogical created just before, then times our
/// read of those changes (from the last state) and pg_recvlogical's up to the same LSN.
fn round(
    runtime: &tokio::runtime::Runtime,
    db: &TestDatabase,
    reader: &Reader,
    name: &str,
    changes: &str,
) -> Result<(Measurement, Measurement)> {
    let slot = format!("bench_theirs_{name}");
    let end: String = runtime.block_on(async {
        db.execute(&format!(
            "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
        ))
        .await;
        db.execute(changes).await;
        let row = db
            .connect()
            .await
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .expect("current WAL position");
        row.get(0)
    });
    let (records, ours) = reader.read(name)?;
    let rows: i64 = runtime.block_on(async {
        let client = db.connect().await;
        let row = client
            .query_one(&format!("SELECT count(*) FROM {TABLE}"), &[])
            .await;
        row.expect("row count").get(0)
    });
    if records != rows as u64 {
        bail!("the CDC read of '{name}' emitted {records} records for {rows} updated rows");
    }
    let mut cmd = Command::new(pg_recvlogical()?);
    cmd.env("PGPASSWORD", &db.password)
        .args(["-h", &db.host, "-p", &db.port.to_string(), "-U", &db.user])
        .args(["-d", &db.name, "--slot", &slot, "--start", "--endpos", &end])
        .args(["-o", "proto_version=1", "-o"])
        .arg(format!("publication_names={PUBLICATION}"))
        .args(["--no-loop", "-f", "-"]);
    let theirs = measure(&mut cmd, None).context("pg_recvlogical")?;
    runtime.block_on(db.execute(&format!("SELECT pg_drop_replication_slot('{slot}')")));
    Ok((ours, theirs))
}

/// `pg_recvlogical` of the client package, or of the server binaries the test kit uses.
fn pg_recvlogical() -> Result<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/bin/pg_recvlogical")];
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
        candidates.extend(dirs.flatten().map(|d| d.path().join("bin/pg_recvlogical")));
    }
    match candidates.into_iter().find(|p| p.is_file()) {
        Some(p) => Ok(p),
        None => bail!("pg_recvlogical not found (install postgresql-client)"),
    }
}

/// Runs CDC reads of the table, each from the state the previous one ended with.
struct Reader {
    bin: PathBuf,
    config: PathBuf,
    catalog: PathBuf,
    state: PathBuf,
    scratch: PathBuf,
}

impl Reader {
    fn new(bench: &Bench, bin: &Path, db: &TestDatabase) -> Result<Self> {
        let mut cfg = db.connector_config();
        cfg["ssl_mode"] = json!({"mode": "disable"});
        cfg["replication_method"] = json!({"method": "CDC", "replication_slot": OUR_SLOT,
            "publication": PUBLICATION, "initial_waiting_seconds": 120});
        let config = bench.scratch_file("cdc-config.json");
        std::fs::write(&config, cfg.to_string())?;
        let catalog = bench.scratch_file("cdc-catalog.json");
        std::fs::write(
            &catalog,
            json!({"streams": [{
                "stream": {"name": TABLE, "namespace": "public", "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                    "source_defined_cursor": true, "default_cursor_field": ["_ab_cdc_lsn"],
                    "source_defined_primary_key": [["id"]]},
                "sync_mode": "incremental", "cursor_field": ["_ab_cdc_lsn"],
                "destination_sync_mode": "append_dedup", "primary_key": [["id"]]}]})
            .to_string(),
        )?;
        Ok(Self {
            bin: bin.to_path_buf(),
            config,
            catalog,
            state: bench.scratch_file("cdc-state.json"),
            scratch: bench.scratch.path().to_path_buf(),
        })
    }

    /// One read: its records and measurement; its last state becomes the next read's input.
    fn read(&self, name: &str) -> Result<(u64, Measurement)> {
        let out = self.scratch.join(format!("cdc-{name}.out"));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("read")
            .arg("--config")
            .arg(&self.config)
            .arg("--catalog")
            .arg(&self.catalog);
        if self.state.is_file() {
            cmd.arg("--state").arg(&self.state);
        }
        // Our output goes to a file: the last state is needed, and a file costs what /dev/null
        // costs (page cache).
        let started = std::time::Instant::now();
        let status = cmd
            .stdout(std::fs::File::create(&out)?)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {cmd:?}"))?;
        let (code, rss_kib) = super::wait_with_rusage(status.id() as i32)?;
        let elapsed = started.elapsed();
        // Scanned line by line: the output of a million records must not inflate this
        // process (children forked later would report its memory as theirs).
        let mut records = 0u64;
        let mut last_state = None;
        for line in std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&out)?)) {
            let line = line?;
            if line.starts_with(r#"{"type":"RECORD""#) {
                records += 1;
            } else if line.starts_with(r#"{"type":"STATE""#) {
                last_state = Some(line);
            } else if code != 0 && line.contains(r#""type":"ERROR""#) {
                bail!("source-postgres CDC read '{name}' exited with {code}: {line}");
            }
        }
        if code != 0 {
            bail!("source-postgres CDC read '{name}' exited with {code}");
        }
        let state: Value =
            serde_json::from_str(&last_state.context("the CDC read emitted no state")?)?;
        std::fs::write(&self.state, json!([state["state"]]).to_string())?;
        let _ = std::fs::remove_file(&out);
        Ok((
            records,
            Measurement {
                elapsed,
                peak_rss_mib: rss_kib as f64 / 1024.0,
            },
        ))
    }
}
