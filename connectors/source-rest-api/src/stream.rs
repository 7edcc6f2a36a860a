//! `DeclarativeStream` and `SimpleRetriever`: how a stream is decoded, what discover shows of
//! it, and its read — records written as pages arrive, state emitted as slices complete.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cdk::{ReadContext, RecordWriter, Result, TrustedJson};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cursor::DatetimeCursor;
use crate::decoder::Decoder;
use crate::dependency::with_parent_state;
use crate::file_uploader::FileUploader;
use crate::interpolation::datetime::Dt;
use crate::manifest::{Build, Component, Node, unsupported_type};
use crate::paginator::Paginator;
use crate::partition::PartitionRouter;
use crate::read::{self, Msg, Plan};
use crate::requester::Requester;
use crate::schema;
use crate::selector::{RecordRef, RecordSelector, Records};
use crate::state::{InputState, StateKeeper};
use crate::transform::Transformation;

#[derive(Debug)]
pub struct StreamDef {
    pub name: String,
    pub primary_key: Vec<Vec<String>>,
    pub schema: Value,
    pub retriever: Retriever,
    pub cursor: Option<DatetimeCursor>,
    pub concurrency: usize,
    /// `state_migrations`, applied to the incoming state.
    pub migrations: Vec<crate::migration::StateMigration>,
    /// A `StateDelegatingStream`'s incremental stream (this one is its full refresh stream).
    pub delegate: Option<crate::delegating::Delegate>,
    /// `file_uploader`: each record's file is downloaded and sent with it.
    pub file_uploader: Option<FileUploader>,
}

#[derive(Debug)]
pub struct Retriever {
    pub requester: Requester,
    pub selector: RecordSelector,
    pub paginator: Option<Paginator>,
    pub decoder: Decoder,
    pub router: Option<Arc<PartitionRouter>>,
    pub ignore_slicer_on_paginated: bool,
    /// `page_size_reduction`, `request_window_splitting` and `pagination_reset`.
    pub actions: crate::actions::Actions,
    /// An `AsyncRetriever`'s jobs, which make its requests.
    pub jobs: Option<Arc<crate::async_job::AsyncJobs>>,
}

impl StreamDef {
    /// A stream called `name` reading `c`'s own `retriever`: what a resolver, a schema loader
    /// or a property list that reads an endpoint of its own runs.
    pub fn of_retriever(c: &mut Component<'_>, b: &Build, name: &str) -> Result<Self> {
        let retriever = c.required("retriever")?;
        let path = format!("{}/retriever", c.at());
        Self::from_retriever(retriever, c.params(), path, b, name)
    }

