//! `DeclarativeSource`: the top of a manifest — its streams, `check`, `spec` and
//! `concurrency_level` — decoded against a config.

use std::path::PathBuf;
use std::sync::Arc;

use cdk::protocol::ConnectorSpecification;
use cdk::{Error, Result};
use serde_json::Value;

use crate::interpolation::{Interpolator, Template, Vars};
use crate::manifest::{Build, Node};
use crate::stream::StreamDef;

/// Manifest keys read here or deliberately without effect.
const TOP_LEVEL: [&str; 14] = [
    crate::dynamic::GENERATED,
    "stream_groups",
    "type",
    "version",
    "check",
    "streams",
    "definitions",
    "schemas",
    "spec",
    "concurrency_level",
    "metadata",
    "description",
    "api_budget",
    "max_concurrent_async_job_count",
];

/// Airbyte's default when a manifest does not say.
pub const DEFAULT_CONCURRENCY: usize = 2;

#[derive(Debug)]
pub struct Declarative {
    pub streams: Vec<Arc<StreamDef>>,
    pub check_streams: Vec<String>,
    /// What `check` reads besides `check_streams`.
    pub check: Check,
    pub concurrency: usize,
    /// `stream_groups`: the lock a stream holds while it is read, shared by its group.
    pub groups: std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

/// `CheckStream`'s `dynamic_streams_check_configs`, or a `CheckDynamicStream`.
#[derive(Debug, Default)]
pub struct Check {
    /// Per dynamic stream definition: the streams it generated (`None`: no such definition)
    /// and how many of them to read (all without a count).
    pub dynamic: Vec<(String, Option<Vec<String>>, Option<usize>)>,
    /// `CheckDynamicStream`: the first streams, static then dynamic, to read; with
    /// `use_check_availability: false` only that there are streams.
    pub first: Option<(usize, bool)>,
}

impl Declarative {
    /// Decodes a `$ref`-resolved manifest for `config`.
    pub fn decode(manifest: &Value, config: &Value, base_dir: Option<PathBuf>) -> Result<Self> {
        Self::decode_for_read(manifest, config, base_dir, Default::default())
    }

    /// [`Self::decode`] for a read whose configured catalog picked `catalog_cursors` (cursor
    /// field by stream name).
    pub fn decode_for_read(
        manifest: &Value,
        config: &Value,
        base_dir: Option<PathBuf>,
        catalog_cursors: std::collections::HashMap<String, Vec<String>>,
    ) -> Result<Self> {
        Self::decode_for_catalog(
            manifest,
            config,
            base_dir,
            catalog_cursors,
            Default::default(),
        )
    }

