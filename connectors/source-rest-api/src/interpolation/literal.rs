//! Python semantics at the edges of a template: rendering values the way Jinja2 on Python
//! prints them (`True`, `None`, `['a', 1]`), and reading the rendered text back as a Python
//! literal (`ast.literal_eval`), which is how Airbyte turns `"{{ 5 }}"` into the integer 5.

use minijinja::value::{Value as Mj, ValueKind};
use serde_json::{Map, Number, Value};

use super::datetime::python_float;

/// Renders a template value as Python's `str()` would.
pub fn py_str(v: &Mj, out: &mut String) {
    match v.kind() {
        ValueKind::Undefined => {}
        ValueKind::String => out.push_str(v.as_str().unwrap_or_default()),
        _ => py_repr(v, out),
    }
}

/// Renders a template value as Python's `repr()` would (strings quoted).
pub fn py_repr(v: &Mj, out: &mut String) {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::String => quote(v.as_str().unwrap_or_default(), out),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else if let Ok(f) = f64::try_from(v.clone()) {
                out.push_str(&python_float(f));
            } else {
                out.push_str(&v.to_string());
            }
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = v.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&item, out);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            // Objects that are not containers (datetimes) print as themselves.
            if v.as_object()
                .is_some_and(|o| matches!(o.repr(), minijinja::value::ObjectRepr::Plain))
            {
                out.push_str(&v.to_string());
                return;
            }
            out.push('{');
            if let Ok(iter) = v.try_iter() {
                for (i, key) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&key, out);
                    out.push_str(": ");
                    py_repr(&v.get_item(&key).unwrap_or_default(), out);
                }
            }
            out.push('}');
        }
        _ => out.push_str(&v.to_string()),
    }
}

