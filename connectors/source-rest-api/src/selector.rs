//! `RecordSelector`: records from a decoded response with `DpathExtractor` (`field_path`,
//! `*` wildcards, `[]` for the root), kept or dropped by `RecordFilter`, then transformed.

use cdk::{Error, Result};
use serde_json::Value;

use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Node};
use crate::transform::Transformation;

#[derive(Debug)]
pub struct RecordSelector {
    field_path: Vec<Template>,
    filter: Option<Template>,
    transformations: Vec<Transformation>,
    transform_before_filtering: bool,
    /// `schema_normalization: Default`: set once the stream's schema is known.
    normalize: bool,
    normalizer: Option<crate::normalize::Normalizer>,
    /// `record_expander` of the extractor.
    expander: Option<crate::expander::RecordExpander>,
    /// A `CombinedExtractor` in place of the `DpathExtractor`: its sub-extractors, as
    /// selectors that only extract.
    combined: Option<Combined>,
    /// False for a `CombinedExtractor`'s sub-extractors: records are checked once combined
    /// (after `skip_empty_records` dropped the empty ones).
    check_objects: bool,
}

#[derive(Debug)]
struct Combined {
    first_match: bool,
    skip_empty: bool,
    parts: Vec<RecordSelector>,
}

type Counted = (Vec<Value>, usize);
type CountedFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Counted>> + Send + 'a>>;

impl RecordSelector {
    pub fn decode(node: Node<'_>, b: &Build, transformations: Vec<Transformation>) -> Result<Self> {
        let mut c = node.component(Some("RecordSelector"))?;
        c.expect(&["RecordSelector"])?;
        let extractor = Self::decode_extractor(c.required_child("extractor")?, b)?;
        let filter = match c.child("record_filter") {
            None => None,
            Some(n) => {
                let mut f = n.component(Some("RecordFilter"))?;
                f.expect(&["RecordFilter"])?;
                let t = f
                    .opt_template(b, "condition")?
                    .filter(|t| !t.source().is_empty());
                f.finish()?;
                t
            }
        };
        let normalize = match c.child("schema_normalization") {
            None => false,
            Some(n) => match n.value.as_str() {
                Some("None") => false,
                Some("Default") => true,
                _ => {
                    return Err(c.error(format!(
                        "schema_normalization {} is not supported (None or Default; custom normalizations are Python code)",
                        n.value
                    )));
                }
            },
        };
        let transform_before_filtering = c.bool_or("transform_before_filtering", false)?;
        c.finish()?;
        Ok(Self {
            filter,
            transformations,
            transform_before_filtering,
            normalize,
            ..extractor
        })
    }

    /// An extractor of values of any type, not only records: a `DpathExtractor` or a
    /// `CombinedExtractor` applied to a record (a `FileUploader`'s `download_target_extractor`).
    pub fn decode_value_extractor(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut out = Self::decode_extractor(node, b)?;
        out.check_objects = false;
        Ok(out)
    }

    /// A selector that only extracts: a `DpathExtractor` or a `CombinedExtractor`.
    fn decode_extractor(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut e = node.component(Some("DpathExtractor"))?;
        e.expect(&["DpathExtractor", "CombinedExtractor"])?;
        let mut out = Self {
            field_path: Vec::new(),
            filter: None,
            transformations: Vec::new(),
            transform_before_filtering: false,
            normalize: false,
            normalizer: None,
            expander: None,
            combined: None,
            check_objects: true,
        };
        if e.type_name == "CombinedExtractor" {
            let first_match = match e.opt_str("mode")?.as_deref() {
                None | Some("union") => false,
                Some("first_match") => true,
                Some(other) => {
                    return Err(
                        e.error(format!("mode must be union or first_match, got '{other}'"))
                    );
                }
            };
            let parts = e
                .children("extractors")?
                .into_iter()
                .map(|n| {
                    let mut part = Self::decode_extractor(n, b)?;
                    part.check_objects = false;
                    Ok(part)
                })
                .collect::<Result<Vec<_>>>()?;
            if parts.is_empty() {
                return Err(e.error("'extractors' needs at least one extractor"));
            }
            out.combined = Some(Combined {
                first_match,
                skip_empty: e.bool_or("skip_empty_records", false)?,
                parts,
            });
            e.finish()?;
            return Ok(out);
        }
        out.expander = e
            .child("record_expander")
            .map(|n| crate::expander::RecordExpander::decode(n, b))
            .transpose()?;
        out.field_path = e
            .string_list("field_path")?
            .ok_or_else(|| e.error("the field 'field_path' is required"))?
            .iter()
            .map(|p| e.template_of(b, "field_path", p))
            .collect::<Result<Vec<_>>>()?;
        e.finish()?;
        Ok(out)
    }