    /// A stream called `name` reading `retriever` (at `path`, with `params` as its
    /// `$parameters`).
    pub fn from_retriever(
        retriever: Value,
        params: &serde_json::Map<String, Value>,
        path: String,
        b: &Build,
        name: &str,
    ) -> Result<Self> {
        let def = json!({"type": "DeclarativeStream", "name": name, "retriever": retriever,
            "$parameters": Value::Object(params.clone())});
        let node = Node {
            value: &def,
            path,
            params: serde_json::Map::new(),
        };
        Self::decode(node, b)
    }

    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        if node.value.get("type").and_then(Value::as_str) == Some("StateDelegatingStream") {
            return crate::delegating::decode(node, b);
        }
        let mut c = node.component(Some("DeclarativeStream"))?;
        c.expect(&["DeclarativeStream"])?;
        let name = c.str("name")?;
        if name.is_empty() {
            return Err(c.error("the stream has no name"));
        }
        let file_uploader = c
            .child("file_uploader")
            .map(|n| FileUploader::decode(n, b))
            .transpose()?;
        let primary_key = primary_key(c.get("primary_key")).map_err(|e| c.error(e))?;
        let transformations = c
            .children("transformations")?
            .into_iter()
            .map(|n| Transformation::decode(n, b))
            .collect::<Result<Vec<_>>>()?;
        let mut cursor = match c.child("incremental_sync") {
            Some(n) => {
                let mut cursor = DatetimeCursor::decode(n, b)?;
                cursor.use_catalog_field(&name, b.catalog_cursors.get(&name))?;
                Some(cursor)
            }
            None => None,
        };
        let migrations =
            crate::migration::decode(&mut c, b, cursor.as_ref().map(|c| c.cursor_field.as_str()))?;
        let schema = schema::decode(c.child("schema_loader"), b, &name)?;
        let mut r = c
            .required_child("retriever")?
            .component(Some("SimpleRetriever"))?;
        if r.type_name == "AsyncRetriever" {
            let retriever = crate::async_job::decode_retriever(r, b, transformations, &schema)?;
            c.finish()?;
            return Ok(Self {
                name,
                primary_key,
                schema,
                retriever,
                cursor,
                concurrency: 1,
                migrations,
                delegate: None,
                file_uploader,
            });
        }
        if r.type_name != "SimpleRetriever" {
            return Err(unsupported_type(
                &r.type_name,
                r.at(),
                &["SimpleRetriever", "AsyncRetriever"],
            ));
        }
        r.ignore(&["name", "primary_key"]);
        let record_filter = r
            .get("record_selector")
            .and_then(|s| s.get("record_filter").cloned())
            .is_some_and(|f| !f.is_null());
        let requester = Requester::decode(r.required_child("requester")?, b)?;
        let mut selector =
            RecordSelector::decode(r.required_child("record_selector")?, b, transformations)?;
        selector.set_schema(&schema);
        let paginator = Paginator::decode(r.child("paginator"), b)?;
        let offset = paginator.as_ref().map(|p| p.shape().strategy) == Some("OffsetIncrement");
        if offset && selector.has_union() {
            // As airbyte-cdk refuses it: the offset would move by the records of all the parts.
            return Err(r.error(
                "CombinedExtractor mode \"union\" is not supported with an OffsetIncrement paginator",
            ));
        }
        let decoder = Decoder::decode_node(r.child("decoder"))?;
        let router = match r.child("partition_router") {
            Some(n) => match n.value {
                Value::Array(a) if a.is_empty() => None,
                _ => Some(Arc::new(PartitionRouter::decode(n, b)?)),
            },
            None => None,
        };
        if cursor.as_ref().is_some_and(|c| c.count) && router.is_some() {
            return Err(c.error(
                "an IncrementingCountCursor with a partition router is not supported (airbyte-cdk \
                 refuses it too)",
            ));
        }
        // As in airbyte-cdk, the partitions of a GroupingPartitionRouter share one cursor.
        if let (Some(c), Some(PartitionRouter::Grouping { .. })) =
            (cursor.as_mut(), router.as_deref())
        {
            c.global_substream = true;
        }
        let actions = {
            let cx = crate::actions::Context {
                stream: &name,
                requester: &requester,
                paginator: paginator.as_ref(),
                cursor: cursor.as_ref(),
                record_filter,
            };
            crate::actions::Actions::decode(&mut r, b, &cx)?
        };
        if file_uploader.is_some() {
            refuse_with_files(&name, &actions)?;
        }
        if router.as_ref().is_some_and(|r| r.reads_lazily()) {
            lazy_checks(&name, &requester, &actions, cursor.as_ref(), &decoder)
                .map_err(|e| r.error(e))?;
        }
        let ignore_slicer_on_paginated = r.bool_or(
            "ignore_stream_slicer_parameters_on_paginated_requests",
            false,
        )?;
        r.finish()?;
        c.finish()?;
        Ok(Self {
            name,
            primary_key,
            schema,
            retriever: Retriever {
                requester,
                selector,
                paginator,
                decoder,
                router,
                ignore_slicer_on_paginated,
                actions,
                jobs: None,
            },
            cursor,
            concurrency: 1,
            migrations,
            delegate: None,
            file_uploader,
        })
    }

    /// Reads the first page of the first slice, to see the stream works. With a
    /// `file_uploader`, the first record's file is downloaded too, as airbyte-cdk's check
    /// reads the first record through its uploader.
    pub async fn check(self: &Arc<Self>) -> Result<()> {
        let pages = self.first_page_records().await?;
        if let Some(uploader) = &self.file_uploader
            && let Some(mut first) = pages
                .iter()
                .find_map(|p| p.get(0).transpose())
                .transpose()?
        {
            uploader.upload(&self.name, &mut first).await?;
        }
        Ok(())
    }

    /// The records of the first page of the first slice (for schema detection).
    pub async fn first_page(self: &Arc<Self>) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for records in self.first_page_records().await? {
            out.extend(records.into_values()?);
        }
        Ok(out)
    }

    /// The pages a read of the first page of the first slice yields, or its error.
    async fn first_page_records(self: &Arc<Self>) -> Result<Vec<Records>> {
        let (tx, mut rx) = mpsc::channel(4);
        let _guard = read::spawn(
            Plan {
                stream: self.clone(),
                starts: None,
                concurrency: 1,
                first_page_only: true,
                state: None,
            },
            tx,
        );
        let mut pages = Vec::new();
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Failed(e) => return Err(e),
                Msg::Page { records, .. } => pages.push(records),
                _ => {}
            }
        }
        Ok(pages)
    }
}

