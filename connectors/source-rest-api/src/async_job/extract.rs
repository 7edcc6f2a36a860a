//! Values out of job responses: the job's status and its download targets (`DpathExtractor`,
//! whose values may be of any type here), and the records of a download (`DpathExtractor` on
//! the download decoder's documents, or `ResponseToFileExtractor`'s CSV reading).

use cdk::{Error, Result};
use serde_json::Value;

use crate::decoder::Decoder;
use crate::decoder::csv::CsvOptions;
use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Node};

/// A `DpathExtractor` yielding values of any type, as airbyte-cdk's does: the items of a list
/// found at the path, else the value found when it is truthy.
#[derive(Debug)]
pub struct ValueExtractor {
    field_path: Vec<Template>,
    /// `record_expander`.
    expander: Option<crate::expander::RecordExpander>,
}

impl ValueExtractor {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("DpathExtractor"))?;
        c.expect(&["DpathExtractor"])?;
        let field_path = c
            .string_list("field_path")?
            .ok_or_else(|| c.error("the field 'field_path' is required"))?
            .iter()
            .map(|p| c.template_of(b, "field_path", p))
            .collect::<Result<Vec<_>>>()?;
        let expander = c
            .child("record_expander")
            .map(|n| crate::expander::RecordExpander::decode(n, b))
            .transpose()?;
        c.finish()?;
        Ok(Self {
            field_path,
            expander,
        })
    }

    /// The extractor of the whole document (`field_path: []`).
    pub fn root() -> Self {
        Self {
            field_path: Vec::new(),
            expander: None,
        }
    }

    /// The values of every document.
    pub fn values(&self, docs: Vec<Value>) -> Result<Vec<Value>> {
        let vars = Vars::new();
        let path = self
            .field_path
            .iter()
            .map(|t| Ok(t.eval_str(&vars)?.unwrap_or_default()))
            .collect::<Result<Vec<String>>>()?;
        let mut out = Vec::new();
        for doc in docs {
            let found = if path.iter().any(|p| p == "*") {
                let mut found = Vec::new();
                glob(&doc, &path, &mut found);
                Value::Array(found.into_iter().cloned().collect())
            } else {
                lookup(&doc, &path)
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new()))
            };
            let found = match found {
                Value::Array(items) => items,
                v if crate::interpolation::truthy(&v) => vec![v],
                _ => Vec::new(),
            };
            match &self.expander {
                None => out.extend(found),
                Some(x) => {
                    for v in found {
                        x.expand(v, &mut out)?;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn lookup<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, key| match cur {
        Value::Object(m) => m.get(key),
        Value::Array(a) => a.get(key.parse::<usize>().ok()?),
        _ => None,
    })
}

/// dpath's `values`: every value matching a path with `*` segments.
fn glob<'v>(v: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    let Some((head, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    match (head.as_str(), v) {
        ("*", Value::Object(m)) => m.values().for_each(|c| glob(c, rest, out)),
        ("*", Value::Array(a)) => a.iter().for_each(|c| glob(c, rest, out)),
        (k, other) => {
            if let Some(c) = lookup(other, std::slice::from_ref(&k.to_string())) {
                glob(c, rest, out);
            }
        }
    }
}

/// How the records of a download come out of its responses.
#[derive(Debug)]
pub enum DownloadExtractor {
    /// `DpathExtractor` on the documents of the download decoder.
    Dpath(ValueExtractor),
    /// `ResponseToFileExtractor`: the body (gzip or not) read as CSV, every value text, the
    /// cells pandas reads as missing null.
    Csv(CsvOptions),
}

/// What pandas reads as missing by default (`keep_default_na`).
const PANDAS_NA: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

impl DownloadExtractor {
    pub fn decode(node: Option<Node<'_>>, b: &Build) -> Result<Self> {
        let Some(node) = node else {
            return Ok(Self::Dpath(ValueExtractor::root()));
        };
        if node.value.get("type").and_then(Value::as_str) != Some("ResponseToFileExtractor") {
            return Ok(Self::Dpath(ValueExtractor::decode(node, b)?));
        }
        let mut c = node.component(None)?;
        let preserve = c.bool_or("preserve_na_values", false)?;
        c.finish()?;
        let none: Vec<String> = match preserve {
            true => vec![String::new()],
            false => PANDAS_NA.iter().map(|s| s.to_string()).collect(),
        };
        let options = CsvOptions::new("utf-8", ",", none).map_err(Error::config)?;
        Ok(Self::Csv(options))
    }