    /// [`Self::decode_for_read`] knowing the configured catalog's JSON schemas by stream name
    /// (`JsonSchemaPropertySelector` selects query properties from them).
    pub fn decode_for_catalog(
        manifest: &Value,
        config: &Value,
        base_dir: Option<PathBuf>,
        catalog_cursors: std::collections::HashMap<String, Vec<String>>,
        catalog_schemas: std::collections::HashMap<String, Value>,
    ) -> Result<Self> {
        let Value::Object(top) = manifest else {
            return Err(Error::config("the manifest must be a mapping"));
        };
        match top.get("type").and_then(Value::as_str) {
            Some("DeclarativeSource") | None => {}
            Some(other) => {
                return Err(crate::manifest::unsupported_type(
                    other,
                    "/",
                    &["DeclarativeSource"],
                ));
            }
        }
        if let Some(k) = top.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
            return Err(Error::config(format!(
                "DeclarativeSource at /: the field '{k}' is not supported"
            )));
        }
        let concurrency = concurrency(manifest, config)?;
        let mut b = Build::new(config, base_dir, concurrency);
        b.catalog_cursors = Arc::new(catalog_cursors);
        b.catalog_schemas = Arc::new(catalog_schemas);
        let slots = crate::async_job::job_slots(top.get("max_concurrent_async_job_count"), &b);
        b.job_slots = Arc::new(tokio::sync::Semaphore::new(slots));
        let root = Node::root(manifest);
        let mut c = root.component(Some("DeclarativeSource"))?;
        c.ignore(&[
            "version",
            "definitions",
            "schemas",
            "metadata",
            "description",
            "concurrency_level",
            "max_concurrent_async_job_count",
        ]);
        if let Some(n) = c.child("api_budget") {
            b.http.set_budget(crate::budget::Budget::decode(n, &b)?);
        }
        if let Some(n) = c.child("spec") {
            spec_of(n)?;
        }
        let mut streams = Vec::new();
        for n in stream_nodes(c.children("streams")?, &b)? {
            let mut s = StreamDef::decode(n, &b)?;
            s.set_concurrency(concurrency);
            if streams.iter().any(|x: &Arc<StreamDef>| x.name == s.name) {
                return Err(Error::config(format!("two streams are named '{}'", s.name)));
            }
            streams.push(Arc::new(s));
        }
        if streams.is_empty() {
            return Err(Error::config("the manifest defines no streams"));
        }
        let mut check = Check::default();
        let check_streams = match c.child("check") {
            None => Vec::new(),
            Some(n) => {
                let mut k = n.component(Some("CheckStream"))?;
                k.expect(&["CheckStream", "CheckDynamicStream"])?;
                // Applied to the config before decoding (`check_overrides`).
                k.ignore(&["config_overrides"]);
                if k.type_name == "CheckDynamicStream" {
                    let count = k
                        .opt_i64("stream_count")?
                        .ok_or_else(|| k.error("'stream_count' is required"))?;
                    let availability = k.bool_or("use_check_availability", true)?;
                    k.finish()?;
                    check.first = Some((count.max(0) as usize, availability));
                    Vec::new()
                } else {
                    let names = k.string_list("stream_names")?.unwrap_or_default();
                    let generated = top.get(crate::dynamic::GENERATED);
                    for d in k.children("dynamic_streams_check_configs")? {
                        let mut d = d.component(Some("DynamicStreamCheckConfig"))?;
                        let name = d.str("dynamic_stream_name")?;
                        let count = d.opt_i64("stream_count")?.map(|n| n.max(0) as usize);
                        d.finish()?;
                        let of_def = generated
                            .and_then(|g| g.get(&name))
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect()
                            });
                        check.dynamic.push((name, of_def, count));
                    }
                    for name in &names {
                        if !streams.iter().any(|s| &s.name == name) {
                            return Err(
                                k.error(format!("'{name}' is not a stream of this manifest"))
                            );
                        }
                    }
                    k.finish()?;
                    names
                }
            }
        };
        let groups = stream_groups(top.get("stream_groups"), &streams)?;
        c.finish()?;
        Ok(Self {
            streams,
            check_streams,
            check,
            concurrency,
            groups,
        })
    }

    /// Reads the first page of every check stream.
    pub async fn check(&self) -> Result<()> {
        let mut names: Vec<&String> = match self.check.first {
            Some((_, false)) => return Ok(()),
            Some((n, true)) => self.streams.iter().map(|s| &s.name).take(n).collect(),
            None if self.check_streams.is_empty() && self.check.dynamic.is_empty() => {
                self.streams.iter().map(|s| &s.name).take(1).collect()
            }
            None => self.check_streams.iter().collect(),
        };
        for (def, generated, count) in &self.check.dynamic {
            let generated = generated.as_ref().ok_or_else(|| {
                Error::config(format!("Dynamic stream {def} is not found in manifest."))
            })?;
            names.extend(generated.iter().take(count.unwrap_or(usize::MAX)));
        }
        for name in names {
            let stream = self
                .streams
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| Error::config(format!("no stream '{name}'")))?;
            stream.check().await.map_err(|e| {
                Error::config(format!("stream '{name}' is not available: {}", e.message))
            })?;
        }
        Ok(())
    }
}

/// The config a check runs with: the check component's `config_overrides` laid over it, one
/// level deep, values as written, as airbyte-cdk overlays them.
pub fn check_overrides(manifest: &Value, config: &Value) -> Result<Value> {
    let Some(Value::Object(overrides)) = manifest
        .get("check")
        .and_then(|c| c.get("config_overrides"))
    else {
        return Ok(config.clone());
    };
    if overrides.is_empty() {
        return Ok(config.clone());
    }
    let reserved: Vec<&String> = overrides
        .keys()
        .filter(|k| k.starts_with("__airbyte"))
        .collect();
    if !reserved.is_empty() {
        return Err(Error::system(format!(
            "This connector's manifest is invalid: its check component overrides the reserved config key(s) {reserved:?}. Keys prefixed with `__airbyte` belong to the platform, not to the connector's spec."
        )));
    }
    if manifest.to_string().contains("\"refresh_token_updater\"") {
        return Err(Error::system(
            "This connector's manifest is invalid: `config_overrides` cannot be used by a manifest that declares a `refresh_token_updater` (a token refresh during check would persist the overridden config)",
        ));
    }
    let mut keys: Vec<&String> = overrides.keys().collect();
    keys.sort();
    tracing::info!("overriding config keys for the check operation: {keys:?}");
    let mut out = config.clone();
    if let Value::Object(m) = &mut out {
        m.extend(overrides.clone());
    }
    Ok(out)
}

