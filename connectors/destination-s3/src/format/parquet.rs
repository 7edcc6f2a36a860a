//! Parquet: the `_airbyte_*` columns (`_airbyte_meta` as a struct of `sync_id` and a list of
//! changes) and one typed column per top-level property of the stream's schema. Each batch
//! becomes an Arrow RecordBatch built with array builders straight from the raw JSON text; a
//! value that does not fit its column is stored as null with a `changes` entry. Row groups are
//! flushed at `block_size_mb` of buffered data, so memory stays bounded.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{
    ArrayRef, Int64Array, ListArray, RecordBatch, StructArray, TimestampMillisecondArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use cdk::destination::Batch;
use cdk::protocol::{AirbyteRecordMessageMetaChange, ChangeReason};
use cdk::{Error, Result};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::background::BackgroundWriter;
use super::columns::{Cell, Column, ColumnType, cell};
use super::meta::{self, RawIds};
use super::spill::SpillFactory;
use super::{Encoder, StreamFormat};
use crate::config::{ParquetCodec, ParquetOptions};
use crate::upload::Sink;
use cdk::destination::fields::{Lookup, Walker};

pub struct ParquetEncoder {
    writer: Writer,
    schema: SchemaRef,
    columns: Arc<Vec<Column>>,
    lookup: Arc<Lookup>,
    sync_id: i64,
    generation_id: i64,
    ids: RawIds,
    walker: Walker,
}

impl ParquetEncoder {
    pub fn new(sink: Sink, options: &ParquetOptions, format: &StreamFormat) -> Result<Self> {
        let schema = arrow_schema(&format.columns);
        let options = ArrowWriterOptions::new()
            .with_properties(properties(options)?)
            .with_page_store_factory(Arc::new(SpillFactory::shared()));
        let writer = ArrowWriter::try_new_with_options(sink, schema.clone(), options)
            .map_err(|e| Error::system(format!("cannot start a parquet file: {e}")))?;
        let writer = match format.threads {
            0 => Writer::Here(Box::new(writer)),
            _ => Writer::Thread(BackgroundWriter::start(writer)?),
        };
        Ok(Self {
            writer,
            schema,
            columns: format.columns.clone(),
            lookup: format.lookup.clone(),
            sync_id: format.sync_id,
            generation_id: format.generation_id,
            ids: RawIds::new(),
            walker: Walker::default(),
        })
    }
}

/// Where batches are encoded: on the stream's thread, or on a thread of their own.
enum Writer {
    Here(Box<ArrowWriter<Sink>>),
    Thread(BackgroundWriter),
}

/// Writer settings from the config's Parquet options.
pub fn properties(options: &ParquetOptions) -> Result<WriterProperties> {
    let compression = match options.compression_codec {
        ParquetCodec::Uncompressed => Compression::UNCOMPRESSED,
        ParquetCodec::Snappy => Compression::SNAPPY,
        ParquetCodec::Gzip => Compression::GZIP(GzipLevel::default()),
        ParquetCodec::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCodec::Brotli => Compression::BROTLI(BrotliLevel::default()),
        // Parquet's LZ4_RAW: the LZ4 block format readers support today.
        ParquetCodec::Lz4 => Compression::LZ4_RAW,
        ParquetCodec::Lzo => {
            return Err(Error::config(
                "parquet compression codec 'LZO' is not supported by this destination",
            ));
        }
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        // Row groups by size only, like parquet-mr's block size; their pages wait on disk
        // beyond a memory budget (see `spill`), so a big block costs little memory.
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(Some((options.block_size_mb.max(1) as usize) << 20))
        .set_data_page_size_limit((options.page_size_kb.max(1) as usize) << 10)
        .set_dictionary_page_size_limit((options.dictionary_page_size_kb.max(1) as usize) << 10)
        .set_dictionary_enabled(options.dictionary_encoding)
        // Random ids never repeat: a dictionary would only be built to be thrown away.
        .set_column_dictionary_enabled(ColumnPath::from(meta::RAW_ID), false)
        .set_created_by(format!("destination-s3 {}", env!("CARGO_PKG_VERSION")))
        .build())
}

fn change_fields() -> Fields {
    Fields::from(vec![
        Field::new("field", DataType::Utf8, false),
        Field::new("change", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ])
}

fn change_item() -> Arc<Field> {
    Arc::new(Field::new(
        "element",
        DataType::Struct(change_fields()),
        false,
    ))
}

fn meta_fields() -> Fields {
    Fields::from(vec![
        Field::new("sync_id", DataType::Int64, true),
        Field::new("changes", DataType::List(change_item()), false),
    ])
}

/// The Arrow schema of a stream's files.
pub fn arrow_schema(columns: &[Column]) -> SchemaRef {
    let mut fields = vec![
        Field::new(meta::RAW_ID, DataType::Utf8, false),
        Field::new(
            meta::EXTRACTED_AT,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(meta::GENERATION_ID, DataType::Int64, false),
        Field::new(meta::META, DataType::Struct(meta_fields()), false),
    ];
    fields.extend(
        columns
            .iter()
            .map(|c| Field::new(&c.name, data_type(c.ty), true)),
    );
    Arc::new(Schema::new(fields))
}

fn data_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Integer => DataType::Int64,
        ColumnType::Number => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::String | ColumnType::Json => DataType::Utf8,
        ColumnType::Date => DataType::Date32,
        ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::TimestampNtz => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
    }
}

/// A builder for one data column.
enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
}

