//! Benchmark of destination-s3: records of 10 typed columns into the in-process S3 server as
//! Parquet (SNAPPY) and as JSONL (GZIP), beside the loader's parse-only time on the same input
//! (the floor of any destination) and the same writes on one thread; then Parquet again with
//! 5× the records, to show that peak memory does not grow with the data.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};
use cdk::testing::s3::TestS3;
use serde_json::{Value, json};

use super::{Bench, Measurement, goal, measure, report, report_ratio};

pub fn run(bench: &Bench) -> Result<()> {
    let n = bench.records;
    let s3 = TestS3::shared();
    let input = bench.scratch_file("s3-messages.jsonl");
    let bytes = write_messages(&input, n)?;
    let catalog = bench.scratch_file("s3-catalog.json");
    std::fs::write(&catalog, catalog_json().to_string())?;

    let floor = super::loader::measure_parse_only(bench, &catalog, &input)?;
    report(
        "loader parse of stdin (reference), best of 3",
        n,
        Some(bytes),
        &floor,
    );

    // Best of 3, as the reference: the S3 server shares the machine's two cores.
    let parquet = json!({"format_type": "Parquet", "compression_codec": "SNAPPY"});
    let (m, files) = best_of_3(bench, s3, &catalog, &input, "parquet", &parquet, &[])?;
    report(
        "destination-s3 Parquet SNAPPY, best of 3",
        n,
        Some(bytes),
        &m,
    );
    report_ratio("destination-s3 Parquet SNAPPY", &m, "loader parse", &floor);
    println!("  {files}");
    goal("Parquet ≥ 800,000 records/s", m.per_second(n) >= 800_000.0);
    goal("Parquet peak RSS < 256 MB", m.peak_rss_mib < 256.0);
    let parquet_1x = m;
    // The same on one thread (decoding, building, encoding): what the threads gain.
    let (one, _) = write_to_s3(
        bench,
        s3,
        &catalog,
        &input,
        "parquet-1t",
        &parquet,
        ONE_THREAD,
    )?;
    report(
        "destination-s3 Parquet SNAPPY, one thread",
        n,
        Some(bytes),
        &one,
    );

    let jsonl = json!({"format_type": "JSONL", "compression": {"compression_type": "GZIP"}});
    let (m, files) = best_of_3(bench, s3, &catalog, &input, "jsonl", &jsonl, &[])?;
    report("destination-s3 JSONL GZIP, best of 3", n, Some(bytes), &m);
    report_ratio("destination-s3 JSONL GZIP", &m, "loader parse", &floor);
    println!("  {files}");
    goal(
        "JSONL GZIP ≥ 500,000 records/s",
        m.per_second(n) >= 500_000.0,
    );
    let (one, _) = write_to_s3(bench, s3, &catalog, &input, "jsonl-1t", &jsonl, ONE_THREAD)?;
    report(
        "destination-s3 JSONL GZIP, one thread",
        n,
        Some(bytes),
        &one,
    );

    // The same Parquet write with 5× the records: memory must stay where it was.
    std::fs::remove_file(&input)?;
    let big = bench.scratch_file("s3-messages-5x.jsonl");
    let big_bytes = write_messages(&big, 5 * n)?;
    let (m, files) = write_to_s3(bench, s3, &catalog, &big, "parquet-5x", &parquet, &[])?;
    std::fs::remove_file(&big)?;
    report(
        "destination-s3 Parquet SNAPPY, 5x records",
        5 * n,
        Some(big_bytes),
        &m,
    );
    println!("  {files}");
    println!(
        "  peak RSS {:.1} MiB at {n} records, {:.1} MiB at {} records",
        parquet_1x.peak_rss_mib,
        m.peak_rss_mib,
        5 * n
    );
    goal("5x records peak RSS < 256 MB", m.peak_rss_mib < 256.0);
    goal(
        "5x records peak RSS within 15% of 1x",
        m.peak_rss_mib <= parquet_1x.peak_rss_mib * 1.15,
    );
    Ok(())
}

/// The knobs that keep decoding and encoding on one thread each.
const ONE_THREAD: &[(&str, &str)] = &[
    ("CDK_DECODE_THREADS", "0"),
    ("DESTINATION_S3_ENCODE_THREADS", "0"),
];