    /// The records of `doc` and how many empty records a `CombinedExtractor` dropped (which
    /// airbyte-cdk still counts in the page's size), truncated lists fetched.
    pub fn extract_counting<'a>(&'a self, doc: &'a mut Value, take: bool) -> CountedFuture<'a> {
        Box::pin(async move {
            let Some(c) = &self.combined else {
                return Ok((self.extract_fetching(doc, take).await?, 0));
            };
            let mut out = Vec::new();
            let mut dropped_all = 0;
            for part in &c.parts {
                let (mut records, mut dropped) = part.extract_counting(doc, false).await?;
                if c.skip_empty {
                    let before = records.len();
                    records.retain(crate::interpolation::truthy);
                    dropped += before - records.len();
                    if before > records.len() {
                        tracing::warn!(
                            "CombinedExtractor dropped {} empty record(s) because `skip_empty_records` is enabled",
                            before - records.len()
                        );
                    }
                }
                if c.first_match {
                    if !records.is_empty() {
                        out = records;
                        dropped_all = dropped;
                        break;
                    }
                } else {
                    out.extend(records);
                    dropped_all += dropped;
                }
            }
            if self.check_objects {
                self.objects_only(&out)?;
            }
            Ok((out, dropped_all))
        })
    }

    /// [`Self::extract_counting`] without fetching truncated lists.
    fn extract_combined(&self, c: &Combined, doc: &mut Value) -> Result<Counted> {
        let mut out = Vec::new();
        let mut dropped_all = 0;
        for part in &c.parts {
            let (mut records, mut dropped) = match &part.combined {
                Some(inner) => part.extract_combined(inner, doc)?,
                None => (part.extract(doc, false)?, 0),
            };
            if c.skip_empty {
                let before = records.len();
                records.retain(crate::interpolation::truthy);
                dropped += before - records.len();
            }
            if c.first_match {
                if !records.is_empty() {
                    out = records;
                    dropped_all = dropped;
                    break;
                }
            } else {
                out.extend(records);
                dropped_all += dropped;
            }
        }
        if self.check_objects {
            self.objects_only(&out)?;
        }
        Ok((out, dropped_all))
    }

    /// Whether a `union` `CombinedExtractor` is anywhere in the extractor's tree (its record
    /// count is then the sum of its parts', which an `OffsetIncrement` cannot count pages by).
    pub fn has_union(&self) -> bool {
        self.combined
            .as_ref()
            .is_some_and(|c| !c.first_match || c.parts.iter().any(Self::has_union))
    }

    /// Gives the selector the stream's schema, which `schema_normalization: Default` casts
    /// records to.
    pub fn set_schema(&mut self, schema: &Value) {
        if self.normalize {
            self.normalizer = crate::normalize::Normalizer::new(schema);
        }
    }

    /// The field path with its interpolations evaluated (a missing value is an empty step).
    fn path(&self) -> Result<Vec<String>> {
        let vars = Vars::new();
        self.field_path
            .iter()
            .map(|t| Ok(t.eval_str(&vars)?.unwrap_or_default()))
            .collect()
    }

    /// [`Self::extract`], with the complete lists of truncated records fetched by the
    /// expander's `truncated_list_retriever`.
    pub async fn extract_fetching(&self, doc: &mut Value, take: bool) -> Result<Vec<Value>> {
        let Some(x) = self.expander.as_ref().filter(|x| x.fetches()) else {
            return self.extract(doc, take);
        };
        let mut out = Vec::new();
        for r in self.extract_unexpanded(doc, take)? {
            x.expand_fetching(r, &mut out).await?;
        }
        if self.check_objects {
            self.objects_only(&out)?;
        }
        Ok(out)
    }

    /// The records in `doc`. With `take`, they are moved out of `doc` instead of copied.
    pub fn extract(&self, doc: &mut Value, take: bool) -> Result<Vec<Value>> {
        if let Some(c) = &self.combined {
            return Ok(self.extract_combined(c, doc)?.0);
        }
        let extracted = self.extract_unexpanded(doc, take)?;
        let extracted = match &self.expander {
            None => extracted,
            Some(x) => {
                let mut out = Vec::with_capacity(extracted.len());
                for r in extracted {
                    x.expand(r, &mut out)?;
                }
                out
            }
        };
        if self.check_objects {
            self.objects_only(&extracted)?;
        }
        Ok(extracted)
    }

