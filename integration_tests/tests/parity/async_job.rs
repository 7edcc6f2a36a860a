//! Report jobs of the fake API, for `AsyncRetriever` (`manifests/reports.yaml`): `POST
//! /report_jobs` with a `{from, to}` window creates a job (`{"job": {"id": "j<n>"}}`); `GET
//! /report_jobs/<id>` answers `RUNNING` at its first poll, then `DONE` with two CSV files;
//! `POST /report_jobs/<id>/delete` deletes it (later polls and downloads get 404). The first job
//! each client (by user agent) creates for February fails at its first poll, so that each engine
//! creates it again. Both engines read at once, each job its own. Every endpoint wants the API
//! key.
//!
//! Exports, for `ResponseToFileExtractor` and a download paginator: `POST /exports?region=<r>`
//! creates one (`{"export": {"id": "e<n>"}}`), `GET /exports/<id>` answers `pending`, then
//! `ready` with its `file`, a gzipped CSV served 3 rows a page (`?page=<p>`), the next page
//! named in an `x-next-page` header.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

use crate::api::{API_KEY, Variant};
use crate::reads::{count, parity};

#[derive(Debug)]
struct Job {
    from: NaiveDate,
    to: NaiveDate,
    polls: usize,
    deleted: bool,
    /// Fails at its first poll.
    fails: bool,
}

#[derive(Debug, Default)]
struct State {
    jobs: Vec<Job>,
    /// The clients whose first February job failed.
    failed: HashSet<String>,
}

type Jobs = Arc<Mutex<State>>;

/// Jobs made to fail, by every fake API of the process.
static FAILED_JOBS: AtomicUsize = AtomicUsize::new(0);

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": message }))
}

fn keyed(req: &Request) -> bool {
    req.headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| k == API_KEY)
}

/// The job of a path `/report_jobs/j<n>[/...]`: its index.
fn job_index(path: &str) -> Option<usize> {
    let id = path.split('/').nth(2)?;
    id.strip_prefix('j')?.parse::<usize>().ok()?.checked_sub(1)
}

fn create(jobs: &Jobs, req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let day = |k: &str| {
        body[k]
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let (Some(from), Some(to)) = (day("from"), day("to")) else {
        return error(400, "from and to are required dates");
    };
    let mut state = jobs.lock().expect("lock");
    let client = req
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let fails = from.month() == 2 && state.failed.insert(client);
    if fails {
        FAILED_JOBS.fetch_add(1, Ordering::SeqCst);
    }
    state.jobs.push(Job {
        from,
        to,
        polls: 0,
        deleted: false,
        fails,
    });
    let jobs = &state.jobs;
    ResponseTemplate::new(200).set_body_json(json!({"job": {"id": format!("j{}", jobs.len())}}))
}

fn poll(jobs: &Jobs, uri: &str, req: &Request) -> ResponseTemplate {
    let mut state = jobs.lock().expect("lock");
    let index = job_index(req.url.path());
    let Some(job) = index
        .and_then(|i| state.jobs.get_mut(i))
        .filter(|j| !j.deleted)
    else {
        return error(404, "no such job");
    };
    job.polls += 1;
    if job.fails {
        return ResponseTemplate::new(200).set_body_json(json!({"state": "FAILED"}));
    }
    if job.polls == 1 {
        return ResponseTemplate::new(200).set_body_json(json!({"state": "RUNNING"}));
    }
    let id = index.map_or(0, |i| i + 1);
    let files: Vec<String> = (1..=2)
        .map(|part| format!("{uri}/report_files/j{id}/part{part}.csv"))
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"state": "DONE", "files": files}))
}

fn delete(jobs: &Jobs, req: &Request) -> ResponseTemplate {
    let mut state = jobs.lock().expect("lock");
    match job_index(req.url.path()).and_then(|i| state.jobs.get_mut(i)) {
        Some(job) => {
            job.deleted = true;
            ResponseTemplate::new(200).set_body_json(json!({"deleted": true}))
        }
        None => error(404, "no such job"),
    }
}

/// The rows of a job's window: the 3rd and 14th of each month in part 1, the 25th in part 2;
/// the 14th on the `test` channel (the manifest's filter drops them), every 25th without one.
pub fn rows(from: NaiveDate, to: NaiveDate, part: u32) -> String {
    let mut csv = String::from("id,day,amount,channel\n");
    for day in from.iter_days().take_while(|d| *d <= to) {
        let wanted = match part {
            1 => [3, 14].contains(&day.day()),
            _ => day.day() == 25,
        };
        if !wanted {
            continue;
        }
        let channel = match day.day() {
            14 => "test",
            25 => "",
            _ => "web",
        };
        csv.push_str(&format!(
            "r{},{},{}.{:02},{channel}\n",
            day.format("%Y%m%d"),
            day.format("%Y-%m-%d"),
            day.month() * 10,
            day.day()
        ));
    }
    csv
}

fn download(jobs: &Jobs, req: &Request) -> ResponseTemplate {
    let state = jobs.lock().expect("lock");
    let path = req.url.path();
    let part = match path.rsplit('/').next() {
        Some("part1.csv") => 1,
        Some("part2.csv") => 2,
        _ => return error(404, "no such file"),
    };
    match job_index(path)
        .and_then(|i| state.jobs.get(i))
        .filter(|j| !j.deleted && !j.fails && j.polls > 1)
    {
        Some(job) => ResponseTemplate::new(200)
            .insert_header("content-type", "text/csv")
            .set_body_string(rows(job.from, job.to, part)),
        None => error(404, "no such report"),
    }
}

