//! Walks the top-level fields of a record's JSON text without building a tree: each field's
//! name is looked up among the destination's columns and its value handed on as raw JSON
//! text (what a destination that maps fields to columns or cells does with every record).
//!
//! Record data reaches a destination already checked as JSON by the loader, so a plain scan
//! of its structure finds the fields (no number or string is decoded but keys with escapes);
//! serde_json reads only what that scan does not take, and gives the error for bad input.

use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::RecordRef;
use crate::protocol::special;

/// Column names and their positions.
#[derive(Debug, Default, Clone)]
pub struct Lookup {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// Whether each name is written in JSON as it is (no character to escape).
    plain: Vec<bool>,
}

impl Lookup {
    /// A lookup of `names`, each at its position in the list.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let names: Vec<String> = names.into_iter().collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let plain = names
            .iter()
            .map(|n| !n.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20))
            .collect();
        Self {
            names,
            index,
            plain,
        }
    }

    /// Whether the key text at the start of `rest` (just past its opening quote) is column
    /// `guess`'s name, closing quote included; the length of that text when it is.
    fn matches_raw(&self, guess: usize, rest: &[u8]) -> Option<usize> {
        let name = self.names.get(guess)?.as_bytes();
        let len = name.len();
        (self.plain[guess] && rest.get(len) == Some(&b'"') && &rest[..len] == name)
            .then_some(len + 1)
    }

    /// The position of the column called `key`.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The column called `key`; `guess` is tried first.
    fn find(&self, key: &str, guess: Option<usize>) -> Option<usize> {
        match guess {
            Some(g) if self.names.get(g).is_some_and(|name| name == key) => Some(g),
            _ => self.index.get(key).copied(),
        }
    }
}

/// Walks records of one stream, remembering the column of each field position: records
/// usually list their fields in the same order, so a name is mostly confirmed by one
/// comparison instead of a hash lookup.
#[derive(Debug, Default)]
pub struct Walker {
    order: Vec<Option<usize>>,
    /// The fields the scan found: (column, start, end) of each raw value.
    found: Vec<(usize, usize, usize)>,
}

impl Walker {
    /// Calls `f(column, raw value)` for every field of the JSON object `data` that is a
    /// column. Fails when `data` is not a JSON object.
    pub fn walk<'a>(
        &mut self,
        data: &'a str,
        lookup: &Lookup,
        mut f: impl FnMut(usize, &'a str),
    ) -> Result<(), serde_json::Error> {
        self.found.clear();
        let scan = Scan {
            data,
            at: 0,
            order: &mut self.order,
            found: &mut self.found,
        };
        if scan.object(lookup).is_some() {
            for &(i, start, end) in &self.found {
                f(i, &data[start..end]);
            }
            return Ok(());
        }
        self.walk_serde(data, lookup, f)
    }

    /// [`walk`](Self::walk) for a record of a [`Batch`](super::Batch): through the fields its
    /// decoding found when there are (no scan of `data` at all), else as `walk`.
    pub fn walk_record<'a>(
        &mut self,
        record: &RecordRef<'a>,
        lookup: &Lookup,
        mut f: impl FnMut(usize, &'a str),
    ) -> Result<(), serde_json::Error> {
        let Some(fields) = record.fields else {
            return self.walk(record.data, lookup, f);
        };
        let data = record.data;
        for (position, &[key_start, key_end, start, end]) in fields.iter().enumerate() {
            let key = &data[key_start as usize..key_end as usize];
            let guess = self.order.get(position).copied().flatten();
            let column = match guess {
                Some(g) if lookup.names.get(g).is_some_and(|name| name == key) => guess,
                _ => {
                    let column = lookup.index.get(key).copied();
                    match self.order.get_mut(position) {
                        Some(slot) => *slot = column,
                        None => self.order.push(column),
                    }
                    column
                }
            };
            if let Some(column) = column {
                f(column, &data[start as usize..end as usize]);
            }
        }
        Ok(())
    }

    /// [`walk`](Self::walk) through serde_json alone.
    fn walk_serde<'a>(
        &mut self,
        data: &'a str,
        lookup: &Lookup,
        f: impl FnMut(usize, &'a str),
    ) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(data);
        de.deserialize_map(Fields {
            lookup,
            order: &mut self.order,
            f,
        })
    }
}

