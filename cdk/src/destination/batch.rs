//! A batch of one stream's records, kept as the raw JSON text of their data.
//!
//! A batch's buffers go back to a small pool when it is dropped (wherever the destination
//! drops it) and the loader's next batch takes them: megabytes of buffer per batch are reused
//! instead of being mapped, faulted in and unmapped again.

use std::sync::Mutex;

use crate::protocol::AirbyteRecordMessageMeta;

/// Records of one stream: their `data` texts in one buffer, plus offsets and metadata, and
/// where each record's top-level fields lie when the loader's decoding found them.
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    records: Vec<Entry>,
    fields: Vec<[u32; 4]>,
}

#[derive(Debug)]
struct Entry {
    end: usize,
    /// The end of its fields in `fields`; `None` when they were not noted.
    fields_end: Option<usize>,
    emitted_at: i64,
    meta: Option<Box<AirbyteRecordMessageMeta>>,
}

/// One record of a batch, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The record's `data`, a JSON object's text exactly as received.
    pub data: &'a str,
    /// Where each top-level field of `data` lies, as the loader's decoding found them (key
    /// start and end without its quotes, value start and end; the keys have no escapes), so
    /// that a destination need not scan `data` again; `None` when they were not noted.
    pub fields: Option<&'a [[u32; 4]]>,
    /// Epoch milliseconds.
    pub emitted_at: i64,
    /// Changes the source made to the record.
    pub meta: Option<&'a AirbyteRecordMessageMeta>,
}

type Spare = Mutex<Vec<(String, Vec<Entry>, Vec<[u32; 4]>)>>;

/// Spare buffers: a few batches' worth (a writer may hold some while the loader fills more).
static SPARE: Spare = Mutex::new(Vec::new());
const SPARE_BATCHES: usize = 4;

impl Drop for Batch {
    fn drop(&mut self) {
        self.give_back(&SPARE);
    }
}

impl Batch {
    /// An empty batch, on spare buffers when there are some.
    pub(crate) fn recycled() -> Self {
        Self::from_spare(&SPARE)
    }

    fn from_spare(spare: &Spare) -> Self {
        match spare.lock().ok().and_then(|mut spare| spare.pop()) {
            Some((text, records, fields)) => Self {
                text,
                records,
                fields,
            },
            None => Self::default(),
        }
    }

    fn give_back(&mut self, spare: &Spare) {
        if self.text.capacity() == 0 {
            return;
        }
        if let Ok(mut spare) = spare.lock()
            && spare.len() < SPARE_BATCHES
        {
            let mut text = std::mem::take(&mut self.text);
            let mut records = std::mem::take(&mut self.records);
            let mut fields = std::mem::take(&mut self.fields);
            text.clear();
            records.clear();
            fields.clear();
            spare.push((text, records, fields));
        }
    }

    #[cfg(test)]
    pub(crate) fn push(
        &mut self,
        data: &str,
        emitted_at: i64,
        meta: Option<AirbyteRecordMessageMeta>,
    ) {
        self.push_boxed(data, None, emitted_at, boxed_meta(meta));
    }

    /// [`push`](Self::push) with the metadata already through [`boxed_meta`], and where the
    /// fields of `data` lie when known.
    pub(crate) fn push_boxed(
        &mut self,
        data: &str,
        fields: Option<&[[u32; 4]]>,
        emitted_at: i64,
        meta: Option<Box<AirbyteRecordMessageMeta>>,
    ) {
        self.text.push_str(data);
        let fields_end = fields.map(|fields| {
            self.fields.extend_from_slice(fields);
            self.fields.len()
        });
        self.records.push(Entry {
            end: self.text.len(),
            fields_end,
            emitted_at,
            meta,
        });
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of record data held.
    pub fn data_bytes(&self) -> usize {
        self.text.len()
    }

    /// Keeps the first `at` records and returns the others as a new batch.
    pub(crate) fn split_off(&mut self, at: usize) -> Batch {
        let mut rest = Batch::recycled();
        if at >= self.records.len() {
            return rest;
        }
        let start = at.checked_sub(1).map_or(0, |i| self.records[i].end);
        let fields_start = self.fields_start(at);
        rest.text.push_str(&self.text[start..]);
        rest.fields.extend_from_slice(&self.fields[fields_start..]);
        rest.records.extend(self.records.drain(at..).map(|mut e| {
            e.end -= start;
            e.fields_end = e.fields_end.map(|end| end - fields_start);
            e
        }));
        self.text.truncate(start);
        self.fields.truncate(fields_start);
        rest
    }

    /// Where the fields of record `at` start in `fields`.
    fn fields_start(&self, at: usize) -> usize {
        self.records[..at]
            .iter()
            .rev()
            .find_map(|e| e.fields_end)
            .unwrap_or(0)
    }

    /// The records, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = RecordRef<'_>> {
        let (mut start, mut fields_start) = (0, 0);
        self.records.iter().map(move |e| {
            let data = &self.text[start..e.end];
            start = e.end;
            let fields = e.fields_end.map(|end| {
                let fields = &self.fields[fields_start..end];
                fields_start = end;
                fields
            });
            RecordRef {
                data,
                fields,
                emitted_at: e.emitted_at,
                meta: e.meta.as_deref(),
            }
        })
    }
}

/// A record's metadata as a batch keeps it: boxed, and only when it lists changes.
pub(crate) fn boxed_meta(
    meta: Option<AirbyteRecordMessageMeta>,
) -> Option<Box<AirbyteRecordMessageMeta>> {
    meta.filter(|m| !m.changes.is_empty()).map(Box::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_off_keeps_the_head_and_returns_the_tail() {
        let texts = [r#"{"a":1}"#, r#"{"bb":22}"#, r#"{"ccc":"é"}"#];
        for at in 0..=4 {
            // The second record's fields were not noted; the others' were.
            let fields = |i: usize| (i != 1).then(|| vec![[i as u32; 4]; i + 1]);
            let mut head = Batch::default();
            for (i, t) in texts.iter().enumerate() {
                head.push_boxed(t, fields(i).as_deref(), i as i64, None);
            }
            let tail = head.split_off(at);
            type Seen = (String, i64, Option<Vec<[u32; 4]>>);
            let data = |b: &Batch| -> Vec<Seen> {
                b.iter()
                    .map(|r| {
                        (
                            r.data.to_string(),
                            r.emitted_at,
                            r.fields.map(<[_]>::to_vec),
                        )
                    })
                    .collect()
            };
            let all: Vec<Seen> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| (t.to_string(), i as i64, fields(i)))
                .collect();
            let cut = at.min(texts.len());
            assert_eq!(data(&head), all[..cut].to_vec(), "at {at}");
            assert_eq!(data(&tail), all[cut..].to_vec(), "at {at}");
            assert_eq!(head.data_bytes() + tail.data_bytes(), texts.concat().len());
        }
    }

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

    #[test]
    fn a_given_back_batch_lends_its_buffers_to_the_next() {
        let spare = Spare::default();
        for _ in 0..SPARE_BATCHES + 2 {
            let mut b = Batch::default();
            b.push(&"x".repeat(1000), 1, None);
            b.give_back(&spare);
        }
        assert_eq!(
            spare.lock().unwrap().len(),
            SPARE_BATCHES,
            "the pool is bounded"
        );
        let next = Batch::from_spare(&spare);
        assert!(next.is_empty() && next.data_bytes() == 0);
        assert!(next.text.capacity() >= 1000, "the buffer was reused");
        assert_eq!(spare.lock().unwrap().len(), SPARE_BATCHES - 1);
    }
}
