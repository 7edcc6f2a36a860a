//! A Parquet writer on a thread of its own: the stream's thread builds the next RecordBatch
//! from JSON text while this one encodes and compresses the previous into pages. The batches
//! and the writer are the same as on one thread, so the file is the same; only the work is
//! spread over two cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use cdk::{Error, Result};
use parquet::arrow::ArrowWriter;

use crate::upload::Sink;

enum Job {
    Write(RecordBatch),
    /// Flush, write the footer and hand back the sink.
    Finish,
}

/// The handle on the writer's thread.
pub struct BackgroundWriter {
    jobs: Option<mpsc::SyncSender<Job>>,
    /// Bytes of the file so far, written or buffered, as of the last batch encoded.
    size: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<Option<Sink>>>>,
}

impl BackgroundWriter {
    pub fn start(writer: ArrowWriter<Sink>) -> Result<Self> {
        // One batch waits while one is encoded: memory stays at a few batches.
        let (jobs, rx) = mpsc::sync_channel(1);
        let size = Arc::new(AtomicU64::new(0));
        let shared = size.clone();
        let thread = std::thread::Builder::new()
            .name("parquet".into())
            .spawn(move || run(writer, rx, &shared))
            .map_err(|e| Error::system(format!("cannot start a parquet thread: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            size,
            thread: Some(thread),
        })
    }

    /// Queues `batch`; fails with the writer's error once it failed.
    pub fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(Job::Write(batch)).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        Err(self.stopped())
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Waits for every batch, writes the footer and returns the sink to complete.
    pub fn finish(mut self) -> Result<Sink> {
        if let Some(jobs) = self.jobs.take()
            && jobs.send(Job::Finish).is_err()
        {
            return Err(self.stopped());
        }
        match self.join()? {
            Some(sink) => Ok(sink),
            None => Err(Error::system("the parquet writer stopped before the end")),
        }
    }

    /// The error the thread stopped with.
    fn stopped(&mut self) -> Error {
        self.jobs = None;
        match self.join() {
            Err(e) => e,
            Ok(_) => Error::system("the parquet writer stopped unexpectedly"),
        }
    }

    fn join(&mut self) -> Result<Option<Sink>> {
        let Some(thread) = self.thread.take() else {
            return Err(Error::system("the parquet writer was already stopped"));
        };
        thread
            .join()
            .map_err(|_| Error::system("the parquet writer panicked"))?
    }
}

impl Drop for BackgroundWriter {
    /// Abandoned: the thread drops the writer, which aborts the upload; wait for that.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    mut writer: ArrowWriter<Sink>,
    jobs: mpsc::Receiver<Job>,
    size: &AtomicU64,
) -> Result<Option<Sink>> {
    for job in jobs {
        match job {
            Job::Write(batch) => {
                writer
                    .write(&batch)
                    .map_err(super::parquet::parquet_error)?;
                let bytes = writer.bytes_written() + writer.in_progress_size();
                size.store(bytes as u64, Ordering::Relaxed);
            }
            Job::Finish => {
                let sink = writer.into_inner().map_err(super::parquet::parquet_error)?;
                return Ok(Some(sink));
            }
        }
    }
    // The encoder was dropped: the writer goes too, and the upload is aborted.
    Ok(None)
}