/// What airbyte-cdk refuses with a `file_uploader`: records already sent with their files
/// would be sent again when a page or a window is read again.
fn refuse_with_files(name: &str, actions: &crate::actions::Actions) -> Result<()> {
    if actions.page_size.is_some() {
        return Err(cdk::Error::config(format!(
            "`page_size_reduction` cannot be used together with a `file_uploader` on stream {name}. The \
             file uploader sends one request per record from inside the page's record generator, so a \
             reduction asked for halfway through a page would re-emit the records already yielded by it."
        )));
    }
    if actions.window.is_some() {
        return Err(cdk::Error::config(format!(
            "`request_window_splitting` cannot be used together with a `file_uploader` on stream {name}. \
             The file uploader sends one request per record from inside the window's record generator, so \
             a split requested partway through could re-emit records already yielded by it."
        )));
    }
    Ok(())
}

/// What airbyte-cdk refuses with a parent stream read lazily. It checks the cursor and the
/// decoder only on a first sync; they are checked here whatever the state.
fn lazy_checks(
    name: &str,
    requester: &Requester,
    actions: &crate::actions::Actions,
    cursor: Option<&DatetimeCursor>,
    decoder: &Decoder,
) -> std::result::Result<(), String> {
    use crate::error_handler::Action;
    if actions.page_size.is_some() || requester.uses_action(Action::ReducePageSize) {
        return Err(format!(
            "`page_size_reduction` and the REDUCE_PAGE_SIZE response action are not supported when reading a parent stream lazily. Remove either the page size reduction or the parent stream's `lazy_read_pointer` for stream {name}."
        ));
    }
    if actions.window.is_some() || requester.uses_action(Action::SplitRequestWindow) {
        return Err(format!(
            "`request_window_splitting` and the SPLIT_REQUEST_WINDOW response action are not supported when reading a parent stream lazily. Remove either the request window splitting or the parent stream's `lazy_read_pointer` for stream {name}."
        ));
    }
    if let Some(c) = cursor {
        if c.count {
            return Err("LazySimpleRetriever only supports DatetimeBasedCursor. Found: IncrementingCountCursor.".into());
        }
        if c.granularity().is_some() {
            return Err(format!(
                "Found more that one slice per parent. LazySimpleRetriever only supports single slice read for stream - {name}."
            ));
        }
    }
    if *decoder != Decoder::Json {
        return Err("LazySimpleRetriever only supports JsonDecoder.".into());
    }
    Ok(())
}

/// `primary_key`: a name, a list of names (a composite key) or a list of paths.
fn primary_key(v: Option<Value>) -> std::result::Result<Vec<Vec<String>>, String> {
    Ok(match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![vec![s]],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(vec![s]),
                Value::Array(path) => path
                    .into_iter()
                    .map(|p| {
                        p.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("bad primary key part {p}"))
                    })
                    .collect(),
                other => Err(format!("bad primary key {other}")),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "primary_key must be a string or a list, got {other}"
            ));
        }
    })
}

/// A stream as the read driver sees it.
pub struct DeclarativeStream(
    pub Arc<StreamDef>,
    /// The lock of its `stream_groups` group, held while it is read.
    pub Option<Arc<tokio::sync::Mutex<()>>>,
);

#[async_trait]
impl cdk::Stream for DeclarativeStream {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn json_schema(&self) -> Value {
        self.0.schema.clone()
    }

    fn primary_key(&self) -> Vec<Vec<String>> {
        self.0.primary_key.clone()
    }

