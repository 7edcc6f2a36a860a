//! Benchmark of source-postgres: a full refresh of a 1,000,000-row, 10-column table to
//! /dev/null, beside `psql \copy (select …) to '/dev/null'` of the same table in the same run,
//! then the same on a 5× larger table to show memory stays flat.

use std::process::Command;

use anyhow::{Context, Result};
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::json;

use super::{Bench, Measurement, goal, measure, report, report_ratio};

const COLUMNS: &str = "id, name, email, score, amount, active, created_at, birthday, qty, note";

pub fn run(bench: &Bench) -> Result<()> {
    let bin = bench.binary("source-postgres")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let pg = TestPostgres::shared();
    let db = runtime.block_on(pg.fresh_database("bench_source_pg"));
    let n = bench.records;

    let (ours, psql) = compare(bench, &runtime, &db, &bin, "bench_1x", n)?;
    report("source-postgres read > /dev/null", n, None, &ours);
    report("psql \\copy (select …) to /dev/null", n, None, &psql);
    report_ratio("source-postgres vs psql", &ours, "psql \\copy", &psql);
    goal("≥ 500,000 rows/s", ours.per_second(n) >= 500_000.0);
    goal("≤ 2× psql's time", ours.elapsed <= psql.elapsed * 2);
    goal("peak RSS < 100 MB", ours.peak_rss_mib * 1.048_576 < 100.0);

    let (big, big_psql) = compare(bench, &runtime, &db, &bin, "bench_5x", 5 * n)?;
    report("source-postgres read > /dev/null (5×)", 5 * n, None, &big);
    report_ratio(
        "source-postgres vs psql (5×)",
        &big,
        "psql \\copy",
        &big_psql,
    );
    goal(
        "peak RSS flat for a 5× larger table (within 25%)",
        big.peak_rss_mib <= ours.peak_rss_mib * 1.25 + 2.0,
    );
    Ok(())
}

/// Creates `table` with `rows` rows, then times our read and psql's, best of two each.
fn compare(
    bench: &Bench,
    runtime: &tokio::runtime::Runtime,
    db: &TestDatabase,
    bin: &std::path::Path,
    table: &str,
    rows: u64,
) -> Result<(Measurement, Measurement)> {
    runtime.block_on(async {
        db.execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, name text, email text,
                score double precision, amount numeric(12, 2), active boolean,
                created_at timestamptz, birthday date, qty integer, note varchar(64));
             INSERT INTO {table} SELECT i, 'name ' || i, 'user' || i || '@example.com',
                i * 0.37, (i % 100000) / 100.0, i % 3 = 0,
                '2024-01-01'::timestamptz + i * interval '1 second',
                '1970-01-01'::date + (i % 20000), (i % 1000)::int, 'note number ' || (i % 977)
             FROM generate_series(1, {rows}) i;"
        ))
        .await;
        db.execute(&format!("VACUUM ANALYZE {table}")).await;
    });
    let config = bench.scratch_file(&format!("{table}-config.json"));
    let mut cfg = db.connector_config();
    cfg["ssl_mode"] = json!({"mode": "disable"});
    std::fs::write(&config, cfg.to_string())?;
    let catalog = bench.scratch_file(&format!("{table}-catalog.json"));
    std::fs::write(
        &catalog,
        json!({"streams": [{
            "stream": {"name": table, "namespace": "public", "json_schema": {},
                "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]})
        .to_string(),
    )?;
    let ours = || {
        let mut cmd = Command::new(bin);
        cmd.arg("read")
            .arg("--config")
            .arg(&config)
            .arg("--catalog")
            .arg(&catalog);
        measure(&mut cmd, None)
    };
    let psql = || {
        let mut cmd = Command::new("/usr/bin/psql");
        cmd.env("PGPASSWORD", &db.password)
            .args(["-X", "-q", "-h", &db.host, "-p", &db.port.to_string()])
            .args(["-U", &db.user, "-d", &db.name, "-c"])
            .arg(format!(
                "\\copy (select {COLUMNS} from {table}) to '/dev/null'"
            ));
        measure(&mut cmd, None).context("psql (is /usr/bin/psql installed?)")
    };
    psql()?; // warm the cache
    let (a, b) = (ours()?, psql()?);
    let (c, d) = (ours()?, psql()?);
    Ok((best(a, c), best(b, d)))
}

fn best(a: Measurement, b: Measurement) -> Measurement {
    if a.elapsed <= b.elapsed { a } else { b }
}
