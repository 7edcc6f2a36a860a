//! Partition routers: `ListPartitionRouter` (a partition per value), `SubstreamPartitionRouter`
//! (a partition per record of a parent stream, every page and partition of the parent read),
//! and a list of routers (their cartesian product).

use std::sync::Arc;

use cdk::{Error, Result};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::dependency::{ParentDependency, ParentRead};
use crate::interpolation::Vars;
use crate::manifest::{Build, Node, unsupported_type};
use crate::read::{self, Msg, Plan};
use crate::request_option::RequestOption;
use crate::stream::StreamDef;

/// A partition of a stream: the values templates see as `stream_partition`, and what to add to
/// its requests.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    pub values: Map<String, Value>,
    pub injections: Vec<(Arc<RequestOption>, Value)>,
    pub extra_fields: Map<String, Value>,
}

#[derive(Debug)]
pub enum PartitionRouter {
    List {
        field: String,
        values: Vec<Value>,
        option: Option<Arc<RequestOption>>,
    },
    Substream(Vec<ParentConfig>),
    Product(Vec<PartitionRouter>),
    /// `UnionPartitionRouter`: the partitions of its routers, each value of `field` once,
    /// normalized to `{field: value}` (the rest of a partition moves to its extra fields).
    Union {
        field: String,
        routers: Vec<PartitionRouter>,
    },
    /// `GroupingPartitionRouter`: the underlying router's partitions in batches.
    Grouping {
        inner: Box<PartitionRouter>,
        size: usize,
        deduplicate: bool,
    },
}

#[derive(Debug)]
pub struct ParentConfig {
    stream: Arc<StreamDef>,
    parent_key: Vec<String>,
    partition_field: String,
    option: Option<Arc<RequestOption>>,
    extra_fields: Vec<Vec<String>>,
    /// `lazy_read_pointer`: where each parent record embeds the child's first page.
    lazy_pointer: Vec<String>,
    /// `incremental_dependency`: the parent is read from its state kept in the child's.
    dependency: Option<Arc<ParentDependency>>,
}

/// The extra field holding the child's first page embedded in a parent record.
pub const LAZY_RESPONSE: &str = "child_response";

const SUPPORTED: [&str; 4] = [
    "ListPartitionRouter",
    "SubstreamPartitionRouter",
    "GroupingPartitionRouter",
    "UnionPartitionRouter",
];