    /// The values at `field_path`, before any `record_expander`.
    fn extract_unexpanded(&self, doc: &mut Value, take: bool) -> Result<Vec<Value>> {
        let path = self.path()?;
        let extracted: Vec<Value> = if path.iter().any(|p| p == "*") {
            let mut found = Vec::new();
            glob(doc, &path, &mut found);
            found.into_iter().cloned().collect()
        } else {
            let Some(target) = lookup_mut(doc, &path) else {
                return Ok(Vec::new());
            };
            let v = if take {
                std::mem::take(target)
            } else {
                target.clone()
            };
            match v {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                Value::Object(m) if m.is_empty() && path.is_empty() => Vec::new(),
                other => vec![other],
            }
        };
        Ok(extracted)
    }

    /// An error for a record that is not an object.
    fn objects_only(&self, extracted: &[Value]) -> Result<()> {
        let path = self.path()?;
        for r in extracted {
            if !r.is_object() {
                return Err(Error::system(format!(
                    "a record at field_path {path:?} is not an object: {}",
                    crate::decoder::snippet(r.to_string().as_bytes())
                )));
            }
        }
        Ok(())
    }

    /// Filters and transforms records (in Airbyte's order unless `transform_before_filtering`).
    pub fn select(&self, records: Vec<Value>, vars: &Vars) -> Result<Vec<Value>> {
        if self.filter.is_none() && self.transformations.is_empty() && self.normalizer.is_none() {
            return Ok(records);
        }
        let mut out = Vec::with_capacity(records.len());
        for mut r in records {
            if self.transform_before_filtering {
                self.transform(&mut r, vars)?;
            }
            if let Some(f) = &self.filter
                && !f.eval_bool_with_record(&mut r, vars)?
            {
                continue;
            }
            if !self.transform_before_filtering {
                self.transform(&mut r, vars)?;
            }
            if let Some(n) = &self.normalizer {
                n.apply(&mut r);
            }
            out.push(r);
        }
        Ok(out)
    }

    fn transform(&self, r: &mut Value, vars: &Vars) -> Result<()> {
        for t in &self.transformations {
            t.apply(r, vars)?;
        }
        Ok(())
    }
}

/// Runs `f` with `record` visible to templates as `record`, then hands the record back.
pub fn with_record<T>(
    mut record: Value,
    vars: &Vars,
    f: impl FnOnce(&Vars) -> Result<T>,
) -> Result<(Value, T)> {
    let out = crate::interpolation::with_record(&mut record, vars, f)?;
    Ok((record, out))
}

fn lookup_mut<'v>(v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    let mut cur = v;
    for key in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(key)?,
            Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// dpath's `values`: every value matching a path with `*` segments.
/// dpath's `values` for a path with `*` segments (for other components).
pub fn glob_values<'v>(v: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    glob(v, path, out)
}

fn glob<'v>(v: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    let Some((head, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    match (head.as_str(), v) {
        ("*", Value::Object(m)) => m.values().for_each(|c| glob(c, rest, out)),
        ("*", Value::Array(a)) => a.iter().for_each(|c| glob(c, rest, out)),
        (k, Value::Object(m)) => {
            if let Some(c) = m.get(k) {
                glob(c, rest, out);
            }
        }
        (k, Value::Array(a)) => {
            if let Some(c) = k.parse::<usize>().ok().and_then(|i| a.get(i)) {
                glob(c, rest, out);
            }
        }
        _ => {}
    }
}

/// Records of a page: parsed values, or spans of the response body (the fast path, when no
/// filter or transformation needs the record's content).
#[derive(Debug)]
pub enum Records {
    Values(Vec<Value>),
    Raw {
        body: bytes::Bytes,
        spans: Vec<(usize, usize)>,
    },
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Values(v) => v.len(),
            Records::Raw { spans, .. } => spans.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record at `index` as a value.
    pub fn get(&self, index: usize) -> Result<Option<Value>> {
        match self {
            Records::Values(v) => Ok(v.get(index).cloned()),
            Records::Raw { body, spans } => match spans.get(index) {
                Some((s, e)) => serde_json::from_slice(&body[*s..*e])
                    .map(Some)
                    .map_err(|e| Error::system(format!("a record is not valid JSON: {e}"))),
                None => Ok(None),
            },
        }
    }

