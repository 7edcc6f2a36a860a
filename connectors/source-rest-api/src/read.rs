//! Reading a stream: slices (partitions × cursor intervals) are made as partitions are found and
//! read concurrently up to the concurrency level, each page by page. Pages go to one consumer
//! as messages, in order per slice, so records stream through with one page per slice in
//! memory and the consumer keeps the state.

use std::sync::Arc;

use cdk::Error;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::actions::page_size::Reducer;
use crate::actions::reset::Tracker;
use crate::cursor::Interval;
use crate::decoder::Decoder;
use crate::http::Redo;
use crate::interpolation::datetime::Dt;
use crate::interpolation::{Headers, Vars, json_value, to_mj};
use crate::paginator::LastPage;
use crate::partition::Partition;
use crate::query_properties::QueryProperties;
use crate::request_option::RequestParts;
use crate::requester::Call;
use crate::selector::Records;
use crate::stream::StreamDef;

/// The state value to start a partition from (`None`: the configured start).
pub type StartFn = Arc<dyn Fn(&Map<String, Value>) -> Option<Dt> + Send + Sync>;

pub struct Plan {
    pub stream: Arc<StreamDef>,
    pub starts: Option<StartFn>,
    pub concurrency: usize,
    /// Only the first page of the first slice (for `check`).
    pub first_page_only: bool,
    /// What templates see as `stream_state`: the state the read started from (`{}` without).
    pub state: Option<Arc<Value>>,
}

/// What a read reports to its consumer.
#[derive(Debug)]
pub enum Msg {
    /// A slice starts: its partition, and where its partition's cursor starts.
    Slice {
        id: u64,
        partition: Arc<Map<String, Value>>,
        sync_start: Option<Dt>,
        /// The partition's first slice starts after a gap (`DatetimeCursor::leaves_gap`).
        gap: bool,
    },
    Page {
        id: u64,
        records: Records,
    },
    Done {
        id: u64,
    },
    RateLimited(Option<i64>),
    Failed(Error),
}