/// The export rows of a region: 5 for `north`, 3 for `south`, with notes pandas reads as
/// missing (`NA`, empty, `n/a`, `null`).
pub fn export_rows(region: &str) -> Vec<[String; 4]> {
    let n = match region {
        "north" => 5,
        "south" => 3,
        _ => 0,
    };
    let notes = ["NA", "", "n/a", "ok", "null"];
    (0..n)
        .map(|i| {
            let sku = format!("{}{}", region[..1].to_uppercase(), i + 1);
            [
                sku,
                region.to_string(),
                (i * 7 + 1).to_string(),
                notes[i % 5].to_string(),
            ]
        })
        .collect()
}

fn export_page(region: &str, page: usize) -> ResponseTemplate {
    use std::io::Write;
    let rows = export_rows(region);
    let mut csv = String::from("sku,region,qty,note\n");
    for row in rows.iter().skip((page - 1) * 3).take(3) {
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let body = gz
        .write_all(csv.as_bytes())
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    let mut response = ResponseTemplate::new(200).set_body_bytes(body);
    if page * 3 < rows.len() {
        response = response.insert_header("x-next-page", (page + 1).to_string().as_str());
    }
    response
}

/// Mounts the export endpoints on `server`.
async fn mount_exports(server: &MockServer) {
    let exports: Arc<Mutex<Vec<(String, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let e = exports.clone();
    Mock::given(matchers::path("/exports"))
        .and(matchers::method("POST"))
        .respond_with(move |req: &Request| {
            if !keyed(req) {
                return error(401, "bad api key");
            }
            let region = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "region")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let mut e = e.lock().expect("lock");
            e.push((region, 0));
            ResponseTemplate::new(200)
                .set_body_json(json!({"export": {"id": format!("e{}", e.len())}}))
        })
        .mount(server)
        .await;
    let (e, uri) = (exports.clone(), server.uri());
    Mock::given(matchers::path_regex(r"^/exports/e\d+$"))
        .respond_with(move |req: &Request| {
            let mut e = e.lock().expect("lock");
            let index = req
                .url
                .path()
                .trim_start_matches("/exports/e")
                .parse::<usize>();
            let Some(export) = index.ok().and_then(|i| e.get_mut(i.wrapping_sub(1))) else {
                return error(404, "no such export");
            };
            export.1 += 1;
            match (keyed(req), export.1) {
                (false, _) => error(401, "bad api key"),
                (true, 1) => ResponseTemplate::new(200).set_body_json(json!({"status": "pending"})),
                (true, _) => {
                    let file = format!("{uri}/export_files/{}.csv.gz", export.0);
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"status": "ready", "file": file}))
                }
            }
        })
        .mount(server)
        .await;
    Mock::given(matchers::path_regex(r"^/export_files/[a-z]+\.csv\.gz$"))
        .respond_with(move |req: &Request| {
            let region = req
                .url
                .path()
                .trim_start_matches("/export_files/")
                .trim_end_matches(".csv.gz")
                .to_string();
            let page = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            match keyed(req) {
                true => export_page(&region, page),
                false => error(401, "bad api key"),
            }
        })
        .mount(server)
        .await;
}

/// Mounts the report job and export endpoints on `server`.
pub async fn mount(server: &MockServer) {
    mount_exports(server).await;
    let jobs: Jobs = Arc::new(Mutex::new(State::default()));
    let with_key = |f: Box<dyn Fn(&Request) -> ResponseTemplate + Send + Sync>| {
        move |req: &Request| match keyed(req) {
            true => f(req),
            false => error(401, "bad api key"),
        }
    };
    let j = jobs.clone();
    Mock::given(matchers::path("/report_jobs"))
        .and(matchers::method("POST"))
        .respond_with(with_key(Box::new(move |req| create(&j, req))))
        .mount(server)
        .await;
    let (j, uri) = (jobs.clone(), server.uri());
    Mock::given(matchers::path_regex(r"^/report_jobs/j\d+$"))
        .respond_with(with_key(Box::new(move |req| poll(&j, &uri, req))))
        .mount(server)
        .await;
    let j = jobs.clone();
    Mock::given(matchers::path_regex(r"^/report_jobs/j\d+/delete$"))
        .and(matchers::method("POST"))
        .respond_with(with_key(Box::new(move |req| delete(&j, req))))
        .mount(server)
        .await;
    Mock::given(matchers::path_regex(r"^/report_files/j\d+/part\d\.csv$"))
        .respond_with(with_key(Box::new(move |req| download(&jobs, req))))
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_async_jobs_csv_downloads_incremental_windows_partitions_paged_gzip_csv() {
    let records = parity(
        "reports.yaml",
        Variant::Standard,
        &[("report_rows", Some("day")), ("region_exports", None)],
    )
    .await;
    assert_eq!(count(&records, "region_exports"), 5 + 3);
    // Three monthly jobs, each with the 3rd and 25th of its month (the 14th filtered out).
    assert_eq!(count(&records, "report_rows"), 6);
    assert_eq!(
        FAILED_JOBS.load(Ordering::SeqCst),
        2,
        "each engine had a failed job to create again"
    );
}
