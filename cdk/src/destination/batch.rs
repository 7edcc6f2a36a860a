//! A batch of one stream's records, kept as the raw JSON text of their data.
//!
//! A batch's buffers go back to a small pool when it is dropped (wherever the destination
//! drops it) and the loader's next batch takes them: megabytes of buffer per batch are reused
//! instead of being mapped, faulted in and unmapped again.

use std::sync::Mutex;

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
    /// Changes the source made to the record.
    pub meta: Option<&'a AirbyteRecordMessageMeta>,
}

type Spare = Mutex<Vec<(String, Vec<Entry>)>>;

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
            Some((text, records)) => Self { text, records },
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
            text.clear();
            records.clear();
            spare.push((text, records));
        }
    }

    #[cfg(test)]
    pub(crate) fn push(
        &mut self,
        data: &str,
        emitted_at: i64,
        meta: Option<AirbyteRecordMessageMeta>,
    ) {
        self.push_boxed(data, emitted_at, boxed_meta(meta));
    }

    /// [`push`](Self::push) with the metadata already through [`boxed_meta`].
    pub(crate) fn push_boxed(
        &mut self,
        data: &str,
        emitted_at: i64,
        meta: Option<Box<AirbyteRecordMessageMeta>>,
    ) {
        self.text.push_str(data);
        self.records.push(Entry {
            end: self.text.len(),
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
        rest.text.push_str(&self.text[start..]);
        rest.records.extend(self.records.drain(at..).map(|mut e| {
            e.end -= start;
            e
        }));
        self.text.truncate(start);
        rest
    }

    /// The records, in the order they were added.
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
            let mut head = Batch::default();
            for (i, t) in texts.iter().enumerate() {
                head.push(t, i as i64, None);
            }
            let tail = head.split_off(at);
            let data = |b: &Batch| -> Vec<(String, i64)> {
                b.iter()
                    .map(|r| (r.data.to_string(), r.emitted_at))
                    .collect()
            };
            let all: Vec<(String, i64)> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| (t.to_string(), i as i64))
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
