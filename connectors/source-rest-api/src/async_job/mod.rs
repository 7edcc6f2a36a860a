//! `AsyncRetriever`: records that an API prepares in a server-side job. For each slice of the
//! stream a job is created (`creation_requester`), polled (`polling_requester`, its status
//! read by `status_extractor` and `status_mapping`) until it completes, fails or times out —
//! a failed or timed-out job is created again, up to 3 attempts in all — then every download
//! target of the completed job is read (`download_requester`, `download_decoder`,
//! `download_extractor`, `download_paginator`), the records go through the retriever's
//! `record_selector` (its filter and transformations; its extractor is not used), and the job
//! is deleted (`delete_requester`). As in airbyte-cdk, requests of a job see the job's slice
//! and `creation_response`, `polling_response` and `download_target` (also under
//! `stream_slice.extra_fields`), and at most `max_concurrent_async_job_count` jobs of the
//! source run at once ([`job_slots`]).

mod download;
pub mod extract;
mod job;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use cdk::Result;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};

use crate::decoder::Decoder;
use crate::http::Response;
use crate::interpolation::{Vars, json_value, to_mj};
use crate::manifest::{Build, Component, Node};
use crate::paginator::Paginator;
use crate::partition::PartitionRouter;
use crate::read::{Msg, Slice};
use crate::requester::Requester;
use crate::selector::RecordSelector;
use crate::stream::{Retriever, StreamDef};
use crate::transform::Transformation;
use extract::{DownloadExtractor, ValueExtractor};
use status::StatusMap;

/// How many jobs a slice may create before its stream fails (airbyte-cdk's default).
const MAX_ATTEMPTS: u32 = 3;

/// airbyte-cdk's wait between two polls of the running jobs.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Sets another wait between polls, in milliseconds (for tests against a local server).
pub const POLL_INTERVAL_ENV: &str = "SOURCE_REST_API_ASYNC_POLL_MS";

/// The job parts of an `AsyncRetriever`.
#[derive(Debug)]
pub struct AsyncJobs {
    creation: Requester,
    polling: Requester,
    download: Requester,
    download_target: Option<Requester>,
    abort: Option<Requester>,
    delete: Option<Requester>,
    /// How creation, polling and download-target responses are read.
    decoder: Decoder,
    download_decoder: Decoder,
    status_extractor: ValueExtractor,
    status_map: StatusMap,
    target_extractor: Option<ValueExtractor>,
    download_extractor: DownloadExtractor,
    download_paginator: Option<Paginator>,
    /// `polling_job_timeout`: how long a job may run before it counts as timed out.
    timeout: Duration,
    /// `failed_retry_wait_time_in_seconds`: the wait before a failed job is created again.
    failed_retry_wait: Option<Duration>,
    poll_interval: Duration,
    slots: Arc<Semaphore>,
}

/// The number of jobs of a source that may run at once: the manifest's
/// `max_concurrent_async_job_count` (a number or a template of the config), 1 when missing,
/// invalid or below 1 (and at most 10,000).
pub fn job_slots(value: Option<&Value>, b: &Build) -> usize {
    let n = match value {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(1),
        Some(Value::String(s)) => eval_int(s, b).unwrap_or_else(|| {
            tracing::warn!("cannot evaluate max_concurrent_async_job_count '{s}'; using 1");
            1
        }),
        Some(other) => {
            tracing::warn!("max_concurrent_async_job_count {other} is not a number; using 1");
            1
        }
    };
    usize::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .unwrap_or(1)
        .min(MAX_JOB_SLOTS)
}

/// More jobs at once than any API allows (and within what a semaphore holds).
const MAX_JOB_SLOTS: usize = 10_000;

