//! Reads a record's JSON text once, putting the raw text of each value into the slot of its
//! column (nested objects followed in flattened mode, arrays of objects set aside for child
//! tables). Fields the schema doesn't know are skipped.

use cdk::destination::RecordRef;
use cdk::destination::fields::{Lookup, Walker};
use cdk::protocol::ChangeReason;

use crate::schema::{Fields, Node};

type Walked = Result<(), serde_json::Error>;

/// The values found in one record (or one child item).
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// One slot per column of the table: a value's JSON text, `None` when the record has no
    /// such field.
    pub slots: Vec<Option<&'a str>>,
    /// `(child table, array value)` for each array-of-objects field.
    pub children: Vec<(usize, &'a str)>,
    /// Dotted paths of nested objects that were not objects.
    pub bad_objects: Vec<String>,
    /// The top level's walker, which remembers the order of the previous record's keys.
    walker: Walker,
}

impl<'a> Parsed<'a> {
    pub fn new(columns: usize) -> Self {
        Self {
            slots: vec![None; columns],
            ..Self::default()
        }
    }

    /// Fills the slots from `data`, a JSON object's text.
    pub fn fill(&mut self, data: &'a str, fields: &Fields) -> Result<(), serde_json::Error> {
        self.fill_top(fields, |walker, keys, f| walker.walk(data, keys, f))
    }

    /// Fills the slots from a record's data, through the fields its decoding found.
    pub fn fill_record(
        &mut self,
        record: &RecordRef<'a>,
        fields: &Fields,
    ) -> Result<(), serde_json::Error> {
        self.fill_top(fields, |walker, keys, f| {
            walker.walk_record(record, keys, f)
        })
    }

    fn fill_top(
        &mut self,
        fields: &Fields,
        walk: impl FnOnce(&mut Walker, &Lookup, &mut dyn FnMut(usize, &'a str)) -> Walked,
    ) -> Walked {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.children.clear();
        self.bad_objects.clear();
        let mut walker = std::mem::take(&mut self.walker);
        let mut objects = Vec::new();
        let walked = walk(
            &mut walker,
            &fields.keys,
            &mut place(fields, &mut self.slots, &mut self.children, &mut objects),
        );
        self.walker = walker;
        walked?;
        self.follow(objects)
    }

    /// Fills the slots of nested objects (flattened mode; rare enough for a walker each).
    fn follow(&mut self, objects: Vec<(&Fields, &'a str)>) -> Walked {
        for (fields, raw) in objects {
            match raw.as_bytes().first() {
                Some(b'{') => {
                    let mut inner = Vec::new();
                    let place = place(fields, &mut self.slots, &mut self.children, &mut inner);
                    Walker::default().walk(raw, &fields.keys, place)?;
                    self.follow(inner)?;
                }
                Some(b'n') => {}
                _ => self.bad_objects.push(fields.path.clone()),
            }
        }
        Ok(())
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

/// Where the value of field `at` of `fields` goes: a column's slot, the child tables, or the
/// nested objects still to follow.
fn place<'s, 'f, 'a>(
    fields: &'f Fields,
    slots: &'s mut [Option<&'a str>],
    children: &'s mut Vec<(usize, &'a str)>,
    objects: &'s mut Vec<(&'f Fields, &'a str)>,
) -> impl FnMut(usize, &'a str) {
    move |at, raw| match &fields.nodes[at] {
        Node::Leaf(column) => slots[*column] = Some(raw),
        Node::Child(table) => children.push((*table, raw)),
        Node::Object(inner) => objects.push((inner, raw)),
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
        assert_eq!(p.slots[email], Some("\"a@b\""));
        assert_eq!(p.slots[id], Some("7"));
        assert_eq!(p.children.len(), 1);
        assert_eq!(p.children[0].1, r#"[{"city": "NY"}]"#);

        p.fill(r#"{"contact": 5, "id": null}"#, &l.main.fields)
            .unwrap();
        assert_eq!(p.bad_objects, ["contact"]);
        assert_eq!(p.slots[id], Some("null"));
        assert!(p.fill("[1]", &l.main.fields).is_err());
    }
}