    /// Each record's JSON text (raw records) or value.
    pub fn for_each(&self, mut f: impl FnMut(RecordRef<'_>) -> Result<()>) -> Result<()> {
        match self {
            Records::Values(v) => v.iter().try_for_each(|r| f(RecordRef::Value(r))),
            Records::Raw { body, spans } => {
                for (s, e) in spans {
                    let text = std::str::from_utf8(&body[*s..*e])
                        .map_err(|e| Error::system(format!("a record is not UTF-8: {e}")))?;
                    f(RecordRef::Raw(text))?;
                }
                Ok(())
            }
        }
    }

    pub fn into_values(self) -> Result<Vec<Value>> {
        match self {
            Records::Values(v) => Ok(v),
            raw => {
                let mut out = Vec::with_capacity(raw.len());
                raw.for_each(|r| {
                    out.push(r.to_value()?);
                    Ok(())
                })?;
                Ok(out)
            }
        }
    }
}

/// One record of a page.
#[derive(Debug, Clone, Copy)]
pub enum RecordRef<'a> {
    Value(&'a Value),
    /// The record's JSON object text, as the API sent it.
    Raw(&'a str),
}

impl RecordRef<'_> {
    pub fn to_value(&self) -> Result<Value> {
        match self {
            RecordRef::Value(v) => Ok((*v).clone()),
            RecordRef::Raw(t) => serde_json::from_str(t)
                .map_err(|e| Error::system(format!("a record is not valid JSON: {e}"))),
        }
    }

    /// The value of a top-level field, without parsing the rest of a raw record.
    pub fn field(&self, name: &str) -> Option<Value> {
        match self {
            RecordRef::Value(v) => v.get(name).cloned(),
            RecordRef::Raw(t) => {
                let mut de = serde_json::Deserializer::from_str(t);
                serde::de::DeserializeSeed::deserialize(raw::FieldSeed(name), &mut de)
                    .ok()
                    .flatten()
            }
        }
    }
}

impl RecordSelector {
    /// True when records can pass through as the API's text (no filter, no transformation,
    /// no wildcard).
    pub fn passes_raw(&self) -> bool {
        self.filter.is_none()
            && self.transformations.is_empty()
            && self.normalizer.is_none()
            && self.expander.is_none()
            && self.combined.is_none()
            && self.field_path.iter().all(|t| t.source() != "*")
    }

    /// The spans (byte ranges of `body`) of the records, without building values.
    pub fn extract_raw(&self, body: &[u8]) -> Result<Vec<(usize, usize)>> {
        let path = self.path()?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let target = serde::de::DeserializeSeed::deserialize(raw::PathSeed(&path), &mut de)
            .map_err(|e| {
                Error::system(format!(
                    "the response is not valid JSON: {e}: {}",
                    crate::decoder::snippet(body)
                ))
            })?;
        let Some(target) = target else {
            return Ok(Vec::new());
        };
        let base = body.as_ptr() as usize;
        let span = |r: &serde_json::value::RawValue| {
            let start = r.get().as_ptr() as usize - base;
            (start, start + r.get().len())
        };
        let text = target.get();
        match text.as_bytes().first() {
            Some(b'[') => {
                let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)?;
                let mut spans = Vec::with_capacity(items.len());
                for item in items {
                    if !item.get().starts_with('{') {
                        return Err(Error::system(format!(
                            "a record at field_path {path:?} is not an object: {}",
                            crate::decoder::snippet(item.get().as_bytes())
                        )));
                    }
                    // The span of an item parsed from `text` is inside `body` too.
                    let start = item.get().as_ptr() as usize - base;
                    spans.push((start, start + item.get().len()));
                }
                Ok(spans)
            }
            Some(b'{') if !(path.is_empty() && text.trim() == "{}") => Ok(vec![span(target)]),
            Some(b'{') | Some(b'n') => Ok(Vec::new()),
            _ => Err(Error::system(format!(
                "a record at field_path {path:?} is not an object: {}",
                crate::decoder::snippet(text.as_bytes())
            ))),
        }
    }
}

/// Deserializers that look at part of a document without building the rest.
mod raw {
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;
    use serde_json::value::RawValue;

