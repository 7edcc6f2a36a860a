//! Benchmark of source-rest-api: a local HTTP server (started in this process) serves 200,000
//! records in pages of 1,000; the connector reads them with a page-increment manifest to
//! /dev/null. The physical reference is downloading the same pages with a bare HTTP/1.1
//! client. A second run with 5× the records shows memory stays flat.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Bench, Measurement, goal, measure, report, report_ratio};

const PAGE_SIZE: usize = 1_000;
const RECORDS: usize = 200_000;

const MANIFEST: &str = r#"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [users]}
streams:
  - type: DeclarativeStream
    name: users
    primary_key: id
    retriever:
      type: SimpleRetriever
      requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: /users
        http_method: GET
      record_selector:
        type: RecordSelector
        extractor: {type: DpathExtractor, field_path: [data]}
      paginator:
        type: DefaultPaginator
        pagination_strategy: {type: PageIncrement, page_size: 1000, start_from_page: 1}
        page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}
        page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: per_page}
"#;

/// The same stream with a record filter and transformations: every record parsed, templated
/// and re-serialised (the general path).
fn general_manifest() -> String {
    let selector = "extractor: {type: DpathExtractor, field_path: [data]}";
    MANIFEST.replace(
        selector,
        &format!(
            "{selector}\n        record_filter: {{type: RecordFilter, condition: \"{{{{ record['age'] >= 0 }}}}\"}}"
        ),
    ) + r#"    transformations:
      - type: AddFields
        fields: [{type: AddedFieldDefinition, path: [id_text], value: "{{ record['id'] }}", value_type: string}]
      - type: RemoveFields
        field_pointers: [[tags]]
"#
}

/// Page `page` (1-based) of `total` records as a response body, built on request so this
/// process stays small (a child's peak RSS on Linux includes its parent's image before exec).
fn page_body(page: usize, total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAGE_SIZE * 260);
    out.extend_from_slice(br#"{"data": ["#);
    let from = (page.max(1) - 1) * PAGE_SIZE + 1;
    for i in from..=(page * PAGE_SIZE).min(total) {
        if i > from {
            out.extend_from_slice(b", ");
        }
        let country = ["fr", "de", "us", "jp"][i % 4];
        let _ = write!(
            out,
            r#"{{"id": {i}, "name": "user {i}", "email": "user{i}@example.com", "age": {}, "active": {}, "score": {}, "country": "{country}", "tags": ["a", "b"], "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-06-01T12:30:00Z"}}"#,
            i % 90,
            i % 3 == 0,
            i as f64 / 7.0
        );
    }
    out.extend_from_slice(b"]}");
    out
}

/// A tiny HTTP/1.1 server (keep-alive, one thread per connection) answering `?page=N` (1-based)
/// with the N-th page (empty past the end).
fn serve(total: usize) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = handle(conn, total);
            });
        }
    });
    Ok(addr)
}

fn handle(conn: TcpStream, total: usize) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
        let page: usize = request_line
            .split_whitespace()
            .nth(1)
            .and_then(|target| target.split_once('?'))
            .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("page=")))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let body = page_body(page, total);
        write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        writer.write_all(&body)?;
    }
}

/// The physical reference: every page fetched over one keep-alive connection, bodies read
/// and dropped.
fn download_all(addr: SocketAddr, pages: usize) -> Result<Measurement> {
    let started = Instant::now();
    let conn = TcpStream::connect(addr)?;
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let mut body = Vec::new();
    for page in 1..=pages {
        write!(
            writer,
            "GET /users?per_page={PAGE_SIZE}&page={page} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        )?;
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse()?;
            }
        }
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Measurement {
        elapsed: started.elapsed(),
        peak_rss_mib: 0.0,
    })
}

fn read_once(
    bench: &Bench,
    total: usize,
    manifest_text: &str,
) -> Result<(Measurement, Measurement)> {
    let bin = bench.binary("source-rest-api")?;
    let n_pages = total.div_ceil(PAGE_SIZE);
    let addr = serve(total)?;
    let manifest = bench.scratch_file("rest-api-manifest.yaml");
    std::fs::write(&manifest, manifest_text)?;
    let config = bench.scratch_file(&format!("rest-api-config-{total}.json"));
    std::fs::write(
        &config,
        json!({ "base_url": format!("http://{addr}") }).to_string(),
    )?;
    let catalog = bench.scratch_file("rest-api-catalog.json");
    std::fs::write(
        &catalog,
        json!({"streams": [{
            "stream": {"name": "users", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]})
        .to_string(),
    )?;
    let reference = download_all(addr, n_pages).context("reference download")?;
    let mut cmd = Command::new(&bin);
    cmd.arg("read")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--config")
        .arg(&config)
        .arg("--catalog")
        .arg(&catalog);
    let cpu_before = children_cpu();
    let ours = measure(&mut cmd, None)?;
    let cpu = children_cpu().saturating_sub(cpu_before);
    println!(
        "    connector CPU time (user+sys): {:.2} s, {:.0} records per CPU-second",
        cpu.as_secs_f64(),
        total as f64 / cpu.as_secs_f64().max(1e-9)
    );
    Ok((ours, reference))
}

/// User + system CPU time of the waited-for children of this process so far: on a shared
/// machine, the connector's CPU time is a steadier figure than its wall time.
fn children_cpu() -> std::time::Duration {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return std::time::Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

pub fn run(bench: &Bench) -> Result<()> {
    let (m, reference) = read_once(bench, RECORDS, MANIFEST)?;
    report("source-rest-api read > /dev/null", RECORDS as u64, None, &m);
    report(
        "reference: download the pages",
        RECORDS as u64,
        None,
        &reference,
    );
    report_ratio("source-rest-api", &m, "the bare download", &reference);
    let speed = goal(
        "≥ 200,000 records/s",
        m.per_second(RECORDS as u64) >= 200_000.0,
    );
    let memory = goal("peak RSS < 100 MB", m.peak_rss_mib * 1.048_576 < 100.0);

    let big = RECORDS * 5;
    let (m5, _) = read_once(bench, big, MANIFEST)?;
    report(
        "source-rest-api read, 5x the records",
        big as u64,
        None,
        &m5,
    );
    let flat = goal(
        "memory flat at 5x (peak RSS within 1.5x)",
        m5.peak_rss_mib <= m.peak_rss_mib * 1.5,
    );
    let general = general_manifest();
    let (mg, _) = read_once(bench, RECORDS, &general)?;
    report(
        "  with a filter and transformations",
        RECORDS as u64,
        None,
        &mg,
    );
    let transformed = goal(
        "with a filter and transformations ≥ 300,000 records/s",
        mg.per_second(RECORDS as u64) >= 300_000.0,
    );
    if !(speed && memory && flat && transformed) {
        bail!("source-rest-api missed a goal");
    }
    Ok(())
}
