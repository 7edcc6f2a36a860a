//! Parquet files: the schema comes from the file's own (Arrow) schema, and rows are written as
//! JSON objects the way Airbyte's source-file (pandas) gives them: integers, floats (NaN as
//! null), booleans, text, and dates and timestamps as `YYYY-MM-DDTHH:MM:SS[.ffffff][±hh:mm]`.
//! A Parquet file is read into memory whole (its footer is at the end).

use std::io::Read;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use crate::storage::ByteReader;
use crate::values::Kind;
use cdk::json::write_utf8;
use cdk::{Error, RecordWriter, Result};

fn builder(input: ByteReader, uri: &str) -> Result<ParquetRecordBatchReaderBuilder<Bytes>> {
    let mut input = input;
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| Error::config(format!("cannot read '{uri}': {e}")))?;
    ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .map_err(|e| Error::config(format!("'{uri}' is not a readable Parquet file: {e}")))
}

/// The column type of an Arrow type; `None` for types this source does not read.
fn kind(t: &DataType) -> Option<Kind> {
    Some(match t {
        DataType::Boolean => Kind::Boolean,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Kind::Integer,
        DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => Kind::Number,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Kind::String,
        DataType::Date32 | DataType::Date64 => Kind::DateTime { tz: false },
        DataType::Timestamp(_, tz) => Kind::DateTime { tz: tz.is_some() },
        _ => return None,
    })
}

/// Adds the file's columns to `properties` (first file wins for a name).
pub fn sample(input: ByteReader, uri: &str, properties: &mut Map<String, Value>) -> Result<()> {
    let builder = builder(input, uri)?;
    for field in builder.schema().fields() {
        let kind = kind(field.data_type())
            .ok_or_else(|| unsupported(uri, field.name(), field.data_type()))?;
        properties
            .entry(field.name().clone())
            .or_insert_with(|| kind.json_schema());
    }
    Ok(())
}

fn unsupported(uri: &str, column: &str, t: &DataType) -> Error {
    Error::config(format!(
        "'{uri}': column '{column}' has the Parquet/Arrow type {t}, which this source does not read"
    ))
}

/// Writes every row of the file as a record: the columns `selected` accepts, then
/// `file_columns`.
pub fn read(
    input: ByteReader,
    uri: &str,
    selected: &dyn Fn(&str) -> bool,
    file_columns: &[(&str, &str)],
    out: &mut RecordWriter,
) -> Result<()> {
    let builder = builder(input, uri)?;
    let schema: Schema = builder.schema().as_ref().clone();
    let columns: Vec<(usize, Vec<u8>)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| selected(f.name()))
        .map(|(i, f)| {
            let mut key = Vec::new();
            write_utf8(&mut key, f.name().as_bytes());
            key.push(b':');
            kind(f.data_type())
                .map(|_| (i, key))
                .ok_or_else(|| unsupported(uri, f.name(), f.data_type()))
        })
        .collect::<Result<_>>()?;
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::config(format!("cannot read '{uri}': {e}")))?;
    let mut record = Vec::with_capacity(1024);
    for batch in reader {
        let batch = batch.map_err(|e| Error::config(format!("cannot read '{uri}': {e}")))?;
        write_batch(&batch, &columns, file_columns, &mut record, out)?;
    }
    Ok(())
}

fn write_batch(
    batch: &RecordBatch,
    columns: &[(usize, Vec<u8>)],
    file_columns: &[(&str, &str)],
    record: &mut Vec<u8>,
    out: &mut RecordWriter,
) -> Result<()> {
    for row in 0..batch.num_rows() {
        record.clear();
        record.push(b'{');
        let mut first = true;
        for (i, key) in columns {
            if !first {
                record.push(b',');
            }
            first = false;
            record.extend_from_slice(key);
            value(batch.column(*i).as_ref(), row, record);
        }
        for (name, text) in file_columns {
            if !first {
                record.push(b',');
            }
            first = false;
            write_utf8(record, name.as_bytes());
            record.push(b':');
            write_utf8(record, text.as_bytes());
        }
        record.push(b'}');
        out.record_json(cdk::TrustedJson::new(record), &[])?;
    }
    Ok(())
}

/// Writes one value as JSON (null for nulls and NaN).
fn value(array: &dyn Array, row: usize, out: &mut Vec<u8>) {
    if array.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    let int = |out: &mut Vec<u8>, n: i128| out.extend_from_slice(n.to_string().as_bytes());
    let float = |out: &mut Vec<u8>, f: f64| {
        if f.is_finite() {
            out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
        } else {
            out.extend_from_slice(b"null");
        }
    };
    match array.data_type() {
        DataType::Boolean => {
            let b = array.as_boolean().value(row);
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        DataType::Int8 => int(out, array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int(out, array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int(out, array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => int(out, array.as_primitive::<Int64Type>().value(row).into()),
        DataType::UInt8 => int(out, array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int(out, array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => int(out, array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => int(out, array.as_primitive::<UInt64Type>().value(row).into()),
        DataType::Float32 => float(out, array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => float(out, array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(..) => {
            let text = array
                .as_primitive::<arrow_array::types::Decimal128Type>()
                .value_as_string(row);
            out.extend_from_slice(text.as_bytes());
        }
        DataType::Utf8 => write_utf8(out, array.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => write_utf8(out, array.as_string::<i64>().value(row).as_bytes()),
        DataType::Utf8View => write_utf8(out, array.as_string_view().value(row).as_bytes()),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            timestamp(out, i64::from(days) * 86_400_000_000, None);
        }
        DataType::Date64 => {
            let ms = array.as_primitive::<Date64Type>().value(row);
            timestamp(out, ms * 1000, None);
        }
        DataType::Timestamp(unit, tz) => {
            let micros = match unit {
                TimeUnit::Second => {
                    array.as_primitive::<TimestampSecondType>().value(row) * 1_000_000
                }
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row) * 1000
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1000
                }
            };
            timestamp(out, micros, tz.as_deref());
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// A time in microseconds since the epoch as pandas' `isoformat()` writes it; with a time
/// zone (only UTC offsets are told apart) it carries `+00:00`.
fn timestamp(out: &mut Vec<u8>, micros: i64, tz: Option<&str>) {
    let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
        out.extend_from_slice(b"null");
        return;
    };
    let t = t.naive_utc();
    let mut text = if t.and_utc().timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    };
    if tz.is_some() {
        text.push_str("+00:00");
    }
    write_utf8(out, text.as_bytes());
}