    fn default_cursor_field(&self) -> Option<Vec<String>> {
        self.0.cursor.as_ref().map(|c| vec![c.cursor_field.clone()])
    }

    fn source_defined_cursor(&self) -> bool {
        self.0.cursor.as_ref().is_some_and(|c| !c.catalog_defined)
    }

    fn is_file_based(&self) -> bool {
        self.0.file_uploader.is_some()
    }

    async fn read(&self, ctx: &ReadContext, out: &mut RecordWriter) -> Result<()> {
        let _group = match &self.1 {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let stream = crate::delegating::pick(&self.0, ctx.state.as_ref());
        let incremental = ctx.is_incremental() && stream.cursor.is_some();
        let mut keeper = None;
        let mut default_start = None;
        let deps: Vec<_> = match &stream.retriever.router {
            Some(r) if incremental => r.dependencies(),
            _ => Vec::new(),
        };
        let parents: Vec<_> = deps.iter().map(|(d, _)| d.clone()).collect();
        let mut starts = None;
        if let (true, Some(cursor)) = (incremental, &stream.cursor) {
            for (d, parent) in &deps {
                d.prepare(ctx.state.as_ref(), parent);
            }
            let migrated = crate::migration::apply(&stream.migrations, ctx.state.as_ref());
            let input = InputState::parse(cursor, migrated.as_ref());
            let shared = Arc::new(input.clone());
            starts = Some(
                Arc::new(move |p: &serde_json::Map<String, Value>| shared.start_of(p))
                    as read::StartFn,
            );
            keeper = Some(StateKeeper::new(stream.retriever.router.is_some(), input));
            default_start = Some(cursor.start_datetime()?);
        }
        let (tx, mut rx) = mpsc::channel(8);
        let _guard = read::spawn(
            Plan {
                stream: stream.clone(),
                starts,
                concurrency: stream.concurrency,
                first_page_only: false,
                state: incremental
                    .then(|| ctx.state.clone().map(Arc::new))
                    .flatten(),
            },
            tx,
        );
        let mut floors: HashMap<u64, Option<Dt>> = HashMap::new();
        let mut unparsed_warned = false;
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Slice {
                    id,
                    partition,
                    sync_start,
                    gap,
                } => {
                    if let (Some(k), Some(s)) = (keeper.as_mut(), sync_start) {
                        k.slice_started(id, &partition, s, gap);
                    }
                    floors.insert(id, sync_start);
                }
                Msg::Page { id, records } => {
                    let floor = floors.get(&id).copied().flatten();
                    let mut keep = |r: &RecordRef<'_>| {
                        if let (Some(k), Some(cursor)) = (keeper.as_mut(), &stream.cursor) {
                            match r
                                .field(&cursor.cursor_field)
                                .and_then(|v| cursor.parse_value(&v))
                            {
                                Some(dt) => {
                                    if client_side_drops(cursor, floor, dt) {
                                        return false;
                                    }
                                    k.observe(id, dt);
                                }
                                None if !unparsed_warned => {
                                    unparsed_warned = true;
                                    tracing::warn!(stream = %stream.name, field = %cursor.cursor_field,
                                        "a record has no parseable cursor value; it does not move the state");
                                }
                                None => {}
                            }
                        }
                        true
                    };
                    match &stream.file_uploader {
                        None => records.for_each(|r| {
                            if keep(&r) {
                                write_record(out, r)
                            } else {
                                Ok(())
                            }
                        })?,
                        Some(uploader) => {
                            for mut record in records.into_values()? {
                                if keep(&RecordRef::Value(&record)) {
                                    let file = uploader.upload(&stream.name, &mut record).await?;
                                    out.record_with_file(&record, &file)?;
                                }
                            }
                        }
                    }
                }
                Msg::Done { id } => {
                    floors.remove(&id);
                    if let (Some(k), Some(cursor), Some(start)) =
                        (keeper.as_mut(), &stream.cursor, default_start)
                        && k.slice_done(id)
                    {
                        let state = k.state(cursor, start, false);
                        out.checkpoint(with_parent_state(state, &parents, false));
                    }
                }
                Msg::RateLimited(reset) => out.rate_limited(reset),
                Msg::Failed(e) => return Err(e),
            }
        }
        if let (Some(k), Some(cursor), Some(start)) =
            (keeper.as_ref(), &stream.cursor, default_start)
        {
            let state = k.state(cursor, start, true);
            out.checkpoint(with_parent_state(state, &parents, true));
        }
        Ok(())
    }
}