/// Aborts the read when dropped (the consumer stopped early).
pub struct Guard(JoinHandle<()>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One unit of reading.
#[derive(Debug, Clone)]
pub struct Slice {
    pub partition: Arc<Map<String, Value>>,
    pub interval: Option<Interval>,
    pub injections: Vec<(Arc<crate::request_option::RequestOption>, Value)>,
    pub extra_fields: Map<String, Value>,
    /// Where the partition's cursor starts (what a client-side incremental cursor drops
    /// records below).
    pub floor: Option<Dt>,
}

impl Slice {
    /// `stream_partition`, `stream_interval` and `stream_slice` (both merged).
    pub fn vars(&self, stream: &StreamDef) -> Vars {
        let mut interval = Map::new();
        if let (Some(i), Some(c)) = (&self.interval, &stream.cursor) {
            interval.insert(c.field_start.clone(), Value::String(i.start_text.clone()));
            interval.insert(c.field_end.clone(), Value::String(i.end_text.clone()));
        }
        let mut merged = (*self.partition).clone();
        merged.extend(interval.clone());
        if !self.extra_fields.is_empty() {
            merged.insert(
                "extra_fields".into(),
                Value::Object(self.extra_fields.clone()),
            );
        }
        Vars::new()
            .with("stream_partition", to_mj(&*self.partition))
            .with("stream_interval", to_mj(&interval))
            .with("stream_slice", to_mj(&merged))
    }
}

pub fn spawn(plan: Plan, tx: mpsc::Sender<Msg>) -> Guard {
    Guard(tokio::spawn(async move {
        if let Err(e) = produce(&plan, &tx).await {
            let _ = tx.send(Msg::Failed(e)).await;
        }
    }))
}

/// Reads one slice of `stream` with `partition` as its partition (no cursor interval).
pub fn spawn_partition(
    stream: Arc<StreamDef>,
    partition: Map<String, Value>,
    tx: mpsc::Sender<Msg>,
) -> Guard {
    Guard(tokio::spawn(async move {
        let slice = Slice {
            partition: Arc::new(partition),
            interval: None,
            injections: Vec::new(),
            extra_fields: Map::new(),
            floor: None,
        };
        if let Err(e) = read_slice(&stream, &slice, None, 0, &tx, false).await {
            let _ = tx.send(Msg::Failed(e)).await;
        }
    }))
}

async fn produce(plan: &Plan, tx: &mpsc::Sender<Msg>) -> cdk::Result<()> {
    let stream = &plan.stream;
    let bounds = match &stream.cursor {
        Some(c) => Some((c.start_datetime()?, c.end_datetime()?)),
        None => None,
    };
    let mut partitions = match &stream.retriever.router {
        Some(r) => r.partitions(plan.concurrency),
        None => {
            let (ptx, prx) = mpsc::channel(1);
            let _ = ptx.send(Ok(Partition::default())).await;
            prx
        }
    };
    let limit = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let mut workers = JoinSet::new();
    let mut id = 0u64;
    'partitions: while let Some(p) = partitions.recv().await {
        let p = p?;
        let partition = Arc::new(p.values);
        let (intervals, sync_start) = match (&stream.cursor, bounds) {
            (Some(c), Some((start, end))) => {
                let state = plan.starts.as_ref().and_then(|f| f(&partition));
                let sync = c.sync_start(start, state);
                (
                    c.intervals(sync, end).into_iter().map(Some).collect(),
                    Some(sync),
                )
            }
            _ => (vec![None], None),
        };
        let gap = match (&stream.cursor, sync_start, intervals.first()) {
            (Some(c), Some(s), Some(Some(first))) => c.leaves_gap(s, first.start),
            _ => false,
        };
        for interval in intervals {
            let mut injections = p.injections.clone();
            if let (Some(i), Some(c)) = (&interval, &stream.cursor) {
                push_interval_options(c, i, &mut injections);
            }
            let slice = Slice {
                partition: partition.clone(),
                interval,
                injections,
                extra_fields: p.extra_fields.clone(),
                floor: sync_start,
            };
            let permit = limit
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| Error::system(e.to_string()))?;
            id += 1;
            let msg = Msg::Slice {
                id,
                partition: partition.clone(),
                sync_start,
                gap,
            };
            if tx.send(msg).await.is_err() {
                return Ok(());
            }
            let (stream, tx, first) = (stream.clone(), tx.clone(), plan.first_page_only);
            let state = plan.state.clone();
            let slice_id = id;
            workers.spawn(async move {
                let result = read_slice(&stream, &slice, state, slice_id, &tx, first).await;
                drop(permit);
                match result {
                    Ok(()) => {
                        let _ = tx.send(Msg::Done { id: slice_id }).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Failed(e)).await;
                    }
                }
            });
            while workers.try_join_next().is_some() {}
            if plan.first_page_only {
                break 'partitions;
            }
        }
    }
    while workers.join_next().await.is_some() {}
    Ok(())
}

fn last_record(records: &Records) -> cdk::Result<Option<Value>> {
    match records.len() {
        0 => Ok(None),
        n => records.get(n - 1),
    }
}

/// How many records of the page are emitted and the last of them, as airbyte-cdk's cursor
/// pagination sees them: after the record filter and, for a client-side incremental cursor,
/// after the records below the partition's start are dropped.
fn emitted_view(
    stream: &StreamDef,
    slice: &Slice,
    records: &Records,
) -> cdk::Result<(usize, Option<Value>)> {
    let Some(cursor) = stream.cursor.as_ref().filter(|c| c.client_side) else {
        return Ok((records.len(), last_record(records)?));
    };
    let (mut count, mut index, mut last) = (0, 0, None);
    records.for_each(|r| {
        let dt = r
            .field(&cursor.cursor_field)
            .and_then(|v| cursor.parse_value(&v));
        if !dt.is_some_and(|dt| crate::stream::client_side_drops(cursor, slice.floor, dt)) {
            count += 1;
            last = Some(index);
        }
        index += 1;
        Ok(())
    })?;
    let last = match last {
        None => None,
        Some(i) => records.get(i)?,
    };
    Ok((count, last))
}