impl Builder {
    fn new(ty: ColumnType, rows: usize) -> Self {
        match ty {
            ColumnType::Integer => Builder::Int(Int64Builder::with_capacity(rows)),
            ColumnType::Number => Builder::Float(Float64Builder::with_capacity(rows)),
            ColumnType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::String | ColumnType::Json => {
                Builder::Str(StringBuilder::with_capacity(rows, rows * 16))
            }
            ColumnType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            ColumnType::TimestampTz => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
            ColumnType::TimestampNtz => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(rows))
            }
            ColumnType::Time => Builder::Time(Time64MicrosecondBuilder::with_capacity(rows)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Int(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Str(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
        }
    }

    /// Appends `cell`; false (and a null) when it does not fit.
    fn append(&mut self, cell: Cell<'_>) -> bool {
        match (self, cell) {
            (b, Cell::Null) => b.append_null(),
            (Builder::Int(b), Cell::Int(v)) => b.append_value(v),
            (Builder::Float(b), Cell::Float(v)) => b.append_value(v),
            (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Str(b), Cell::Str(v)) => b.append_value(v),
            (Builder::Date(b), Cell::Date(v)) => b.append_value(v),
            (Builder::Ts(b), Cell::Micros(v)) => b.append_value(v),
            (Builder::Time(b), Cell::Micros(v)) => b.append_value(v),
            (b, _) => {
                b.append_null();
                return false;
            }
        }
        true
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
        }
    }
}

impl ParquetEncoder {
    /// The RecordBatch of `batch`.
    fn record_batch(&mut self, batch: &Batch) -> Result<RecordBatch> {
        let rows = batch.len();
        let mut raw_ids = StringBuilder::with_capacity(rows, rows * 36);
        let mut extracted = Vec::with_capacity(rows);
        let mut builders: Vec<Builder> = self
            .columns
            .iter()
            .map(|c| Builder::new(c.ty, rows))
            .collect();
        let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
        offsets.push(0);
        let mut change_field = StringBuilder::new();
        let mut change_kind = StringBuilder::new();
        let mut change_reason = StringBuilder::new();
        let mut nulled: Vec<usize> = Vec::new();
        // Per column, 1 + the last row it has a value for.
        let mut filled = vec![0usize; builders.len()];

        for (row, record) in batch.iter().enumerate() {
            raw_ids.append_value(std::str::from_utf8(&self.ids.next_id()).unwrap_or_default());
            extracted.push(record.emitted_at);
            nulled.clear();
            let columns = &self.columns;
            self.walker
                .walk_record(&record, &self.lookup, |i, raw| {
                    if filled[i] > row {
                        return; // a repeated field: the first one counts
                    }
                    filled[i] = row + 1;
                    if !builders[i].append(cell(columns[i].ty, raw)) {
                        nulled.push(i);
                    }
                })
                .map_err(|e| Error::system(format!("record data is not a JSON object: {e}")))?;
            for (b, filled) in builders.iter_mut().zip(&filled) {
                if *filled <= row {
                    b.append_null();
                }
            }
            let source = record.meta.map(|m| &m.changes[..]).unwrap_or_default();
            for change in source {
                push_change(
                    change,
                    &mut change_field,
                    &mut change_kind,
                    &mut change_reason,
                );
            }
            for &i in &nulled {
                let change = AirbyteRecordMessageMetaChange::nulled(
                    self.columns[i].name.clone(),
                    ChangeReason::DestinationSerializationError,
                );
                push_change(
                    &change,
                    &mut change_field,
                    &mut change_kind,
                    &mut change_reason,
                );
            }
            offsets.push(change_field.len() as i32);
        }

        let changes = StructArray::new(
            change_fields(),
            vec![
                Arc::new(change_field.finish()) as ArrayRef,
                Arc::new(change_kind.finish()),
                Arc::new(change_reason.finish()),
            ],
            None,
        );
        let list = ListArray::new(
            change_item(),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(changes),
            None,
        );
        let meta = StructArray::new(
            meta_fields(),
            vec![
                Arc::new(Int64Array::from(vec![self.sync_id; rows])) as ArrayRef,
                Arc::new(list),
            ],
            None,
        );
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(raw_ids.finish()),
            Arc::new(TimestampMillisecondArray::from(extracted).with_timezone("UTC")),
            Arc::new(Int64Array::from(vec![self.generation_id; rows])),
            Arc::new(meta),
        ];
        arrays.extend(builders.iter_mut().map(Builder::finish));
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::system(format!("cannot assemble a parquet batch: {e}")))
    }
}

fn push_change(
    change: &AirbyteRecordMessageMetaChange,
    field: &mut StringBuilder,
    kind: &mut StringBuilder,
    reason: &mut StringBuilder,
) {
    field.append_value(&change.field);
    kind.append_value(enum_text(&change.change));
    reason.append_value(enum_text(&change.reason));
}

/// The protocol name of a serde enum value (`NULLED`, `DESTINATION_TYPECAST_ERROR`).
fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl Encoder for ParquetEncoder {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let rb = self.record_batch(batch)?;
        match &mut self.writer {
            Writer::Here(writer) => writer.write(&rb).map_err(parquet_error),
            Writer::Thread(writer) => writer.write(rb),
        }
    }

    fn size(&self) -> u64 {
        match &self.writer {
            Writer::Here(writer) => (writer.bytes_written() + writer.in_progress_size()) as u64,
            Writer::Thread(writer) => writer.size(),
        }
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        let sink = match self.writer {
            Writer::Here(writer) => writer.into_inner().map_err(parquet_error)?,
            Writer::Thread(writer) => writer.finish()?,
        };
        sink.finish()
    }
}

/// Parquet errors; upload failures come through as i/o errors of the sink.
pub(super) fn parquet_error(e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => super::io_error(*io),
                Err(other) => Error::system(format!("cannot write parquet: {other}")),
            }
        }
        other => Error::system(format!("cannot write parquet: {other}")),
    }
}
