//! serde_json values seen by templates without copying them: a response body or a record is
//! shared behind an `Arc` and its children are looked up on access. Headers get a
//! case-insensitive map with the parsed `Link` header under `link`.

use std::sync::Arc;

use crate::interpolation::to_mj;
use minijinja::value::{Enumerator, Object, ObjectRepr, Value as Mj};
use serde_json::Value;

/// A template value for `root` (by reference, not copied).
pub fn json_value(root: Arc<Value>) -> Mj {
    node(&root, &root, &[])
}

fn node(root: &Arc<Value>, v: &Value, path: &[Seg]) -> Mj {
    match v {
        Value::Null => Mj::from(()),
        Value::Bool(b) => Mj::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Mj::from(i)
            } else if let Some(u) = n.as_u64() {
                Mj::from(u)
            } else {
                Mj::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Mj::from(s.as_str()),
        Value::Array(_) | Value::Object(_) => Mj::from_object(JsonNode {
            root: root.clone(),
            path: path.to_vec(),
        }),
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
struct JsonNode {
    root: Arc<Value>,
    path: Vec<Seg>,
}

impl JsonNode {
    fn target(&self) -> &Value {
        let mut v = &*self.root;
        for seg in &self.path {
            v = match (seg, v) {
                (Seg::Key(k), Value::Object(m)) => m.get(k).unwrap_or(&Value::Null),
                (Seg::Index(i), Value::Array(a)) => a.get(*i).unwrap_or(&Value::Null),
                _ => &Value::Null,
            };
        }
        v
    }

    fn child(&self, seg: Seg, v: &Value) -> Mj {
        let mut path = self.path.clone();
        path.push(seg);
        node(&self.root, v, &path)
    }
}

impl Object for JsonNode {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.target() {
            Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        match self.target() {
            Value::Object(m) => {
                let k = key.as_str()?;
                m.get(k).map(|v| self.child(Seg::Key(k.to_string()), v))
            }
            Value::Array(a) => {
                let i = key.as_i64()?;
                let i = if i < 0 { a.len() as i64 + i } else { i };
                let i = usize::try_from(i).ok()?;
                a.get(i).map(|v| self.child(Seg::Index(i), v))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.target() {
            Value::Object(m) => {
                let keys: Vec<Mj> = m.keys().map(|k| Mj::from(k.as_str())).collect();
                Enumerator::Values(keys)
            }
            Value::Array(a) => Enumerator::Seq(a.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.target() {
            Value::Object(m) => Some(m.len()),
            Value::Array(a) => Some(a.len()),
            _ => Some(0),
        }
    }
}

/// Response headers: lookups ignore case; `link` is the parsed `Link` header
/// (`headers.link.next.url`, plus any parameter of the link such as `cursor`).
#[derive(Debug)]
pub struct Headers {
    pairs: Vec<(String, String)>,
    link: Mj,
}

impl Headers {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let link = pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("link"))
            .map(|(_, v)| parse_link_header(v))
            .fold(serde_json::Map::new(), |mut acc, m| {
                acc.extend(m);
                acc
            });
        Headers {
            pairs,
            link: to_mj(Value::Object(link)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Object for Headers {
    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let k = key.as_str()?;
        if k.eq_ignore_ascii_case("link") {
            return Some(self.link.clone());
        }
        self.get(k).map(Mj::from)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Mj> = self
            .pairs
            .iter()
            .map(|(k, _)| Mj::from(k.as_str()))
            .collect();
        keys.push(Mj::from("link"));
        Enumerator::Values(keys)
    }
}

/// `<https://x?page=2>; rel="next", <…>; rel="last"` → `{next: {url, rel}, last: {…}}`, like
/// Python requests' `response.links`.
pub fn parse_link_header(value: &str) -> serde_json::Map<String, Value> {
    let mut links = serde_json::Map::new();
    for part in split_links(value) {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some((url, params)) = rest.split_once('>') else {
            continue;
        };
        let mut link = serde_json::Map::new();
        link.insert("url".into(), Value::String(url.trim().to_string()));
        for param in params.split(';') {
            if let Some((k, v)) = param.split_once('=') {
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                link.insert(k.trim().to_ascii_lowercase(), Value::String(v.to_string()));
            }
        }
        let key = link
            .get("rel")
            .and_then(Value::as_str)
            .unwrap_or(url)
            .to_string();
        links.insert(key, Value::Object(link));
    }
    links
}

/// Splits on commas that separate links (not commas inside `<…>`).
fn split_links(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in value.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn link_header() {
        let links = parse_link_header(
            r#"<https://api.x/items?page=2>; rel="next"; cursor="abc", <https://api.x/items?page=9>; rel="last""#,
        );
        assert_eq!(links["next"]["url"], "https://api.x/items?page=2");
        assert_eq!(links["next"]["cursor"], "abc");
        assert_eq!(links["last"]["rel"], "last");
    }

    #[test]
    fn lazy_json_lookups() {
        let env = minijinja::Environment::new();
        let v = json_value(Arc::new(
            json!({"data": [{"id": 1}, {"id": 2}], "next": null}),
        ));
        let r = env
            .render_str(
                "{{ r.data[-1].id }} {{ r.data|length }} {{ r.next is none }}",
                minijinja::context! { r => v },
            )
            .unwrap();
        assert_eq!(r, "2 2 True");
    }
}