/// The `stream_state` of a slice: a stream's state as is; of a partitioned state, the cursor
/// of the slice's partition, else the global cursor; `{}` without state.
/// No state: absent, null or an empty object.
fn is_empty_state(s: &Value) -> bool {
    s.is_null() || s.as_object().is_some_and(|m| m.is_empty())
}

fn state_of(state: Option<&Value>, partition: &Map<String, Value>) -> Value {
    let Some(state) = state else {
        return Value::Object(Map::new());
    };
    let Some(Value::Array(states)) = state.get("states") else {
        return state.clone();
    };
    let key = crate::state::partition_key(&Value::Object(partition.clone()));
    states
        .iter()
        .find(|e| {
            e.get("partition")
                .is_some_and(|p| crate::state::partition_key(p) == key)
        })
        .and_then(|e| e.get("cursor"))
        .or_else(|| state.get("state"))
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// How the read of one window ended.
enum Pages {
    /// Every page was read.
    Done,
    /// The consumer is gone.
    Stopped,
    /// The API asked for a smaller window (with the filter's message) after `emitted` records.
    Split(Option<String>, usize),
}

/// Reads every page of one slice, reading its window again in halves when the API asks to.
async fn read_slice(
    stream: &StreamDef,
    slice: &Slice,
    state: Option<Arc<Value>>,
    id: u64,
    tx: &mpsc::Sender<Msg>,
    first_page_only: bool,
) -> cdk::Result<()> {
    if let Some(jobs) = &stream.retriever.jobs {
        return jobs.read_slice(stream, slice, id, tx).await;
    }
    let mut todo = vec![(slice.clone(), 0u32)];
    while let Some((window, depth)) = todo.pop() {
        let (rejection, emitted) =
            match read_window(stream, &window, state.clone(), id, tx, first_page_only).await? {
                Pages::Done => continue,
                Pages::Stopped => return Ok(()),
                Pages::Split(rejection, emitted) => (rejection, emitted),
            };
        let (Some(config), Some(cursor), Some(interval)) = (
            &stream.retriever.actions.window,
            &stream.cursor,
            &window.interval,
        ) else {
            return Err(Error::config(format!(
                "stream '{}' resolves to a request window split but is not set up to split its \
                 window: add `request_window_splitting` to the stream's retriever (this requires \
                 a datetime-based incremental cursor with `cursor_granularity` set), or remove \
                 the SPLIT_REQUEST_WINDOW action from its error handler",
                stream.name
            )));
        };
        if emitted > 0 {
            tracing::warn!(stream = %stream.name, emitted, "records of the window were emitted before the API refused it; reading it again in halves may emit them again");
        }
        let halves =
            config.children(&stream.name, cursor, interval, depth, rejection.as_deref())?;
        for half in halves.into_iter().rev() {
            todo.push((with_interval(stream, &window, half), depth + 1));
        }
    }
    Ok(())
}

/// The request options of an interval's bounds (`start_time_option`, `end_time_option`).
fn push_interval_options(
    cursor: &crate::cursor::DatetimeCursor,
    interval: &Interval,
    injections: &mut Vec<(Arc<crate::request_option::RequestOption>, Value)>,
) {
    if let Some(o) = &cursor.start_option {
        injections.push((
            Arc::new(o.clone()),
            Value::String(interval.start_text.clone()),
        ));
    }
    if let Some(o) = &cursor.end_option {
        injections.push((
            Arc::new(o.clone()),
            Value::String(interval.end_text.clone()),
        ));
    }
}

/// `slice` over another interval of its partition.
fn with_interval(stream: &StreamDef, slice: &Slice, interval: Interval) -> Slice {
    let mut out = slice.clone();
    if let Some(c) = &stream.cursor {
        if slice.interval.is_some() {
            let n = usize::from(c.start_option.is_some()) + usize::from(c.end_option.is_some());
            out.injections
                .truncate(out.injections.len().saturating_sub(n));
        }
        push_interval_options(c, &interval, &mut out.injections);
    }
    out.interval = Some(interval);
    out
}

/// The highest cursor value of a page's records.
fn highest_cursor(
    cursor: &crate::cursor::DatetimeCursor,
    records: &Records,
) -> cdk::Result<Option<Dt>> {
    let mut max: Option<Dt> = None;
    records.for_each(|r| {
        if let Some(dt) = r
            .field(&cursor.cursor_field)
            .and_then(|v| cursor.parse_value(&v))
            && max.is_none_or(|m| dt > m)
        {
            max = Some(dt);
        }
        Ok(())
    })?;
    Ok(max)
}

/// Reads every page of one window: a smaller page when the API asks for one, from the first
/// page again on `RESET_PAGINATION` or `pagination_reset`'s limit.
async fn read_window(
    stream: &StreamDef,
    slice: &Slice,
    state: Option<Arc<Value>>,
    id: u64,
    tx: &mpsc::Sender<Msg>,
    first_page_only: bool,
) -> cdk::Result<Pages> {
    let r = &stream.retriever;
    let state_in = state.as_deref().filter(|s| !is_empty_state(s));
    let state = json_value(Arc::new(state_of(state.as_deref(), &slice.partition)));
    let mut window = slice.clone();
    let mut base_vars = window.vars(stream).with("stream_state", state.clone());
    let notice = |reset: Option<i64>| {
        let _ = tx.try_send(Msg::RateLimited(reset));
    };
    let mut reducer = r.actions.page_size.as_ref().map(|c| {
        let configured = r.paginator.as_ref().and_then(|p| p.page_size());
        Reducer::new(c, configured, &stream.name)
    });
    let mut tracker = Tracker::new(r.actions.reset.as_ref(), stream.cursor.as_ref());
    let mut token = r.paginator.as_ref().and_then(|p| p.initial_token());
    let mut emitted_total = 0usize;
    // A first sync of a child whose parent embeds its first page reads that page from there.
    let mut embedded = match (&r.router, &state_in) {
        (Some(router), None) if router.reads_lazily() => window
            .extra_fields
            .get(crate::partition::LAZY_RESPONSE)
            .map(|v| crate::http::Response {
                status: 200,
                headers: Vec::new(),
                body: serde_json::to_vec(v).unwrap_or_default().into(),
                url: String::new(),
                redo: None,
            }),
        _ => None,
    };
    loop {
        let size_override = reducer.as_ref().and_then(Reducer::size_override);
        let mut vars = base_vars.clone();
        if let Some(t) = &token {
            let mut m = Map::new();
            m.insert("next_page_token".into(), t.clone());
            vars.set("next_page_token", to_mj(&m));
        }
        let mut extra = RequestParts::default();
        if !(r.ignore_slicer_on_paginated && token.is_some()) {
            for (opt, v) in &window.injections {
                opt.inject(v, &vars, &mut extra)?;
            }
        }
        if let Some(p) = &r.paginator {
            p.inject_sized(token.as_ref(), size_override, &vars, &mut extra)?;
        }
        let call = Call {
            vars: &vars,
            extra,
            path_override: r.paginator.as_ref().and_then(|p| p.path(token.as_ref())),
            notice: Some(&notice),
        };
        let (sent, chunked) = match (embedded.take(), &r.requester.query_properties) {
            (Some(page), _) => (Some(page), None),
            (None, None) => (r.requester.send(&call).await?, None),
            (None, Some(qp)) => {
                let (sent, prior) = send_chunks(stream, qp, &call).await?;
                (sent, Some((qp, prior)))
            }
        };
        let Some(resp) = sent else {
            if let Some(rd) = reducer.as_mut() {
                rd.on_successful_page();
            }
            // The last chunk ignored: the earlier chunks' records still come, and the page is
            // the last one, as in airbyte-cdk.
            if let Some((qp, prior)) = chunked
                && !prior.is_empty()
            {
                let records = Records::Values(qp.merge(prior));
                if tx.send(Msg::Page { id, records }).await.is_err() {
                    return Ok(Pages::Stopped);
                }
            }
            break;
        };
        match &resp.redo {
            Some(Redo::ReducePageSize(message)) => {
                let Some(rd) = reducer.as_mut() else {
                    return Err(Error::config(format!(
                        "stream '{}' resolves an API response to the REDUCE_PAGE_SIZE action but \
                         is not set up to send a smaller page: add `page_size_reduction` to the \
                         stream's retriever, or remove the REDUCE_PAGE_SIZE action from its error \
                         handler",
                        stream.name
                    )));
                };
                rd.reduce(message.as_deref()).await?;
                continue;
            }
            Some(Redo::SplitWindow(message)) => {
                return Ok(Pages::Split(message.clone(), emitted_total));
            }
            Some(Redo::ResetPagination) => {}
            None => {
                if let Some(rd) = reducer.as_mut() {
                    rd.on_successful_page();
                }
                let page = Page {
                    vars,
                    resp,
                    size_override,
                    token: token.as_ref(),
                    chunked,
                };
                let (records, next) =
                    read_page(stream, &window, page, &mut tracker, first_page_only).await?;
                emitted_total += records.len();
                if tx.send(Msg::Page { id, records }).await.is_err() {
                    return Ok(Pages::Stopped);
                }
                if first_page_only {
                    break;
                }
                if !tracker.reached_limit() {
                    match next {
                        Some(t) if Some(&t) != token.as_ref() => {
                            token = Some(t);
                            continue;
                        }
                        Some(t) => {
                            return Err(Error::system(format!(
                                "stream '{}': the paginator returned the same page token twice ({t}); stopping to avoid a loop",
                                stream.name
                            )));
                        }
                        None => break,
                    }
                }
            }
        }
        // From the first page again, over the same window or from the highest cursor value read.
        token = r.paginator.as_ref().and_then(|p| p.initial_token());
        let restarted = tracker.restart(window.interval.as_ref(), slice.interval.as_ref())?;
        if let Some(i) = restarted
            && Some(&i) != window.interval.as_ref()
        {
            window = with_interval(stream, &window, i);
            base_vars = window.vars(stream).with("stream_state", state.clone());
        }
        tracing::info!(stream = %stream.name, start = window.interval.as_ref().map(|i| i.start_text.as_str()),
            "pagination reset: reading the slice again from its first page");
    }
    Ok(Pages::Done)
}

/// A response taken as a page, with what its request was made with.
struct Page<'a> {
    vars: Vars,
    resp: crate::http::Response,
    size_override: Option<i64>,
    token: Option<&'a Value>,
    /// With `QueryProperties`: the component and the records of the page's earlier chunks
    /// (this response is the last chunk's).
    chunked: Option<(&'a QueryProperties, Vec<Value>)>,
}

/// Sends one request per chunk of query properties. Returns the last chunk's response (or the
/// first one the read must act on) and the records of the chunks before it.
async fn send_chunks(
    stream: &StreamDef,
    qp: &QueryProperties,
    call: &Call<'_>,
) -> cdk::Result<(Option<crate::http::Response>, Vec<Value>)> {
    let r = &stream.retriever;
    let chunks = qp.chunks(r.requester.catalog_schema(&stream.name)).await?;
    let mut prior = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut extra = call.extra.clone();
        extra.params.retain(|(k, _)| *k != qp.key);
        extra.params.insert(0, (qp.key.clone(), chunk.join(",")));
        let one = Call {
            vars: call.vars,
            extra,
            path_override: call.path_override.clone(),
            notice: call.notice,
        };
        let sent = r.requester.send(&one).await?;
        let is_last = i + 1 == chunks.len();
        match sent {
            Some(resp) if resp.redo.is_some() || is_last => return Ok((Some(resp), prior)),
            Some(resp) => prior.extend(chunk_records(stream, &resp, call.vars).await?),
            None => {}
        }
    }
    Ok((None, prior))
}

