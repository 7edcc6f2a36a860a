//! JSON Lines: one object per record with the `_airbyte_*` fields, and the record's data either
//! under `_airbyte_data` or spliced in at the top level (root-level flattening). The data text
//! is copied as received, never parsed and re-serialised.

use std::io::Write;

use cdk::Result;
use cdk::destination::Batch;

use super::meta::{RawIds, write_meta_json};
use super::{Encoder, Out, io_error};
use crate::config::Flattening;

pub struct JsonlEncoder {
    out: Out,
    flatten: bool,
    sync_id: i64,
    generation_id: i64,
    ids: RawIds,
    buf: Vec<u8>,
}

impl JsonlEncoder {
    pub fn new(out: Out, flattening: Flattening, sync_id: i64, generation_id: i64) -> Self {
        Self {
            out,
            flatten: flattening == Flattening::RootLevel,
            sync_id,
            generation_id,
            ids: RawIds::new(),
            buf: Vec::new(),
        }
    }
}

impl Encoder for JsonlEncoder {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        let buf = &mut self.buf;
        buf.clear();
        let mut int = itoa::Buffer::new();
        let generation = int.format(self.generation_id).as_bytes().to_vec();
        for record in batch.iter() {
            buf.extend_from_slice(b"{\"_airbyte_raw_id\":\"");
            buf.extend_from_slice(&self.ids.next_id());
            buf.extend_from_slice(b"\",\"_airbyte_extracted_at\":");
            buf.extend_from_slice(int.format(record.emitted_at).as_bytes());
            buf.extend_from_slice(b",\"_airbyte_meta\":");
            let changes = record.meta.map(|m| &m.changes[..]).unwrap_or_default();
            write_meta_json(buf, self.sync_id, changes, &[]);
            buf.extend_from_slice(b",\"_airbyte_generation_id\":");
            buf.extend_from_slice(&generation);
            if self.flatten {
                let inner = object_body(record.data);
                if !inner.is_empty() {
                    buf.push(b',');
                    buf.extend_from_slice(inner.as_bytes());
                }
            } else {
                buf.extend_from_slice(b",\"_airbyte_data\":");
                buf.extend_from_slice(record.data.as_bytes());
            }
            buf.extend_from_slice(b"}\n");
        }
        self.out.write_all(buf).map_err(io_error)
    }

    fn size(&self) -> u64 {
        self.out.size()
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        self.out.finish()
    }
}

/// The text between the braces of a JSON object, trimmed (empty for `{}`).
fn object_body(data: &str) -> &str {
    let t = data.trim();
    t.strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .map(str::trim)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_bodies() {
        assert_eq!(
            object_body(r#" {"a": 1, "b": {"c": 2}} "#),
            r#""a": 1, "b": {"c": 2}"#
        );
        assert_eq!(object_body("{ }"), "");
    }
}