    /// The raw value at a path of keys (or list indexes); `None` when the path is absent.
    pub struct PathSeed<'p>(pub &'p [String]);

    impl<'de, 'p> DeserializeSeed<'de> for PathSeed<'p> {
        type Value = Option<&'de RawValue>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            if self.0.is_empty() {
                return <&RawValue as serde::Deserialize>::deserialize(d).map(Some);
            }
            d.deserialize_any(PathVisitor(self.0))
        }
    }

    struct PathVisitor<'p>(&'p [String]);

    impl<'de, 'p> Visitor<'de> for PathVisitor<'p> {
        type Value = Option<&'de RawValue>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON document")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if found.is_none() && key == self.0[0] {
                    found = map.next_value_seed(PathSeed(&self.0[1..]))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let index: Option<usize> = self.0[0].parse().ok();
            let mut found = None;
            let mut i = 0;
            loop {
                if Some(i) == index {
                    match seq.next_element_seed(PathSeed(&self.0[1..]))? {
                        Some(v) => found = v,
                        None => break,
                    }
                } else if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                i += 1;
            }
            Ok(found)
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    /// One top-level field of an object.
    pub struct FieldSeed<'n>(pub &'n str);

    impl<'de, 'n> DeserializeSeed<'de> for FieldSeed<'n> {
        type Value = Option<Value>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, 'n> Visitor<'de> for FieldSeed<'n> {
        type Value = Option<Value>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if found.is_none() && key == self.0 {
                    found = Some(map.next_value::<Value>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(path: &[&str]) -> RecordSelector {
        let b = Build::new(&json!({}), None, 1);
        let v = json!({"type": "RecordSelector", "extractor": {"type": "DpathExtractor", "field_path": path}});
        RecordSelector::decode(Node::root(&v), &b, Vec::new()).unwrap()
    }

    fn texts(body: &str, path: &[&str]) -> Vec<String> {
        selector(path)
            .extract_raw(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(s, e)| body[s..e].to_string())
            .collect()
    }

    #[test]
    fn raw_extraction_matches_value_extraction() {
        let body = r#"{"meta": {"n": [1, {"x": "}"}]}, "data": [{"id": 1, "s": "a\"b"}, {"id": 2}], "next": null}"#;
        assert_eq!(
            texts(body, &["data"]),
            vec![r#"{"id": 1, "s": "a\"b"}"#, r#"{"id": 2}"#]
        );
        assert_eq!(texts(body, &["missing"]), Vec::<String>::new());
        assert_eq!(texts(r#"[{"id": 1}]"#, &[]), vec![r#"{"id": 1}"#]);
        assert_eq!(
            texts(r#"{"a": {"b": [{"id": 3}]}}"#, &["a", "b"]),
            vec![r#"{"id": 3}"#]
        );
        assert_eq!(
            texts(r#"{"a": [{"x": 0}, {"id": 4}]}"#, &["a", "1"]),
            vec![r#"{"id": 4}"#]
        );
        assert_eq!(
            texts(r#"{"one": {"id": 5}}"#, &["one"]),
            vec![r#"{"id": 5}"#]
        );
        assert!(
            selector(&["data"])
                .extract_raw(br#"{"data": [1, 2]}"#)
                .is_err()
        );
        assert!(
            selector(&["data"])
                .extract_raw(br#"{"data": [{"id": 1}"#)
                .is_err()
        );
        let mut doc: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            selector(&["data"]).extract(&mut doc, false).unwrap().len(),
            2
        );
    }

    #[test]
    fn one_field_of_a_raw_record() {
        let r = RecordRef::Raw(r#"{"a": {"deep": [1]}, "updated_at": "2024-01-01", "z": 1}"#);
        assert_eq!(r.field("updated_at"), Some(json!("2024-01-01")));
        assert_eq!(r.field("nope"), None);
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("data|id|[a-zé中0-9*]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn path_part() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("data".to_string()),
            Just("*".to_string()),
            Just("0".to_string()),
            Just("{{ config['p'] }}".to_string()),
            "\\PC{0,4}",
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Any field path over any response (valid JSON or not): records or an error.
        #[test]
        fn extraction_never_panics(
            doc in json(),
            path in prop::collection::vec(path_part(), 0..4),
            garbage in "\\PC{0,12}",
            cut in 0usize..64,
        ) {
            let paths: Vec<&str> = path.iter().map(String::as_str).collect();
            let b = Build::new(&json!({"p": "é"}), None, 1);
            let v = json!({"type": "RecordSelector",
                "extractor": {"type": "DpathExtractor", "field_path": paths}});
            let Ok(sel) = RecordSelector::decode(Node::root(&v), &b, Vec::new()) else {
                return Ok(());
            };
            let body = doc.to_string();
            let _ = sel.extract_raw(body.as_bytes());
            let _ = sel.extract_raw(garbage.as_bytes());
            let truncated: Vec<u8> = body.bytes().take(cut).collect();
            if let Ok(spans) = sel.extract_raw(&truncated) {
                let records = Records::Raw { body: truncated.clone().into(), spans };
                let _ = records.into_values();
            }
            let mut d = doc.clone();
            let _ = sel.extract(&mut d, true);
            let mut d = doc;
            let _ = sel.extract(&mut d, false);
            let _ = RecordRef::Raw(&garbage).field("id");
        }
    }
}
