//! Benchmark of source-csv: a generated CSV of `records` rows × 10 columns (integers, floats,
//! text, booleans, dates, timestamps, empty values and a quoted JSON-ish column) read to
//! /dev/null by the release binary, beside the time the `csv` crate alone takes to parse the
//! same file. A second file of 3× the rows, gzip-compressed, shows memory stays flat.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{Bench, Measurement, goal, measure_best, report, report_ratio};

/// Writes the benchmark file: row `i` is a deterministic function of `i`.
fn generate(path: &Path, rows: u64, gzip: bool) -> Result<u64> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    writeln!(
        out,
        "id,amount,name,active,signup_date,updated_at,referrer,score,country,attributes"
    )?;
    for i in 0..rows {
        let referrer = if i % 4 == 0 {
            String::new()
        } else {
            format!("ref-{}", i % 97)
        };
        let score = if i % 10 == 0 {
            String::new()
        } else {
            (i % 1000).to_string()
        };
        writeln!(
            out,
            "{i},{}.{:02},customer {i},{},2024-{:02}-{:02},2024-{:02}-{:02}T{:02}:{:02}:{:02}Z,{referrer},{score},{},\"{{\"\"plan\"\": \"\"pro\"\", \"\"seats\"\": {}, \"\"tags\"\": [\"\"a\"\", \"\"b, c\"\"]}}\"",
            i % 10_000,
            i % 100,
            if i % 3 == 0 { "true" } else { "false" },
            i % 12 + 1,
            i % 28 + 1,
            i % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 60,
            (i * 7) % 60,
            ["FR", "DE", "US", "JP", "BR"][(i % 5) as usize],
            i % 50,
        )?;
    }
    out.flush()?;
    drop(out);
    // On disk before measuring, so write-back doesn't compete with the read.
    std::fs::File::open(path)?.sync_all()?;
    Ok(std::fs::metadata(path)?.len())
}

/// The physical reference: every record of the file parsed by the `csv` crate, nothing more.
fn parse_only(path: &Path) -> Result<(Measurement, u64)> {
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .buffer_capacity(256 << 10)
        .from_path(path)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader.read_byte_record(&mut record)? {
        rows += 1;
    }
    Ok((
        Measurement {
            elapsed: started.elapsed(),
            peak_rss_mib: 0.0,
        },
        rows,
    ))
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_vec(value)?)?;
    Ok(())
}

/// Discovers the file's stream and writes a full-refresh catalog of it.
fn catalog_for(bin: &Path, config: &Path, catalog: &Path) -> Result<()> {
    let out = Command::new(bin)
        .args(["discover", "--config"])
        .arg(config)
        .output()?;
    let stream = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["type"] == "CATALOG")
        .map(|m| m["catalog"]["streams"][0].clone())
        .with_context(|| {
            format!(
                "discover gave no catalog: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    write_json(
        catalog,
        &json!({"streams": [{"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]}),
    )
}

pub fn run(bench: &Bench) -> Result<()> {
    let bin = bench.binary("source-csv")?;
    let rows = bench.records;
    let data = bench.scratch_file("bench.csv");
    let bytes = generate(&data, rows, false)?;
    println!("  {rows} rows, {:.0} MB of CSV", bytes as f64 / 1e6);

    let config = bench.scratch_file("csv-config.json");
    write_json(&config, &json!({"dataset_name": "bench", "url": data}))?;
    let catalog = bench.scratch_file("csv-catalog.json");
    catalog_for(&bin, &config, &catalog)?;

    // Best of 3, as for the connector.
    let mut reference: Option<Measurement> = None;
    for _ in 0..3 {
        let (m, parsed) = parse_only(&data)?;
        anyhow::ensure!(parsed == rows, "the csv crate saw {parsed} rows");
        reference = Some(reference.map_or(m, |r| r.best_with(m)));
    }
    let reference = reference.expect("three runs");
    report(
        "csv crate, parse only, best of 3",
        rows,
        Some(bytes),
        &reference,
    );
    let read = |config: &Path, catalog: &Path, runs: usize| {
        let cmd = || {
            let mut cmd = Command::new(&bin);
            cmd.args(["read", "--config"])
                .arg(config)
                .arg("--catalog")
                .arg(catalog);
            cmd
        };
        measure_best(runs, cmd, None)
    };
    let ours = read(&config, &catalog, 3)?;
    report("source-csv read, best of 3", rows, Some(bytes), &ours);
    report_ratio("source-csv read", &ours, "csv crate parse", &reference);

    let big = bench.scratch_file("bench-3x.csv.gz");
    generate(&big, rows * 3, true)?;
    let big_config = bench.scratch_file("csv-config-3x.json");
    write_json(&big_config, &json!({"dataset_name": "bench", "url": big}))?;
    let big_read = read(&big_config, &catalog, 1)?;
    report("source-csv read, 3x rows, gzip", rows * 3, None, &big_read);

    let ratio = ours.elapsed.as_secs_f64() / reference.elapsed.as_secs_f64();
    goal(
        ">= 2,400,000 records/s",
        ours.per_second(rows) >= 2_400_000.0,
    );
    goal("<= 2x the csv crate's parse time", ratio <= 2.0);
    goal("peak RSS < 50 MB", ours.peak_rss_mib * 1.048_576 < 50.0);
    goal(
        "peak RSS flat at 3x the rows (within 10 MiB)",
        big_read.peak_rss_mib < ours.peak_rss_mib + 10.0,
    );
    Ok(())
}