/// The best of 3 runs of [`write_to_s3`] (the fastest time, the highest peak RSS).
fn best_of_3(
    bench: &Bench,
    s3: &TestS3,
    catalog: &Path,
    input: &Path,
    name: &str,
    format: &Value,
    env: &[(&str, &str)],
) -> Result<(Measurement, String)> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(write_to_s3(bench, s3, catalog, input, name, format, env)?);
    }
    let files = runs[0].1.clone();
    let m = runs
        .iter()
        .map(|r| r.0)
        .reduce(Measurement::best_with)
        .expect("three runs");
    Ok((m, files))
}

/// Runs `destination-s3 write` into a fresh bucket, with `env` set; returns the measurement
/// and a summary of the objects written.
fn write_to_s3(
    bench: &Bench,
    s3: &TestS3,
    catalog: &Path,
    input: &Path,
    name: &str,
    format: &Value,
    env: &[(&str, &str)],
) -> Result<(Measurement, String)> {
    let bucket = s3.fresh_bucket(&format!("bench-{name}"));
    let config = bench.scratch_file(&format!("s3-{name}.json"));
    std::fs::write(
        &config,
        json!({"s3_bucket_name": bucket, "s3_bucket_path": "bench", "s3_bucket_region": s3.region,
            "s3_endpoint": s3.endpoint, "access_key_id": s3.access_key,
            "secret_access_key": s3.secret_key, "format": format})
        .to_string(),
    )?;
    let mut cmd = Command::new(bench.binary("destination-s3")?);
    cmd.arg("write")
        .arg("--config")
        .arg(&config)
        .arg("--catalog")
        .arg(catalog)
        .envs(env.iter().copied());
    let m = measure(&mut cmd, Some(input))?;
    let dir = s3.root.join(&bucket);
    let mut files = Vec::new();
    walk(&dir, &mut files);
    ensure!(
        !files.is_empty(),
        "no objects were written to {}",
        dir.display()
    );
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let summary = format!(
        "{} object(s), {:.1} MB in total, e.g. {}",
        files.len(),
        total as f64 / 1e6,
        files[0].0
    );
    std::fs::remove_dir_all(&dir)?;
    Ok((m, summary))
}

fn walk(dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if let Ok(meta) = entry.metadata() {
            out.push((path.display().to_string(), meta.len()));
        }
    }
}

fn catalog_json() -> Value {
    json!({"streams": [{
        "stream": {"name": "users", "supported_sync_modes": ["full_refresh"], "json_schema": {
            "type": "object", "properties": {
                "id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string"},
                "score": {"type": "number"}, "active": {"type": "boolean"}, "age": {"type": "integer"},
                "city": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "balance": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}},
        "sync_mode": "full_refresh", "destination_sync_mode": "overwrite",
        "generation_id": 1, "minimum_generation_id": 1, "sync_id": 1}]})
}

/// Writes `n` RECORD lines (10 typed columns) with a STATE every 10,000; returns the size.
fn write_messages(path: &Path, n: u64) -> Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in 1..=n {
        writeln!(
            w,
            "{{\"type\":\"RECORD\",\"record\":{{\"stream\":\"users\",\"emitted_at\":{},\"data\":{{\
             \"id\":{i},\"name\":\"user {i}\",\"email\":\"user{i}@example.com\",\"score\":{},\
             \"active\":{},\"age\":{},\"city\":\"Lisbon\",\"created_at\":\"2024-01-{:02}T{:02}:{:02}:00Z\",\
             \"balance\":\"{}.{:02}\",\"tags\":[\"a\",\"b\"]}}}}}}",
            1_700_000_000_000u64 + i,
            i as f64 / 8.0,
            i % 3 == 0,
            i % 90,
            1 + i % 28,
            i % 24,
            i % 60,
            i % 10_000,
            i % 100,
        )?;
        if i % 10_000 == 0 {
            writeln!(
                w,
                "{{\"type\":\"STATE\",\"state\":{{\"type\":\"STREAM\",\"stream\":{{\
                 \"stream_descriptor\":{{\"name\":\"users\"}},\"stream_state\":{{\"id\":{i}}}}}}}}}"
            )?;
        }
    }
    w.flush()?;
    // On disk before measuring, so write-back doesn't compete with the runs.
    w.get_ref().sync_all()?;
    Ok(std::fs::metadata(path)?.len())
}
