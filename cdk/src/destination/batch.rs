//! A batch of one stream's records, kept as the raw JSON text of their data.

use crate::protocol::AirbyteRecordMessageMeta;

/// Records of one stream: their `data` texts in one buffer, plus offsets and metadata.
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    records: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    end: usize,
    emitted_at: i64,
    meta: Option<Box<AirbyteRecordMessageMeta>>,
}

/// One record of a batch, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The record's `data`, a JSON object's text exactly as received.
    pub data: &'a str,
    /// Epoch milliseconds.
    pub emitted_at: i64,
    pub meta: Option<&'a AirbyteRecordMessageMeta>,
}

impl Batch {
    pub(crate) fn push(
        &mut self,
        data: &str,
        emitted_at: i64,
        meta: Option<AirbyteRecordMessageMeta>,
    ) {
        self.text.push_str(data);
        let meta = meta.filter(|m| !m.changes.is_empty()).map(Box::new);
        self.records.push(Entry {
            end: self.text.len(),
            emitted_at,
            meta,
        });
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of record data held.
    pub fn data_bytes(&self) -> usize {
        self.text.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = RecordRef<'_>> {
        let mut start = 0;
        self.records.iter().map(move |e| {
            let data = &self.text[start..e.end];
            start = e.end;
            RecordRef {
                data,
                emitted_at: e.emitted_at,
                meta: e.meta.as_deref(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_in_order() {
        let mut b = Batch::default();
        b.push(r#"{"a":1}"#, 1, None);
        b.push(r#"{"b":2}"#, 2, Some(AirbyteRecordMessageMeta::default()));
        let got: Vec<_> = b
            .iter()
            .map(|r| (r.data, r.emitted_at, r.meta.is_some()))
            .collect();
        assert_eq!(got, [(r#"{"a":1}"#, 1, false), (r#"{"b":2}"#, 2, false)]);
        assert_eq!(b.data_bytes(), 14);
    }
}