/// True when a client-side incremental cursor drops a record with cursor value `dt` from a
/// slice whose partition starts at `floor`.
pub fn client_side_drops(cursor: &DatetimeCursor, floor: Option<Dt>, dt: Dt) -> bool {
    cursor.client_side && floor.is_some_and(|f| dt < f || (cursor.strict && dt == f))
}

/// Writes a record: raw text as it came when it is one line, else re-serialised.
fn write_record(out: &mut RecordWriter, r: RecordRef<'_>) -> Result<()> {
    match r {
        RecordRef::Value(v) => out.record(v),
        RecordRef::Raw(text) if !text.contains(['\n', '\r']) => {
            out.record_json(TrustedJson::new(text.as_bytes()), &[])
        }
        raw => out.record(&raw.to_value()?),
    }
}

/// The permissive schema of a stream without one.
pub fn open_schema() -> Value {
    json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {}, "additionalProperties": true})
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::source::Declarative;

    /// A manifest using most components, to mutate.
    fn base() -> Value {
        json!({"version": "6.0.0", "type": "DeclarativeSource",
          "check": {"type": "CheckStream", "stream_names": ["items"]},
          "streams": [{"type": "DeclarativeStream", "name": "items", "primary_key": ["id"],
            "$parameters": {"path": "/items"},
            "retriever": {"type": "SimpleRetriever",
              "requester": {"type": "HttpRequester", "url_base": "{{ config['base_url'] }}",
                "path": "/items", "http_method": "GET",
                "request_parameters": {"q": "{{ stream_partition.p }}", "since": "{{ now_utc() - duration('P1D') }}"},
                "authenticator": {"type": "ApiKeyAuthenticator", "api_token": "{{ config['k'] }}", "header": "X"},
                "error_handler": {"type": "DefaultErrorHandler", "max_retries": 1,
                  "response_filters": [{"type": "HttpResponseFilter", "action": "IGNORE", "http_codes": [404]}]}},
              "record_selector": {"type": "RecordSelector",
                "extractor": {"type": "DpathExtractor", "field_path": ["data", "*"]},
                "record_filter": {"type": "RecordFilter", "condition": "{{ record['a'] > 1 }}"}},
              "paginator": {"type": "DefaultPaginator",
                "pagination_strategy": {"type": "CursorPagination", "cursor_value": "{{ response.next }}",
                  "stop_condition": "{{ last_page_size < 2 }}", "page_size": 2},
                "page_token_option": {"type": "RequestOption", "inject_into": "body_json", "field_path": ["a", "b"]},
                "page_size_option": {"type": "RequestOption", "inject_into": "request_parameter", "field_name": "n"}},
              "partition_router": {"type": "ListPartitionRouter", "cursor_field": "p", "values": ["1", "2"]}},
            "incremental_sync": {"type": "DatetimeBasedCursor", "cursor_field": "u",
              "datetime_format": "%Y-%m-%d", "start_datetime": "{{ config['start'] }}", "step": "P1D",
              "cursor_granularity": "P1D"},
            "transformations": [
              {"type": "AddFields", "fields": [{"type": "AddedFieldDefinition", "path": ["x"], "value": "{{ record.a }}"}]},
              {"type": "RemoveFields", "field_pointers": [["b", "**"]]}]}]})
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any value anywhere in a manifest: it loads or is refused, never a panic.
        #[test]
        fn mutated_manifests_load_or_fail(picks in prop::collection::vec((any::<prop::sample::Index>(), crate::mutate::replacement()), 1..4)) {
            let mut m = base();
            crate::mutate::mutate(&mut m, picks);
            let config = json!({"base_url": "http://127.0.0.1:9", "k": "ü", "start": "2024-01-01"});
            let _ = Declarative::decode(&m, &config, None);
            let _ = crate::source::manifest_spec(&m);
        }
    }

    #[test]
    fn the_base_manifest_loads() {
        let config = json!({"base_url": "http://127.0.0.1:9", "k": "ü", "start": "2024-01-01"});
        Declarative::decode(&base(), &config, None).expect("loads");
    }
}
