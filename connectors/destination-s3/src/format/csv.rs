//! CSV with a header row: the `_airbyte_*` columns, then `_airbyte_data` as JSON text, or with
//! root-level flattening one column per top-level property of the stream's schema (strings as
//! text, nested values as JSON, null as an empty field).

use cdk::destination::Batch;
use cdk::{Error, Result};

use super::columns::{Column, string};
use super::meta::{self, RawIds, write_meta_json};
use super::{Encoder, Out, StreamFormat, io_error};
use crate::config::Flattening;
use cdk::destination::fields::{Lookup, Walker};
use std::sync::Arc;

pub struct CsvEncoder {
    writer: csv::Writer<Out>,
    flatten: bool,
    columns: Arc<Vec<Column>>,
    lookup: Arc<Lookup>,
    sync_id: i64,
    generation_id: i64,
    ids: RawIds,
    meta: Vec<u8>,
    values: Vec<Option<String>>,
    walker: Walker,
}

impl CsvEncoder {
    pub fn new(out: Out, flattening: Flattening, format: &StreamFormat) -> Result<Self> {
        let flatten = flattening == Flattening::RootLevel;
        let mut writer = csv::WriterBuilder::new()
            .buffer_capacity(1 << 20)
            .from_writer(out);
        let mut header = vec![
            meta::RAW_ID,
            meta::EXTRACTED_AT,
            meta::GENERATION_ID,
            meta::META,
        ];
        if flatten {
            header.extend(format.columns.iter().map(|c| c.name.as_str()));
        } else {
            header.push(meta::DATA);
        }
        writer.write_record(&header).map_err(csv_error)?;
        Ok(Self {
            writer,
            flatten,
            columns: format.columns.clone(),
            lookup: format.lookup.clone(),
            sync_id: format.sync_id,
            generation_id: format.generation_id,
            ids: RawIds::new(),
            meta: Vec::new(),
            values: Vec::new(),
            walker: Walker::default(),
        })
    }
}

impl Encoder for CsvEncoder {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        let mut int = itoa::Buffer::new();
        let generation = self.generation_id.to_string();
        for record in batch.iter() {
            let id = self.ids.next_id();
            self.meta.clear();
            let changes = record.meta.map(|m| &m.changes[..]).unwrap_or_default();
            write_meta_json(&mut self.meta, self.sync_id, changes, &[]);
            self.writer.write_field(id).map_err(csv_error)?;
            self.writer
                .write_field(int.format(record.emitted_at))
                .map_err(csv_error)?;
            self.writer.write_field(&generation).map_err(csv_error)?;
            self.writer.write_field(&self.meta).map_err(csv_error)?;
            if self.flatten {
                self.values.clear();
                self.values.resize(self.columns.len(), None);
                let values = &mut self.values;
                self.walker
                    .walk_record(&record, &self.lookup, |i, raw| {
                        values[i] = match string(raw) {
                            Some(s) => Some(s.into_owned()),
                            None if raw.trim() == "null" => None,
                            None => Some(raw.to_string()),
                        };
                    })
                    .map_err(|e| Error::system(format!("record data is not a JSON object: {e}")))?;
                for v in &self.values {
                    self.writer
                        .write_field(v.as_deref().unwrap_or(""))
                        .map_err(csv_error)?;
                }
            } else {
                self.writer.write_field(record.data).map_err(csv_error)?;
            }
            self.writer.write_record(None::<&[u8]>).map_err(csv_error)?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.writer.get_ref().size()
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        let out = self
            .writer
            .into_inner()
            .map_err(|e| io_error(e.into_error()))?;
        out.finish()
    }
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io_error(io),
        other => Error::system(format!("cannot write csv: {other:?}")),
    }
}