/// A scan of one JSON object's top level. Every method answers `None` where the text is not
/// a well-formed object (the caller then lets serde_json tell why).
struct Scan<'s, 'a> {
    data: &'a str,
    at: usize,
    order: &'s mut Vec<Option<usize>>,
    found: &'s mut Vec<(usize, usize, usize)>,
}

impl Scan<'_, '_> {
    fn bytes(&self) -> &[u8] {
        self.data.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn object(mut self, lookup: &Lookup) -> Option<()> {
        self.expect(b'{')?;
        self.skip_space();
        if self.peek()? == b'}' {
            return Some(());
        }
        let mut position = 0;
        loop {
            self.expect(b'"')?;
            let start = self.at;
            let guess = self.order.get(position).copied().flatten();
            // Records of a stream mostly list the same fields in the same order: the name
            // at this position last time is compared with the text first.
            let column = match guess.and_then(|g| lookup.matches_raw(g, &self.bytes()[start..])) {
                Some(len) => {
                    self.at += len;
                    guess
                }
                None => {
                    let escaped = self.string_end()?;
                    let key = &self.data[start..self.at - 1];
                    let column = if escaped {
                        let key: String =
                            serde_json::from_str(&self.data[start - 1..self.at]).ok()?;
                        lookup.find(&key, guess)
                    } else {
                        lookup.find(key, guess)
                    };
                    match self.order.get_mut(position) {
                        Some(slot) => *slot = column,
                        None => self.order.push(column),
                    }
                    column
                }
            };
            position += 1;
            self.expect(b':')?;
            self.skip_space();
            let start = self.at;
            self.value()?;
            if let Some(i) = column {
                self.found.push((i, start, self.at));
            }
            if !self.separator()? {
                return Some(());
            }
        }
    }

    /// Past the `,` (true) or the closing `}` (false) after a member.
    fn separator(&mut self) -> Option<bool> {
        self.skip_space();
        let more = match self.peek()? {
            b',' => true,
            b'}' => false,
            _ => return None,
        };
        self.at += 1;
        Some(more)
    }

    /// Moves past the closing quote of the string whose opening quote was just passed; true
    /// when the string has escapes.
    fn string_end(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.at += special(self.bytes().get(self.at..)?)?;
            match self.bytes()[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                _ => self.at += 1, // a control character: serde_json's to judge
            }
        }
    }

    /// Moves past one value.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_end().map(drop)
            }
            b'{' | b'[' => self.nested(),
            _ => {
                let rest = &self.bytes()[self.at..];
                let n = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                    .unwrap_or(rest.len());
                (n > 0).then(|| self.at += n)
            }
        }
    }

    /// Moves past an object or array (with everything in it).
    fn nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            let byte = self.peek()?;
            self.at += 1;
            match byte {
                b'"' => {
                    self.string_end()?;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => {}
            }
        }
    }
}

struct Fields<'l, F> {
    lookup: &'l Lookup,
    order: &'l mut Vec<Option<usize>>,
    f: F,
}

