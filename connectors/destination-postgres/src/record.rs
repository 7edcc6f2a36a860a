//! Reads a record's JSON text once, putting a borrowed raw value into the slot of each column
//! it has (nested objects followed in flattened mode, arrays of objects set aside for child
//! tables). Fields the schema doesn't know are skipped.

use std::borrow::Cow;
use std::fmt;

use cdk::protocol::ChangeReason;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::schema::{Fields, Node};

/// The values found in one record (or one child item).
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// One slot per column of the table; `None` when the record has no such field.
    pub slots: Vec<Option<&'a RawValue>>,
    /// `(child table, array value)` for each array-of-objects field.
    pub children: Vec<(usize, &'a RawValue)>,
    /// Dotted paths of nested objects that were not objects.
    pub bad_objects: Vec<String>,
    /// The field entry found at each key position of the previous record: records of a
    /// stream usually list their keys in the same order, so most lookups are one comparison.
    order: Vec<usize>,
}

impl<'a> Parsed<'a> {
    pub fn new(columns: usize) -> Self {
        Self {
            slots: vec![None; columns],
            children: Vec::new(),
            bad_objects: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Fills the slots from `data`, a JSON object's text.
    pub fn fill(&mut self, data: &'a str, fields: &Fields) -> Result<(), serde_json::Error> {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.children.clear();
        self.bad_objects.clear();
        let mut de = serde_json::Deserializer::from_str(data);
        Fill {
            fields,
            out: self,
            top: true,
        }
        .deserialize(&mut de)
    }

    /// Replaces `changes` with one typecast change per nested object that was not an object.
    pub fn take_changes(&mut self, changes: &mut Vec<(String, ChangeReason)>) {
        changes.clear();
        changes.extend(
            self.bad_objects
                .drain(..)
                .map(|f| (f, ChangeReason::DestinationTypecastError)),
        );
    }
}

struct Fill<'s, 'a> {
    fields: &'s Fields,
    out: &'s mut Parsed<'a>,
    /// Whether this is the record's top level (whose key order is remembered).
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Fill<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let entries = &self.fields.entries;
        let mut position = 0;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let guess = if self.top {
                self.out.order.get(position).copied()
            } else {
                Some(position)
            };
            let at = match guess.and_then(|g| entries.get(g).map(|e| (g, e))) {
                Some((g, (name, _))) if *name == *key => Some(g),
                _ => self.fields.index.get(&*key).copied(),
            };
            if self.top {
                let remembered = at.unwrap_or(usize::MAX);
                match self.out.order.get_mut(position) {
                    Some(slot) => *slot = remembered,
                    None => self.out.order.push(remembered),
                }
            }
            position += 1;
            let Some(at) = at else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let raw: &'de RawValue = map.next_value()?;
            match &entries[at].1 {
                Node::Leaf(column) => self.out.slots[*column] = Some(raw),
                Node::Child(table) => self.out.children.push((*table, raw)),
                Node::Object(inner) => match raw.get().as_bytes().first() {
                    Some(b'{') => {
                        let mut de = serde_json::Deserializer::from_str(raw.get());
                        Fill {
                            fields: inner,
                            out: &mut *self.out,
                            top: false,
                        }
                        .deserialize(&mut de)
                        .map_err(de::Error::custom)?;
                    }
                    Some(b'n') => {}
                    _ => self.out.bad_objects.push(inner.path.clone()),
                },
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::layout;
    use serde_json::json;

    #[test]
    fn fills_slots_and_children() {
        let schema = json!({"properties": {
            "id": {"type": "integer"},
            "contact": {"type": "object", "properties": {"email": {"type": "string"}}},
            "addresses": {"type": "array", "items": {"type": "object", "properties": {"city": {"type": "string"}}}},
        }});
        let l = layout("customers", &schema, true);
        let data = r#"{"unknown": [1, {"x": 2}], "contact": {"email": "a@b", "more": 1}, "id": 7,
                       "addresses": [{"city": "NY"}], "na\u006de": "x"}"#;
        let mut p = Parsed::new(l.main.columns.len());
        p.fill(data, &l.main.fields).unwrap();
        let email = l
            .main
            .column_of(&["contact".into(), "email".into()])
            .unwrap();
        let id = l.main.column_of(&["id".into()]).unwrap();
        assert_eq!(p.slots[email].map(RawValue::get), Some("\"a@b\""));
        assert_eq!(p.slots[id].map(RawValue::get), Some("7"));
        assert_eq!(p.children.len(), 1);
        assert_eq!(p.children[0].1.get(), r#"[{"city": "NY"}]"#);

        p.fill(r#"{"contact": 5, "id": null}"#, &l.main.fields)
            .unwrap();
        assert_eq!(p.bad_objects, ["contact"]);
        assert_eq!(p.slots[id].map(RawValue::get), Some("null"));
        assert!(p.fill("[1]", &l.main.fields).is_err());
    }
}