fn quote(s: &str, out: &mut String) {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

/// `ast.literal_eval(text)`: the value when `text` is a Python literal, else `None`.
pub fn literal_eval(text: &str) -> Option<Value> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match self.peek()? {
            b'[' => self.seq(b'[', b']'),
            b'(' => self.seq(b'(', b')'),
            b'{' => self.map(),
            b'\'' | b'"' => self.string().map(Value::String),
            b'-' | b'+' | b'0'..=b'9' | b'.' => self.number(),
            _ => {
                for (word, v) in [
                    ("True", Value::Bool(true)),
                    ("False", Value::Bool(false)),
                    ("None", Value::Null),
                ] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        let end = self.i + word.len();
                        if self
                            .s
                            .get(end)
                            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                        {
                            self.i = end;
                            return Some(v);
                        }
                    }
                }
                None
            }
        }
    }

    fn seq(&mut self, open: u8, close: u8) -> Option<Value> {
        self.eat(open);
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                // `(x)` is not a tuple in Python; it is x.
                if open == b'(' && items.len() == 1 && self.s[self.i - 2] != b',' {
                    return items.pop();
                }
                return Some(Value::Array(items));
            }
            items.push(self.value()?);
            if !self.eat(b',') {
                self.ws();
                if self.peek() != Some(close) {
                    return None;
                }
            }
        }
    }

    fn map(&mut self) -> Option<Value> {
        self.eat(b'{');
        let mut map = Map::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
                Value::Null => "None".to_string(),
                _ => return None,
            };
            if !self.eat(b':') {
                return None;
            }
            let v = self.value()?;
            map.insert(key, v);
            if !self.eat(b',') {
                self.ws();
                if self.peek() != Some(b'}') {
                    return None;
                }
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let q = self.peek()?;
        let triple = self.s[self.i..].starts_with(&[q, q, q]);
        self.i += if triple { 3 } else { 1 };
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            if c == q {
                if !triple {
                    self.i += 1;
                    break;
                }
                if self.s[self.i..].starts_with(&[q, q, q]) {
                    self.i += 3;
                    break;
                }
            }
            if c == b'\n' && !triple {
                return None;
            }
            self.i += 1;
            if c == b'\\' {
                let e = self.peek()?;
                self.i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'0' => out.push(0),
                    b'\\' | b'\'' | b'"' => out.push(e),
                    b'\n' => {}
                    b'u' | b'x' => {
                        let n = if e == b'u' { 4 } else { 2 };
                        let hex = std::str::from_utf8(self.s.get(self.i..self.i + n)?).ok()?;
                        let code = u32::from_str_radix(hex, 16).ok()?;
                        self.i += n;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(
                            char::from_u32(code)?.encode_utf8(&mut buf).as_bytes(),
                        );
                    }
                    other => {
                        out.push(b'\\');
                        out.push(other);
                    }
                }
            } else {
                out.push(c);
            }
        }
        let s = String::from_utf8(out).ok()?;
        // Adjacent literals concatenate: 'a' 'b'.
        let save = self.i;
        self.ws();
        if matches!(self.peek(), Some(b'\'' | b'"')) {
            let rest = self.string()?;
            return Some(s + &rest);
        }
        self.i = save;
        Some(s)
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        let mut neg = false;
        while let Some(c @ (b'-' | b'+')) = self.peek() {
            if c == b'-' {
                neg = !neg;
            }
            self.i += 1;
            self.ws();
        }
        let num_start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'.' | b'_'))
            || (self.i > num_start
                && matches!(self.s[self.i - 1], b'e' | b'E')
                && matches!(self.peek(), Some(b'-' | b'+')))
        {
            self.i += 1;
        }
        let raw = std::str::from_utf8(&self.s[num_start..self.i]).ok()?;
        if raw.is_empty() || raw.starts_with('_') || raw.ends_with('_') || raw.contains("__") {
            self.i = start;
            return None;
        }
        let text = raw.replace('_', "");
        let is_float = text.contains(['.', 'e', 'E']) && !text.starts_with("0x");
        if is_float {
            let f: f64 = text.parse().ok()?;
            let f = if neg { -f } else { f };
            return Number::from_f64(f).map(Value::Number);
        }
        let (digits, radix) = match text.get(..2) {
            Some("0x" | "0X") => (&text[2..], 16),
            Some("0o" | "0O") => (&text[2..], 8),
            Some("0b" | "0B") => (&text[2..], 2),
            _ => {
                // Python forbids leading zeros in decimal integers ("007").
                if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
                    return None;
                }
                (text.as_str(), 10)
            }
        };
        let n = i128::from_str_radix(digits, radix).ok()?;
        let n = if neg { -n } else { n };
        if let Ok(i) = i64::try_from(n) {
            Some(Value::from(i))
        } else if let Ok(u) = u64::try_from(n) {
            Some(Value::from(u))
        } else {
            Number::from_f64(n as f64).map(Value::Number)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpolation::to_mj;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn literals_like_python() {
        assert_eq!(literal_eval("5"), Some(json!(5)));
        assert_eq!(literal_eval(" -5 "), Some(json!(-5)));
        assert_eq!(literal_eval("1.5"), Some(json!(1.5)));
        assert_eq!(literal_eval("1e3"), Some(json!(1000.0)));
        assert_eq!(literal_eval("True"), Some(json!(true)));
        assert_eq!(literal_eval("None"), Some(Value::Null));
        assert_eq!(literal_eval("true"), None);
        assert_eq!(literal_eval("007"), None);
        assert_eq!(literal_eval("2021-01-01"), None);
        assert_eq!(literal_eval("['a', \"b\", 1]"), Some(json!(["a", "b", 1])));
        assert_eq!(
            literal_eval("{'a': [1, 2], 'b': None}"),
            Some(json!({"a": [1, 2], "b": null}))
        );
        assert_eq!(literal_eval("(1,)"), Some(json!([1])));
        assert_eq!(literal_eval("(1)"), Some(json!(1)));
        assert_eq!(literal_eval(r#""""[1, 2]""""#), Some(json!("[1, 2]")));
        assert_eq!(literal_eval("'it\\'s'"), Some(json!("it's")));
        assert_eq!(literal_eval("abc"), None);
        assert_eq!(literal_eval("1_000"), Some(json!(1000)));
        assert_eq!(literal_eval("0x10"), Some(json!(16)));
        assert_eq!(literal_eval("[1, 2"), None);
    }

    #[test]
    fn repr_like_python() {
        let v = to_mj(json!({"a": [1, "x", true, null, 1.5]}));
        let mut s = String::new();
        py_repr(&v, &mut s);
        assert_eq!(s, "{'a': [1, 'x', True, None, 1.5]}");
        let mut s = String::new();
        py_repr(&Mj::from("it's"), &mut s);
        assert_eq!(s, "\"it's\"");
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z0-9 '\"\\\\]{0,12}".prop_map(Value::String),
        ]
    }

    proptest! {
        /// Whatever a template prints with Python's repr reads back as the same value.
        #[test]
        fn repr_round_trips(v in json_leaf().prop_recursive(3, 24, 4, |inner| prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ])) {
            let mut s = String::new();
            py_repr(&to_mj(&v), &mut s);
            prop_assert_eq!(literal_eval(&s), Some(v));
        }

        /// The reader never panics, whatever the text.
        #[test]
        fn literal_eval_total(s in ".{0,40}") {
            let _ = literal_eval(&s);
        }
    }
}
