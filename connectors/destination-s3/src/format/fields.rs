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
}

impl Walker {
    /// Calls `f(column, raw value)` for every field of the JSON object `data` that is a
    /// column. Fails when `data` is not a JSON object.
    pub fn walk<'a>(
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