/// `stream_groups` (`StreamGroup`s with `BlockSimultaneousSyncsAction`): one lock per group,
/// by stream name; a stream may not share a group with one of its parents.
fn stream_groups(
    groups: Option<&Value>,
    streams: &[Arc<StreamDef>],
) -> Result<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
    let mut out = std::collections::HashMap::new();
    let mut group_of = std::collections::HashMap::new();
    let Some(Value::Object(groups)) = groups else {
        return Ok(out);
    };
    for (group, cfg) in groups {
        let action = cfg
            .get("action")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if action != "BlockSimultaneousSyncsAction" {
            return Err(crate::manifest::unsupported_type(
                action,
                &format!("/stream_groups/{group}/action"),
                &["BlockSimultaneousSyncsAction"],
            ));
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        for s in cfg
            .get("streams")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = s
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                out.insert(name.to_string(), lock.clone());
                group_of.insert(name.to_string(), group.clone());
            }
        }
    }
    for s in streams {
        let (Some(group), Some(router)) = (group_of.get(&s.name), &s.retriever.router) else {
            continue;
        };
        let mut ancestors = Vec::new();
        router.ancestors(&mut ancestors);
        if let Some(parent) = ancestors.iter().find(|a| group_of.get(*a) == Some(group)) {
            return Err(Error::config(format!(
                "Stream '{}' and its parent stream '{parent}' are both in group '{group}'. A child stream must not share a group with its parent to avoid deadlock.",
                s.name
            )));
        }
    }
    Ok(out)
}

/// The stream definitions of `streams`, those of a `ConditionalStreams` whose `condition`
/// holds for the config in its place.
fn stream_nodes<'a>(nodes: Vec<Node<'a>>, b: &Build) -> Result<Vec<Node<'a>>> {
    let mut out = Vec::new();
    for n in nodes {
        if n.value.get("type").and_then(Value::as_str) != Some("ConditionalStreams") {
            out.push(n);
            continue;
        }
        let mut c = n.component(Some("ConditionalStreams"))?;
        let condition = c.template(b, "condition")?;
        let streams = c.children("streams")?;
        c.finish()?;
        if condition.eval_bool(&Vars::new())? {
            out.extend(streams);
        }
    }
    Ok(out)
}

/// `concurrency_level`: `default_concurrency` (a number or a template), capped by
/// `max_concurrency`.
fn concurrency(manifest: &Value, config: &Value) -> Result<usize> {
    let Some(node) = manifest.get("concurrency_level") else {
        return Ok(DEFAULT_CONCURRENCY);
    };
    let mut c = Node {
        value: node,
        path: "/concurrency_level".into(),
        params: Default::default(),
    }
    .component(Some("ConcurrencyLevel"))?;
    c.expect(&["ConcurrencyLevel"])?;
    let level = match c.required("default_concurrency")? {
        Value::Number(n) => n.as_f64().unwrap_or(1.0),
        Value::String(s) => {
            let interp = Interpolator::new(config);
            let t = Template::new(&interp, &s, &Value::Object(Default::default()))
                .map_err(|e| c.error(e))?;
            match t.eval(&Vars::new())? {
                Value::Number(n) => n.as_f64().unwrap_or(1.0),
                other => {
                    return Err(c.error(format!(
                        "default_concurrency must evaluate to a number, got {other}"
                    )));
                }
            }
        }
        other => return Err(c.error(format!("default_concurrency must be a number, got {other}"))),
    };
    let max = c.opt_f64("max_concurrency")?;
    c.finish()?;
    let level = max.map_or(level, |m| level.min(m));
    Ok((level.max(1.0)) as usize)
}

fn spec_of(node: Node<'_>) -> Result<ConnectorSpecification> {
    let mut c = node.component(Some("Spec"))?;
    c.expect(&["Spec"])?;
    let connection_specification = match c.required("connection_specification")? {
        v @ Value::Object(_) => v,
        other => {
            return Err(c.error(format!(
                "connection_specification must be a mapping, got {other}"
            )));
        }
    };
    let documentation_url = c.opt_str("documentation_url")?;
    let advanced_auth = c.get("advanced_auth");
    if let Some(rules) = c.get("config_normalization_rules") {
        crate::config_rules::check(&rules)?;
    }
    c.finish()?;
    let mut spec = ConnectorSpecification::new(connection_specification);
    spec.documentation_url = documentation_url;
    spec.advanced_auth = advanced_auth;
    Ok(spec)
}

/// The `spec` of a `$ref`-resolved manifest (an empty object schema when it has none).
pub fn manifest_spec(manifest: &Value) -> Result<ConnectorSpecification> {
    match manifest.get("spec") {
        Some(v) => spec_of(Node {
            value: v,
            path: "/spec".into(),
            params: Default::default(),
        }),
        None => Ok(ConnectorSpecification::new(serde_json::json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object", "properties": {}, "additionalProperties": true
        }))),
    }
}