/// The records of one chunk's response, selected and transformed.
async fn chunk_records(
    stream: &StreamDef,
    resp: &crate::http::Response,
    vars: &Vars,
) -> cdk::Result<Vec<Value>> {
    let r = &stream.retriever;
    let mut records = Vec::new();
    for doc in r.decoder.decode(&resp.body)?.iter_mut() {
        let (found, _) = r.selector.extract_counting(doc, true).await?;
        records.extend(found);
    }
    r.selector.select(records, vars)
}

/// The records of a page and the token of the next one (`None` on the last page or when
/// `pagination_reset`'s limit is reached).
async fn read_page(
    stream: &StreamDef,
    slice: &Slice,
    page: Page<'_>,
    tracker: &mut Tracker<'_>,
    first_page_only: bool,
) -> cdk::Result<(Records, Option<Value>)> {
    let r = &stream.retriever;
    let (vars, resp) = (page.vars, page.resp);
    let raw = r.decoder == Decoder::Json && r.selector.passes_raw();
    let needs_response = r.paginator.as_ref().is_some_and(|p| p.uses_response());
    // How many records the API returned, before any filter: the page-counting paginators
    // decide from this, so a filter can neither end the pagination nor shorten an offset.
    let extracted;
    let (records, first_doc) = if raw {
        let spans = r.selector.extract_raw(&resp.body)?;
        extracted = spans.len();
        let first = if needs_response && !first_page_only {
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        (
            Records::Raw {
                body: resp.body.clone(),
                spans,
            },
            first,
        )
    } else {
        let mut docs = r.decoder.decode(&resp.body)?;
        let mut records = Vec::new();
        let mut dropped = 0;
        for doc in docs.iter_mut() {
            let (found, empty) = r.selector.extract_counting(doc, !needs_response).await?;
            records.extend(found);
            dropped += empty;
        }
        extracted = records.len() + dropped;
        let records = r.selector.select(records, &vars)?;
        (
            Records::Values(records),
            docs.into_iter().next().unwrap_or(Value::Null),
        )
    };
    let records = match page.chunked {
        Some((qp, mut prior)) => {
            prior.extend(records.into_values()?);
            Records::Values(qp.merge(prior))
        }
        None => records,
    };
    let paginates = r.paginator.is_some() && !first_page_only;
    let (emitted, last) = match paginates {
        true => emitted_view(stream, slice, &records)?,
        false => (records.len(), None),
    };
    let highest = match tracker.uses_cursor() {
        Some(c) => highest_cursor(c, &records)?,
        None => None,
    };
    tracker.observe(emitted, highest);
    let next = match &r.paginator {
        Some(p) if !first_page_only && !tracker.reached_limit() => {
            let mut pvars = vars
                .with("response", json_value(Arc::new(first_doc)))
                .with(
                    "headers",
                    minijinja::Value::from_object(Headers::new(resp.headers)),
                )
                .with("last_page_size", minijinja::Value::from(emitted));
            if let Some(last) = last {
                pvars.set("last_record", json_value(Arc::new(last)));
            }
            let last = LastPage {
                vars: &pvars,
                extracted,
                page_size_override: page.size_override,
            };
            p.next_token(&last, page.token)?
        }
        _ => None,
    };
    // `is_data_feed`: a page whose last record is older than the slice ends the read.
    let next = match (&stream.cursor, &slice.interval) {
        (Some(c), Some(i)) if next.is_some() && c.data_feed => {
            if c.feed_ends(i, last_record(&records)?.as_ref()) {
                None
            } else {
                next
            }
        }
        _ => next,
    };
    Ok((records, next))
}