impl PartitionRouter {
    /// A `SubstreamPartitionRouter` with a `lazy_read_pointer`: on a first sync the child
    /// reads its first page from each parent record (airbyte-cdk's `LazySimpleRetriever`).
    pub fn reads_lazily(&self) -> bool {
        matches!(self, Self::Substream(parents) if parents.iter().any(|p| !p.lazy_pointer.is_empty()))
    }

    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        if let Value::Array(items) = node.value {
            let routers = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Self::decode(
                        Node {
                            value: v,
                            path: format!("{}/{i}", node.path),
                            params: node.params.clone(),
                        },
                        b,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(PartitionRouter::Product(routers));
        }
        let mut c = node.component(None)?;
        c.expect(&SUPPORTED)?;
        let vars = Vars::new();
        let router = match c.type_name.as_str() {
            "ListPartitionRouter" => {
                let field = c
                    .template(b, "cursor_field")?
                    .eval_str(&vars)?
                    .ok_or_else(|| c.error("cursor_field evaluated to an empty value"))?;
                let values = match c.required("values")? {
                    Value::Array(v) => v,
                    Value::String(s) => match c.template_of(b, "values", &s)?.eval(&vars)? {
                        Value::Array(v) => v,
                        Value::String(one) => one
                            .split(',')
                            .map(|s| Value::String(s.trim().to_string()))
                            .collect(),
                        other => {
                            return Err(
                                c.error(format!("values must evaluate to a list, got {other}"))
                            );
                        }
                    },
                    other => return Err(c.error(format!("values must be a list, got {other}"))),
                };
                let option = c
                    .child("request_option")
                    .map(|n| RequestOption::decode(n, b))
                    .transpose()?;
                PartitionRouter::List {
                    field,
                    values,
                    option: option.map(Arc::new),
                }
            }
            "SubstreamPartitionRouter" => {
                let mut parents = Vec::new();
                for n in c.children("parent_stream_configs")? {
                    let mut p = n.component(Some("ParentStreamConfig"))?;
                    p.expect(&["ParentStreamConfig"])?;
                    let incremental_dependency = p.bool_or("incremental_dependency", false)?;
                    let lazy_pointer: Vec<String> = p
                        .string_list("lazy_read_pointer")?
                        .unwrap_or_default()
                        .iter()
                        .map(|s| {
                            Ok(p.template_of(b, "lazy_read_pointer", s)?
                                .eval_str(&vars)?
                                .unwrap_or_default())
                        })
                        .collect::<Result<_>>()?;
                    if lazy_pointer.iter().any(|s| s.contains('*')) {
                        return Err(p.error(
                            "the '*' wildcard in 'lazy_read_pointer' is not supported — only direct paths are allowed",
                        ));
                    }
                    let stream = Arc::new(StreamDef::decode(p.required_child("stream")?, b)?);
                    let parent_key = p
                        .template(b, "parent_key")?
                        .eval_str(&vars)?
                        .ok_or_else(|| p.error("parent_key evaluated to an empty value"))?
                        .split('/')
                        .map(str::to_string)
                        .collect();
                    let partition_field = p
                        .template(b, "partition_field")?
                        .eval_str(&vars)?
                        .ok_or_else(|| p.error("partition_field evaluated to an empty value"))?;
                    let option = p
                        .child("request_option")
                        .map(|n| RequestOption::decode(n, b))
                        .transpose()?;
                    let extra_fields = match p.get("extra_fields") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(items)) => items
                            .into_iter()
                            .map(|i| match i {
                                Value::Array(keys) => Ok(keys
                                    .into_iter()
                                    .map(|k| {
                                        k.as_str()
                                            .map(str::to_string)
                                            .unwrap_or_else(|| k.to_string())
                                    })
                                    .collect()),
                                other => Err(p.error(format!(
                                    "extra_fields must be lists of keys, got {other}"
                                ))),
                            })
                            .collect::<Result<_>>()?,
                        Some(other) => {
                            return Err(
                                p.error(format!("extra_fields must be a list, got {other}"))
                            );
                        }
                    };
                    p.finish()?;
                    let dependency =
                        incremental_dependency.then(|| ParentDependency::new(&stream.name));
                    parents.push(ParentConfig {
                        dependency,
                        stream,
                        parent_key,
                        partition_field,
                        option: option.map(Arc::new),
                        extra_fields,
                        lazy_pointer,
                    });
                }
                if parents.is_empty() {
                    return Err(c.error("parent_stream_configs must not be empty"));
                }
                PartitionRouter::Substream(parents)
            }
            "GroupingPartitionRouter" => {
                let size = c
                    .opt_i64("group_size")?
                    .ok_or_else(|| c.error("the field 'group_size' is required"))?;
                if size < 1 {
                    return Err(c.error(format!("group_size must be greater than 0, got {size}")));
                }
                let inner = Self::decode(c.required_child("underlying_partition_router")?, b)?;
                if inner.has_request_option() {
                    return Err(c.error(
                        "request options of the underlying partition router are not supported with grouping (set them on the requester)",
                    ));
                }
                PartitionRouter::Grouping {
                    inner: Box::new(inner),
                    size: size as usize,
                    deduplicate: c.bool_or("deduplicate", true)?,
                }
            }
            "UnionPartitionRouter" => {
                let field = c
                    .template(b, "partition_field")?
                    .eval_str(&vars)?
                    .ok_or_else(|| c.error("partition_field evaluated to an empty value"))?;
                let routers = c
                    .children("partition_routers")?
                    .into_iter()
                    .map(|n| Self::decode(n, b))
                    .collect::<Result<Vec<_>>>()?;
                if routers.len() < 2 {
                    return Err(
                        c.error("UnionPartitionRouter needs at least 2 child partition routers")
                    );
                }
                for r in &routers {
                    if let Some(other) = r.emitted_fields().into_iter().find(|f| *f != field) {
                        return Err(c.error(format!(
                            "UnionPartitionRouter expects all child partition routers to emit the partition field '{field}', but a child emits '{other}'"
                        )));
                    }
                    if matches!(
                        r,
                        PartitionRouter::Grouping { .. } | PartitionRouter::Product(_)
                    ) {
                        return Err(c.error("a UnionPartitionRouter's children must each emit one scalar partition field (no GroupingPartitionRouter or list of routers)"));
                    }
                    if r.has_request_option() {
                        return Err(
                            c.error("Request options are not supported for UnionPartitionRouter.")
                        );
                    }
                }
                PartitionRouter::Union { field, routers }
            }
            other => return Err(unsupported_type(other, c.at(), &SUPPORTED)),
        };
        c.finish()?;
        Ok(router)
    }

    /// The names of the parent streams this router reads, and of their parents.
    pub fn ancestors(&self, out: &mut Vec<String>) {
        match self {
            PartitionRouter::List { .. } => {}
            PartitionRouter::Substream(parents) => {
                for p in parents {
                    out.push(p.stream.name.clone());
                    if let Some(r) = &p.stream.retriever.router {
                        r.ancestors(out);
                    }
                }
            }
            PartitionRouter::Product(rs) | PartitionRouter::Union { routers: rs, .. } => {
                rs.iter().for_each(|r| r.ancestors(out))
            }
            PartitionRouter::Grouping { inner, .. } => inner.ancestors(out),
        }
    }

    /// The partition fields a router is known to emit.
    fn emitted_fields(&self) -> Vec<&str> {
        match self {
            PartitionRouter::List { field, .. } | PartitionRouter::Union { field, .. } => {
                vec![field]
            }
            PartitionRouter::Substream(parents) => {
                parents.iter().map(|p| p.partition_field.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether partitions inject a request option (which a grouping cannot).
    fn has_request_option(&self) -> bool {
        match self {
            PartitionRouter::List { option, .. } => option.is_some(),
            PartitionRouter::Substream(parents) => parents.iter().any(|p| p.option.is_some()),
            PartitionRouter::Product(rs) => rs.iter().any(|r| r.has_request_option()),
            PartitionRouter::Grouping { inner, .. } => inner.has_request_option(),
            PartitionRouter::Union { routers, .. } => {
                routers.iter().any(|r| r.has_request_option())
            }
        }
    }

    /// The parents read with `incremental_dependency`, with the parent stream.
    pub fn dependencies(&self) -> Vec<(Arc<ParentDependency>, Arc<StreamDef>)> {
        match self {
            PartitionRouter::List { .. } => Vec::new(),
            PartitionRouter::Substream(parents) => parents
                .iter()
                .filter_map(|p| p.dependency.clone().map(|d| (d, p.stream.clone())))
                .collect(),
            PartitionRouter::Product(rs) => rs.iter().flat_map(|r| r.dependencies()).collect(),
            PartitionRouter::Grouping { inner, .. } => inner.dependencies(),
            PartitionRouter::Union { routers, .. } => {
                routers.iter().flat_map(|r| r.dependencies()).collect()
            }
        }
    }

    /// The partitions, produced as they are found (a parent is read while its children are).
    pub fn partitions(self: &Arc<Self>, concurrency: usize) -> mpsc::Receiver<Result<Partition>> {
        let (tx, rx) = mpsc::channel(64);
        let router = self.clone();
        tokio::spawn(async move {
            if let Err(e) = router.produce(concurrency, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn produce(
        &self,
        concurrency: usize,
        tx: &mpsc::Sender<Result<Partition>>,
    ) -> Result<()> {
        match self {
            PartitionRouter::List {
                field,
                values,
                option,
            } => {
                for v in values {
                    let mut p = Partition::default();
                    p.values.insert(field.clone(), v.clone());
                    if let Some(o) = option {
                        p.injections.push((o.clone(), v.clone()));
                    }
                    if tx.send(Ok(p)).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
            PartitionRouter::Substream(parents) => {
                for parent in parents {
                    parent.produce(concurrency, tx).await?;
                }
                Ok(())
            }
            PartitionRouter::Union { field, routers } => {
                let mut seen = std::collections::HashSet::new();
                for r in routers {
                    let mut rx = Arc::new(clone_router(r)).partitions(concurrency);
                    while let Some(p) = rx.recv().await {
                        let mut p = p?;
                        let Some(value) = p.values.remove(field) else {
                            return Err(Error::config(format!(
                                "UnionPartitionRouter expects all child partition routers to emit the partition field '{field}'. Got {}",
                                Value::Object(p.values)
                            )));
                        };
                        if value.is_array() || value.is_object() {
                            return Err(Error::config(format!(
                                "UnionPartitionRouter can only deduplicate hashable partition values. Got unhashable value {value} for partition field '{field}'."
                            )));
                        }
                        if !seen.insert(value.to_string()) {
                            continue;
                        }
                        let mut out = Partition {
                            extra_fields: std::mem::take(&mut p.extra_fields),
                            ..Default::default()
                        };
                        out.extra_fields.extend(std::mem::take(&mut p.values));
                        out.values.insert(field.clone(), value);
                        if tx.send(Ok(out)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }
            PartitionRouter::Grouping {
                inner,
                size,
                deduplicate,
            } => {
                let rx = Arc::new(clone_router(inner)).partitions(concurrency);
                crate::grouping::group(rx, *size, *deduplicate, tx).await
            }
            PartitionRouter::Product(routers) => {
                let mut acc = vec![Partition::default()];
                for r in routers {
                    let mut rx = Arc::new(clone_router(r)).partitions(concurrency);
                    let mut mine = Vec::new();
                    while let Some(p) = rx.recv().await {
                        mine.push(p?);
                    }
                    acc = acc
                        .iter()
                        .flat_map(|a| {
                            mine.iter().map(move |m| {
                                let mut p = a.clone();
                                p.values.extend(m.values.clone());
                                p.injections.extend(m.injections.clone());
                                p.extra_fields.extend(m.extra_fields.clone());
                                p
                            })
                        })
                        .collect();
                }
                for p in acc {
                    if tx.send(Ok(p)).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Routers are built once; a product needs owned handles to run its parts.
fn clone_router(r: &PartitionRouter) -> PartitionRouter {
    match r {
        PartitionRouter::List {
            field,
            values,
            option,
        } => PartitionRouter::List {
            field: field.clone(),
            values: values.clone(),
            option: option.clone(),
        },
        PartitionRouter::Substream(parents) => PartitionRouter::Substream(
            parents
                .iter()
                .map(|p| ParentConfig {
                    stream: p.stream.clone(),
                    parent_key: p.parent_key.clone(),
                    partition_field: p.partition_field.clone(),
                    option: p.option.clone(),
                    extra_fields: p.extra_fields.clone(),
                    lazy_pointer: p.lazy_pointer.clone(),
                    dependency: p.dependency.clone(),
                })
                .collect(),
        ),
        PartitionRouter::Product(rs) => {
            PartitionRouter::Product(rs.iter().map(clone_router).collect())
        }
        PartitionRouter::Union { field, routers } => PartitionRouter::Union {
            field: field.clone(),
            routers: routers.iter().map(clone_router).collect(),
        },
        PartitionRouter::Grouping {
            inner,
            size,
            deduplicate,
        } => PartitionRouter::Grouping {
            inner: Box::new(clone_router(inner)),
            size: *size,
            deduplicate: *deduplicate,
        },
    }
}

impl ParentConfig {
    /// Reads the whole parent stream; each record with the parent key gives a partition.
    async fn produce(
        &self,
        concurrency: usize,
        tx: &mpsc::Sender<Result<Partition>>,
    ) -> Result<()> {
        let (starts, mut tracking) = match &self.dependency {
            Some(d) => ParentRead::start(d, &self.stream),
            None => (None, None),
        };
        let (ptx, mut prx) = mpsc::channel(4);
        let _guard = read::spawn(
            Plan {
                stream: self.stream.clone(),
                starts,
                concurrency,
                first_page_only: false,
                state: None,
            },
            ptx,
        );
        let mut slices: std::collections::HashMap<u64, Arc<Map<String, Value>>> =
            Default::default();
        while let Some(msg) = prx.recv().await {
            match msg {
                Msg::Slice {
                    id,
                    partition,
                    sync_start,
                    gap,
                } => {
                    if let Some(t) = tracking.as_mut() {
                        t.slice(id, &partition, sync_start, gap);
                    }
                    slices.insert(id, partition);
                }
                Msg::Done { id } => {
                    if let Some(t) = tracking.as_mut() {
                        t.done(id);
                    }
                    slices.remove(&id);
                }
                Msg::RateLimited(_) => {}
                Msg::Failed(e) => {
                    return Err(e.context(format!("parent stream '{}'", self.stream.name)));
                }
                Msg::Page { id, records } => {
                    if let Some(t) = tracking.as_mut() {
                        t.page(id, &records)?;
                    }
                    let parent_slice = slices.get(&id).map(|p| (**p).clone()).unwrap_or_default();
                    for record in records.into_values()? {
                        let Some(value) = self.parent_key.iter().try_fold(&record, |v, k| v.get(k))
                        else {
                            continue;
                        };
                        if value.is_null() {
                            continue;
                        }
                        let mut p = Partition::default();
                        p.values.insert(self.partition_field.clone(), value.clone());
                        p.values
                            .insert("parent_slice".into(), Value::Object(parent_slice.clone()));
                        if let Some(o) = &self.option {
                            p.injections.push((o.clone(), value.clone()));
                        }
                        if !self.lazy_pointer.is_empty() {
                            let embedded =
                                self.lazy_pointer.iter().try_fold(&record, |v, k| v.get(k));
                            p.extra_fields.insert(
                                LAZY_RESPONSE.into(),
                                embedded.cloned().unwrap_or(Value::Array(Vec::new())),
                            );
                        }
                        for path in &self.extra_fields {
                            if let Some(v) = path.iter().try_fold(&record, |v, k| v.get(k)) {
                                p.extra_fields.insert(path.join("."), v.clone());
                            }
                        }
                        if tx.send(Ok(p)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        if let Some(t) = tracking {
            t.finish()?;
        }
        Ok(())
    }
}