/// An integer field that may be a template of the config.
fn eval_int(text: &str, b: &Build) -> Option<i64> {
    let t =
        crate::interpolation::Template::new(&b.interp, text, &Value::Object(Map::new())).ok()?;
    match t.eval(&Vars::new()).ok()? {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

/// `polling_job_timeout` and `failed_retry_wait_time_in_seconds`: a number or a template.
fn int_field(c: &mut Component<'_>, b: &Build, key: &str) -> Result<Option<i64>> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => eval_int(&s, b)
            .map(Some)
            .ok_or_else(|| c.error(format!("'{key}' must evaluate to an integer, got '{s}'"))),
        Some(other) => Err(c.error(format!("'{key}' must be an integer, got {other}"))),
    }
}

fn optional(c: &mut Component<'_>, b: &Build, key: &str) -> Result<Option<Requester>> {
    c.child(key).map(|n| Requester::decode(n, b)).transpose()
}

/// Decodes an `AsyncRetriever` into the stream's retriever.
pub fn decode_retriever(
    mut r: Component<'_>,
    b: &Build,
    transformations: Vec<Transformation>,
    schema: &Value,
) -> Result<Retriever> {
    r.ignore(&["name", "primary_key"]);
    let creation_node = r.required_child("creation_requester")?;
    let creation = Requester::decode(creation_node.clone(), b)?;
    let polling = Requester::decode(r.required_child("polling_requester")?, b)?;
    let download = Requester::decode(r.required_child("download_requester")?, b)?;
    let download_target = optional(&mut r, b, "download_target_requester")?;
    let target_extractor = r
        .child("download_target_extractor")
        .map(|n| ValueExtractor::decode(n, b))
        .transpose()?;
    if download_target.is_some() && target_extractor.is_none() {
        return Err(r.error("a download_target_requester needs a download_target_extractor"));
    }
    let timeout = match int_field(&mut r, b, "polling_job_timeout")? {
        Some(m) if m > 0 => m as u64,
        _ => 60,
    };
    let failed_retry_wait = match int_field(&mut r, b, "failed_retry_wait_time_in_seconds")? {
        Some(s) if s <= 0 => {
            return Err(r.error("failed_retry_wait_time_in_seconds must be at least 1"));
        }
        s => s.map(|s| Duration::from_secs(s as u64)),
    };
    let poll_interval = std::env::var(POLL_INTERVAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(POLL_INTERVAL, Duration::from_millis);
    let jobs = AsyncJobs {
        creation,
        polling,
        download,
        download_target,
        abort: optional(&mut r, b, "abort_requester")?,
        delete: optional(&mut r, b, "delete_requester")?,
        decoder: Decoder::decode_node(r.child("decoder"))?,
        download_decoder: Decoder::decode_node(r.child("download_decoder"))?,
        status_extractor: ValueExtractor::decode(r.required_child("status_extractor")?, b)?,
        status_map: StatusMap::decode(r.required_child("status_mapping")?)?,
        target_extractor,
        download_extractor: DownloadExtractor::decode(r.child("download_extractor"), b)?,
        download_paginator: Paginator::decode(r.child("download_paginator"), b)?,
        timeout: Duration::from_secs(timeout.saturating_mul(60)),
        failed_retry_wait,
        poll_interval,
        slots: b.job_slots.clone(),
    };
    let requesters = [
        ("creation_requester", Some(&jobs.creation)),
        ("polling_requester", Some(&jobs.polling)),
        ("download_requester", Some(&jobs.download)),
        ("download_target_requester", jobs.download_target.as_ref()),
        ("abort_requester", jobs.abort.as_ref()),
        ("delete_requester", jobs.delete.as_ref()),
    ];
    for (field, requester) in requesters {
        if let Some(q) = requester {
            q.refuse_retriever_actions(&format!("`{field}` of the AsyncRetriever"))?;
        }
    }
    let mut selector =
        RecordSelector::decode(r.required_child("record_selector")?, b, transformations)?;
    selector.set_schema(schema);
    let router = match r.child("partition_router") {
        Some(Node {
            value: Value::Array(a),
            ..
        }) if a.is_empty() => None,
        Some(n) => Some(Arc::new(PartitionRouter::decode(n, b)?)),
        None => None,
    };
    let decoder = jobs.decoder.clone();
    r.finish()?;
    Ok(Retriever {
        // Not sent: the jobs make every request of an async stream.
        requester: Requester::decode(creation_node, b)?,
        selector,
        paginator: None,
        decoder,
        router,
        ignore_slicer_on_paginated: false,
        actions: Default::default(),
        jobs: Some(Arc::new(jobs)),
    })
}

impl AsyncJobs {
    /// Reads one slice: its job made, waited for, downloaded and deleted.
    pub async fn read_slice(
        &self,
        stream: &StreamDef,
        slice: &Slice,
        id: u64,
        tx: &mpsc::Sender<Msg>,
    ) -> Result<()> {
        let notice = |reset: Option<i64>| {
            let _ = tx.try_send(Msg::RateLimited(reset));
        };
        let Some(done) = self.complete(stream, slice, &notice).await? else {
            return Ok(());
        };
        self.download_all(stream, slice, &done, id, tx, &notice)
            .await?;
        self.delete(stream, slice, &done, &notice).await
    }
}

/// The variables of a job's request: the slice's, with `extras` as top-level variables and in
/// `stream_slice.extra_fields`.
fn job_vars(stream: &StreamDef, slice: &Slice, extras: &[(&'static str, &Value)]) -> Vars {
    let mut s = slice.clone();
    for (k, v) in extras {
        s.extra_fields.insert((*k).to_string(), (*v).clone());
    }
    let mut vars = s
        .vars(stream)
        .with("stream_state", to_mj(Map::<String, Value>::new()));
    for (k, v) in extras {
        vars.set(k, json_value(Arc::new((*v).clone())));
    }
    vars
}

/// What templates see of a job response (`creation_response`, `polling_response`): its JSON
/// object, with `headers` added unless it has such a key.
fn response_context(resp: &Response, what: &str) -> Result<Value> {
    let mut v: Value = serde_json::from_slice(&resp.body).map_err(|e| {
        cdk::Error::system(format!(
            "the {what} response is not JSON ({e}): {}",
            crate::decoder::snippet(&resp.body)
        ))
    })?;
    let Value::Object(m) = &mut v else {
        return Err(cdk::Error::system(format!(
            "the {what} response is not a JSON object: {}",
            crate::decoder::snippet(&resp.body)
        )));
    };
    if !m.contains_key("headers") {
        let headers: Map<String, Value> = resp
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
            .collect();
        m.insert("headers".into(), Value::Object(headers));
    }
    Ok(v)
}

/// A slice in an error message: its partition and its cursor interval.
fn describe(slice: &Slice) -> String {
    let partition = Value::Object((*slice.partition).clone());
    match &slice.interval {
        Some(i) => format!("{partition} [{} .. {}]", i.start_text, i.end_text),
        None => partition.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::source::Declarative;

    /// A manifest with an async stream using most of the retriever's fields, to mutate.
    fn base() -> Value {
        let requester = |path: &str| json!({"type": "HttpRequester", "url_base": "{{ config['base_url'] }}", "path": path});
        json!({"version": "6.0.0", "type": "DeclarativeSource", "max_concurrent_async_job_count": 2,
          "streams": [{"type": "DeclarativeStream", "name": "r", "primary_key": ["id"],
            "retriever": {"type": "AsyncRetriever",
              "record_selector": {"type": "RecordSelector",
                "extractor": {"type": "DpathExtractor", "field_path": []},
                "record_filter": {"type": "RecordFilter", "condition": "{{ record.a }}"}},
              "status_mapping": {"type": "AsyncJobStatusMap", "running": ["r"], "completed": ["c"],
                "failed": ["f"], "timeout": ["t"], "skipped": ["s"]},
              "status_extractor": {"type": "DpathExtractor", "field_path": ["status"]},
              "download_target_extractor": {"type": "DpathExtractor", "field_path": ["urls", "*"]},
              "download_extractor": {"type": "ResponseToFileExtractor", "preserve_na_values": true},
              "creation_requester": requester("/jobs"),
              "polling_requester": requester("/jobs/{{ creation_response.id }}"),
              "download_requester": {"type": "HttpRequester", "url": "{{ download_target }}"},
              "download_target_requester": requester("/jobs/{{ polling_response.id }}/urls"),
              "abort_requester": requester("/abort"),
              "delete_requester": requester("/delete"),
              "download_decoder": {"type": "CsvDecoder"},
              "download_paginator": {"type": "DefaultPaginator",
                "pagination_strategy": {"type": "PageIncrement", "page_size": 2},
                "page_token_option": {"type": "RequestOption", "inject_into": "request_parameter", "field_name": "p"}},
              "polling_job_timeout": "{{ config['minutes'] }}",
              "failed_retry_wait_time_in_seconds": 3,
              "partition_router": {"type": "ListPartitionRouter", "cursor_field": "k", "values": ["a", "b"]}}}]})
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any value anywhere in an async stream's manifest: it loads or is refused, never a
        /// panic.
        #[test]
        fn mutated_async_manifests_load_or_fail(
            picks in prop::collection::vec((any::<prop::sample::Index>(), crate::mutate::replacement()), 1..4)
        ) {
            let mut m = base();
            crate::mutate::mutate(&mut m, picks);
            let config = json!({"base_url": "http://127.0.0.1:9", "minutes": "x"});
            let _ = Declarative::decode(&m, &config, None);
        }
    }

    #[test]
    fn the_base_async_manifest_loads() {
        let config = json!({"base_url": "http://127.0.0.1:9", "minutes": 5});
        let d = Declarative::decode(&base(), &config, None).expect("loads");
        assert!(d.streams[0].retriever.jobs.is_some());
        let mut long = base();
        long["streams"][0]["retriever"]["polling_job_timeout"] = json!(i64::MAX);
        Declarative::decode(&long, &config, None).expect("a long timeout loads");
        let mut no_extractor = base();
        no_extractor["streams"][0]["retriever"]
            .as_object_mut()
            .map(|r| r.remove("download_target_extractor"));
        let e = Declarative::decode(&no_extractor, &config, None).expect_err("refused");
        assert!(
            e.message.contains("needs a download_target_extractor"),
            "{}",
            e.message
        );
    }

    fn response(body: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("X-Job".into(), "7".into())],
            body: bytes::Bytes::from(body.to_string()),
            url: "http://x".into(),
            redo: None,
        }
    }

    #[test]
    fn a_response_context_is_its_object_with_headers() {
        let v = response_context(&response(r#"{"id": 3}"#), "job creation").unwrap();
        assert_eq!(v, json!({"id": 3, "headers": {"x-job": "7"}}));
        let own = response_context(&response(r#"{"headers": 1}"#), "x").unwrap();
        assert_eq!(own, json!({"headers": 1}));
        for garbage in ["[1]", "nope", "", "\"s\""] {
            assert!(
                response_context(&response(garbage), "x").is_err(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn the_job_limit_is_at_least_one() {
        let b = Build::new(&json!({"n": "4"}), None, 1);
        assert_eq!(job_slots(None, &b), 1);
        assert_eq!(job_slots(Some(&json!(3)), &b), 3);
        assert_eq!(job_slots(Some(&json!(0)), &b), 1);
        assert_eq!(job_slots(Some(&json!("{{ config['n'] }}")), &b), 4);
        assert_eq!(job_slots(Some(&json!("{{ nonsense(")), &b), 1);
        assert_eq!(job_slots(Some(&json!([1])), &b), 1);
        assert_eq!(job_slots(Some(&json!(i64::MAX)), &b), MAX_JOB_SLOTS);
    }
}