impl<'de, F: FnMut(usize, &'de str)> Visitor<'de> for Fields<'_, F> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut position = 0;
        loop {
            let guess = self.order.get(position).copied().flatten();
            let Some(column) = map.next_key_seed(Key {
                lookup: self.lookup,
                guess,
            })?
            else {
                return Ok(());
            };
            match self.order.get_mut(position) {
                Some(slot) => *slot = column,
                None => self.order.push(column),
            }
            position += 1;
            match column {
                Some(i) => {
                    let raw: &'de RawValue = map.next_value()?;
                    (self.f)(i, raw.get());
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }
}

struct Key<'l> {
    lookup: &'l Lookup,
    guess: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.lookup.find(key, self.guess))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Walker::walk`] without the memory of field order.
    fn for_each_field<'a>(
        data: &'a str,
        lookup: &Lookup,
        f: impl FnMut(usize, &'a str),
    ) -> Result<(), serde_json::Error> {
        Walker::default().walk(data, lookup, f)
    }

    #[test]
    fn the_scan_finds_what_serde_json_finds() {
        let lookup = Lookup::new(["a", "b\"c", "é", "n", "d"].map(String::from));
        let cases = [
            r#"{}"#,
            r#" { } "#,
            r#"{"a":1,"n":null,"d":-1.5e3}"#,
            "{ \"a\" :\t\"x\\\"y\" ,\n\"é\": [1, {\"a\": \"]}\"}, []] , \"b\\\"c\":true}",
            r#"{"a":"1","a":"2","z":{"a":[{}]},"d":"\u00e9\\"}"#,
            r#"{"\u0061":{"x":"}"},"n":"\\","b\u0022c":false}"#,
            r#"{"a":[[["deep"]]],"skip":"\"}","d":{"k":[1,2,{"v":"]"}]}}"#,
            r#"{"n":"sixteen bytes...\"quoted\" and \\ more","a":"exactly8","d":"1234567\\"}"#,
        ];
        for data in cases {
            let mut fast = Vec::new();
            Walker::default()
                .walk(data, &lookup, |i, raw| fast.push((i, raw)))
                .unwrap();
            let mut slow = Vec::new();
            Walker::default()
                .walk_serde(data, &lookup, |i, raw| slow.push((i, raw)))
                .unwrap();
            assert_eq!(fast, slow, "{data}");
        }
        for bad in [
            "",
            "[]",
            "{",
            r#"{"a""#,
            r#"{"a":}"#,
            r#"{"a":1"#,
            r#"{"a":"x"#,
            "5",
        ] {
            let mut walker = Walker::default();
            assert!(walker.walk(bad, &lookup, |_, _| {}).is_err(), "{bad}");
        }
    }

    /// A record's fields as the loader's decoding notes them lead to what a scan finds.
    #[test]
    fn the_decoded_fields_give_what_the_scan_finds() {
        let lookup = Lookup::new(["a", "b\"c", "é", "n", "d"].map(String::from));
        let mut walker = Walker::default();
        let mut prefix = crate::protocol::Prefix::default();
        for data in [
            r#"{}"#,
            r#"{"a":1,"n":null,"d":-1.5e3,"zz":{"a":2}}"#,
            "{ \"é\" :\t[1, {\"a\": \"]}\"}] ,\n\"a\": \"x\\\"y\" }",
            r#"{"d":"1","a":{"n":[]},"n":true}"#,
            r#"{"a":"1","a":"2"}"#,
            r#"{"b\"c":1,"a":2}"#,
            r#"[1]"#,
        ] {
            let line = format!(
                r#"{{"type":"RECORD","record":{{"stream":"s","emitted_at":1,"data":{data}}}}}"#
            );
            let mut spans = Vec::new();
            // Every line but the first is read after the start it shares with the last one.
            let (_, complete) =
                crate::protocol::decode_line_with_fields(line.as_bytes(), &mut spans, &mut prefix)
                    .unwrap();
            let record = RecordRef {
                data,
                fields: complete.then_some(&spans[..]),
                emitted_at: 1,
                meta: None,
            };
            assert_eq!(
                complete,
                data.starts_with('{') && !data.contains("b\\\""),
                "{data}"
            );
            let mut decoded = Vec::new();
            let walked = walker.walk_record(&record, &lookup, |i, raw| decoded.push((i, raw)));
            let mut scanned = Vec::new();
            let scan = Walker::default().walk(data, &lookup, |i, raw| scanned.push((i, raw)));
            assert_eq!(walked.is_ok(), scan.is_ok(), "{data}");
            assert_eq!(decoded, scanned, "{data}");
        }
    }

    #[test]
    fn walks_known_fields_with_raw_values() {
        let lookup = Lookup::new(["b".to_string(), "a\"q".to_string()]);
        let mut got = Vec::new();
        for_each_field(
            r#"{"a\"q": {"x": [1, 2]}, "skip": [{"y": 1}], "b": "t\u00e9xt"}"#,
            &lookup,
            |i, raw| got.push((i, raw.to_string())),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                (1, r#"{"x": [1, 2]}"#.to_string()),
                (0, r#""t\u00e9xt""#.to_string())
            ]
        );
        assert!(for_each_field("[1]", &lookup, |_, _| {}).is_err());

        // A walker remembers the order, and still finds fields that moved.
        let mut walker = Walker::default();
        for data in [
            r#"{"b": 1, "a\"q": 2}"#,
            r#"{"a\"q": 3, "b": 4}"#,
            r#"{"x": 0, "b": 5}"#,
        ] {
            let mut got = Vec::new();
            walker
                .walk(data, &lookup, |i, raw| got.push((i, raw.to_string())))
                .unwrap();
            got.sort();
            assert_eq!(got.len(), 2 - usize::from(data.contains("x")), "{data}");
        }
    }
}