    /// The records of one response, and its first document (what a paginator sees as
    /// `response`).
    pub fn records(&self, decoder: &Decoder, body: &[u8]) -> Result<(Vec<Value>, Value)> {
        let (values, first) = match self {
            Self::Dpath(x) => {
                let docs = decoder.decode(body)?;
                let first = docs.first().cloned().unwrap_or(Value::Null);
                (x.values(docs)?, first)
            }
            Self::Csv(options) => {
                let text = crate::decoder::archive::gunzip(body)?;
                let clean: Vec<u8> = text.iter().copied().filter(|b| *b != 0).collect();
                // What airbyte-cdk's paginator sees of a body its decoder cannot read: `{}`.
                let first = decoder
                    .decode(body)
                    .ok()
                    .and_then(|d| d.into_iter().next())
                    .unwrap_or_else(|| Value::Object(Default::default()));
                (options.parse(&clean)?, first)
            }
        };
        for v in &values {
            if !v.is_object() {
                return Err(Error::system(format!(
                    "a downloaded record is not an object: {}",
                    crate::decoder::snippet(v.to_string().as_bytes())
                )));
            }
        }
        Ok((values, first))
    }
}

/// A value as Python's `str()` writes it: how an API status is looked up in the status map.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z*0-9]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any body through any download extractor and decoder, any document through a
        /// status extractor: values or an error, never a panic.
        #[test]
        fn garbage_bodies_and_documents_never_panic(
            body in prop::collection::vec(any::<u8>(), 0..64),
            text in "\\PC{0,40}",
            doc in json_value(),
            path in prop::collection::vec("[a-z*0-9]{0,3}", 0..3),
        ) {
            let b = Build::new(&json!({}), None, 1);
            let csv = json!({"type": "ResponseToFileExtractor"});
            let dpath = json!({"type": "DpathExtractor", "field_path": path.clone()});
            for node in [&csv, &dpath] {
                let x = DownloadExtractor::decode(Some(Node::root(node)), &b).expect("decodes");
                for decoder in [Decoder::Json, Decoder::Jsonl, Decoder::Iterable] {
                    let _ = x.records(&decoder, &body);
                    let _ = x.records(&decoder, text.as_bytes());
                }
            }
            let status = ValueExtractor::decode(Node::root(&dpath), &b).expect("decodes");
            if let Ok(values) = status.values(vec![doc]) {
                values.iter().for_each(|v| drop(py_str(v)));
            }
        }
    }

    #[test]
    fn values_of_any_type_come_out() {
        let x = ValueExtractor::root();
        assert_eq!(x.values(vec![json!("done")]).unwrap(), vec![json!("done")]);
        assert_eq!(x.values(vec![json!("")]).unwrap(), Vec::<Value>::new());
        assert_eq!(
            x.values(vec![json!(["a", "b"])]).unwrap(),
            vec![json!("a"), json!("b")]
        );
    }

    #[test]
    fn python_str_of_statuses() {
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(3)), "3");
        assert_eq!(py_str(&json!(1.0)), "1.0");
        assert_eq!(py_str(&json!("x")), "x");
    }

    #[test]
    fn response_to_file_reads_csv_with_pandas_missing_values() {
        let b = Build::new(&json!({}), None, 1);
        let node = json!({"type": "ResponseToFileExtractor"});
        let x = DownloadExtractor::decode(Some(Node::root(&node)), &b).unwrap();
        let (records, _) = x
            .records(&Decoder::Json, b"id,name\n1,NA\n2,\n\n3,x\0y\n")
            .unwrap();
        assert_eq!(
            records,
            vec![
                json!({"id": "1", "name": null}),
                json!({"id": "2", "name": null}),
                json!({"id": "3", "name": "xy"}),
            ]
        );
    }
}
