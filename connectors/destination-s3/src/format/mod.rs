//! File formats: an [`Encoder`] turns batches of raw record texts into the bytes of one object
//! (JSONL, CSV or Parquet) written through an upload [`Sink`].

mod background;
pub mod columns;
mod csv;
mod gzip;
mod jsonl;
pub mod meta;
mod parquet;
mod spill;

use std::io::Write;
use std::sync::Arc;

use cdk::destination::Batch;
use cdk::{Error, Result};
use flate2::write::GzEncoder;

use crate::config::{Format, TextCompression};
use crate::upload::Sink;
use columns::Column;

pub use cdk::destination::fields::Lookup;

/// Writes the records of one object.
pub trait Encoder: Send {
    fn write(&mut self, batch: &Batch) -> Result<()>;
    /// Bytes of the object so far, written or buffered.
    fn size(&self) -> u64;
    /// Writes the end of the file and completes the object; returns its size.
    fn finish(self: Box<Self>) -> Result<u64>;
}

/// What every file of one stream shares.
#[derive(Debug, Clone)]
pub struct StreamFormat {
    pub format: Format,
    pub columns: Arc<Vec<Column>>,
    pub lookup: Arc<Lookup>,
    pub sync_id: i64,
    pub generation_id: i64,
    /// Threads that compress and encode beside the stream's own (0: none; see
    /// [`encode_threads`](crate::config::encode_threads)).
    pub threads: usize,
}

impl StreamFormat {
    pub fn new(
        format: Format,
        columns: Vec<Column>,
        sync_id: i64,
        generation_id: i64,
        threads: usize,
    ) -> Self {
        let lookup = Lookup::new(columns.iter().map(|c| c.name.clone()));
        Self {
            format,
            columns: Arc::new(columns),
            lookup: Arc::new(lookup),
            sync_id,
            generation_id,
            threads,
        }
    }

    pub fn encoder(&self, sink: Sink) -> Result<Box<dyn Encoder>> {
        Ok(match &self.format {
            Format::Jsonl {
                flattening,
                compression,
            } => Box::new(jsonl::JsonlEncoder::new(
                Out::new(sink, *compression, self.threads)?,
                *flattening,
                self.sync_id,
                self.generation_id,
            )),
            Format::Csv {
                flattening,
                compression,
            } => Box::new(csv::CsvEncoder::new(
                Out::new(sink, *compression, self.threads)?,
                *flattening,
                self,
            )?),
            Format::Parquet(options) => {
                Box::new(parquet::ParquetEncoder::new(sink, options, self)?)
            }
        })
    }
}

/// `.jsonl`, `.csv` or `.parquet`, with `.gz` for gzip.
pub fn extension(format: &Format) -> &'static str {
    match format {
        Format::Jsonl {
            compression: TextCompression::Gzip,
            ..
        } => ".jsonl.gz",
        Format::Jsonl { .. } => ".jsonl",
        Format::Csv {
            compression: TextCompression::Gzip,
            ..
        } => ".csv.gz",
        Format::Csv { .. } => ".csv",
        Format::Parquet(_) => ".parquet",
    }
}

/// The default gzip level of text formats: 5. Airbyte's own destination writes level 6
/// (commons-compress `GzipCompressorOutputStream` defaults, `Deflater.DEFAULT_COMPRESSION`);
/// on the bench's records level 5 makes files 0.2% larger for a third less compression time
/// (level 4: +1.1%, level 1: +47%). `DESTINATION_S3_GZIP_LEVEL=6` writes Airbyte's level.
pub const GZIP_LEVEL: u32 = 5;

/// The output of a text format: the sink itself, or a gzip stream into it compressed on this
/// thread or on compression threads.
pub enum Out {
    Plain(Sink),
    Gzip(Box<GzEncoder<Sink>>),
    ParallelGzip(Box<gzip::ParallelGzip>),
}

impl Out {
    fn new(sink: Sink, compression: TextCompression, threads: usize) -> Result<Self> {
        let level = || crate::config::gzip_level().map(flate2::Compression::new);
        Ok(match compression {
            TextCompression::None => Out::Plain(sink),
            TextCompression::Gzip if threads == 0 => {
                Out::Gzip(Box::new(GzEncoder::new(sink, level()?)))
            }
            TextCompression::Gzip => {
                Out::ParallelGzip(Box::new(gzip::ParallelGzip::new(sink, level()?, threads)?))
            }
        })
    }

    fn size(&self) -> u64 {
        match self {
            Out::Plain(s) => s.written(),
            Out::Gzip(g) => g.get_ref().written(),
            Out::ParallelGzip(g) => g.size(),
        }
    }

    fn finish(self) -> Result<u64> {
        let sink = match self {
            Out::Plain(s) => s,
            Out::Gzip(g) => g.finish().map_err(io_error)?,
            Out::ParallelGzip(g) => return g.finish(),
        };
        sink.finish()
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Plain(s) => s.write(buf),
            Out::Gzip(g) => g.write(buf),
            Out::ParallelGzip(g) => g.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An i/o error from the sink: upload failures arrive wrapped in one.
pub fn io_error(e: std::io::Error) -> Error {
    let text = e.to_string();
    match e.into_inner() {
        Some(inner) => match inner.downcast::<Error>() {
            Ok(error) => *error,
            Err(other) => Error::system(format!("cannot write a file: {other}")),
        },
        None => Error::system(format!("cannot write a file: {text}")),
    }
}
