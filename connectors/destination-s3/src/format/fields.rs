//! Walks the top-level fields of a record's JSON text without building a tree: each field's
//! name is looked up among the stream's columns and its value handed on as raw JSON text.

use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Column names and their positions.
#[derive(Debug, Default)]
pub struct Lookup {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Lookup {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let names: Vec<String> = names.into_iter().collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Self { names, index }
    }

    /// The column called `key`; `guess` (the column after the previous field) is tried first,
    /// as records usually list their fields in the same order.
    fn find(&self, key: &str, guess: usize) -> Option<usize> {
        match self.names.get(guess) {
            Some(name) if name == key => Some(guess),
            _ => self.index.get(key).copied(),
        }
    }
}

/// Calls `f(column, raw value)` for every field of the JSON object `data` that is a column.
/// Fails when `data` is not a JSON object.
pub fn for_each_field<'a>(
    data: &'a str,
    lookup: &Lookup,
    f: impl FnMut(usize, &'a str),
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(data);
    de.deserialize_map(Fields { lookup, f })
}

struct Fields<'l, F> {
    lookup: &'l Lookup,
    f: F,
}

impl<'de, F: FnMut(usize, &'de str)> Visitor<'de> for Fields<'_, F> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut guess = 0;
        while let Some(column) = map.next_key_seed(Key {
            lookup: self.lookup,
            guess,
        })? {
            match column {
                Some(i) => {
                    let raw: &'de RawValue = map.next_value()?;
                    (self.f)(i, raw.get());
                    guess = i + 1;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct Key<'l> {
    lookup: &'l Lookup,
    guess: usize,
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
    }
}
