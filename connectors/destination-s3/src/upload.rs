//! A synchronous `Write` that streams one object to the target: bytes collect into parts of
//! [`PART_SIZE`], each part is uploaded as soon as it is full (at most [`MAX_IN_FLIGHT`] at a
//! time, so memory stays bounded), and `finish` completes the multipart upload — or, for an
//! object smaller than one part, stores it with a single PUT. Runs on an encoder thread and
//! drives the async client through a runtime handle.

use std::collections::VecDeque;
use std::io::Write;

use bytes::Bytes;
use object_store::{MultipartUpload, PutPayload};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::target::Target;
use cdk::{Error, Result};

/// Size of an uploaded part (S3 wants at least 5 MiB for all parts but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploading at the same time, per object.
pub const MAX_IN_FLIGHT: usize = 2;
/// How long an abandoned upload may take to abort.
const ABORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Sink {
    target: Target,
    handle: Handle,
    key: String,
    generation: i64,
    buf: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
    /// Bytes handed to the sink so far.
    written: u64,
    done: bool,
}

impl Sink {
    pub fn new(target: Target, handle: Handle, key: String, generation: i64) -> Self {
        Self {
            target,
            handle,
            key,
            generation,
            buf: Vec::new(),
            upload: None,
            in_flight: VecDeque::new(),
            written: 0,
            done: false,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    fn send_part(&mut self) -> Result<()> {
        // The next buffer grows as bytes come, so small files cost little memory.
        let part = Bytes::from(std::mem::take(&mut self.buf));
        if self.upload.is_none() {
            let upload = self
                .handle
                .block_on(self.target.start_upload(&self.key, self.generation))?;
            self.upload = Some(upload);
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(Error::system("internal error: no upload in progress"));
        };
        let future = upload.put_part(PutPayload::from(part));
        self.in_flight.push_back(self.handle.spawn(future));
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<()> {
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match self.handle.block_on(task) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.target.error("upload a part of", &self.key, e)),
            Err(e) => Err(Error::system(format!(
                "an upload of '{}' stopped: {e}",
                self.key
            ))),
        }
    }

    /// Uploads what is left and completes the object; returns its size.
    pub fn finish(mut self) -> Result<u64> {
        self.done = true;
        if self.upload.is_none() {
            let body = Bytes::from(std::mem::take(&mut self.buf));
            self.handle
                .block_on(self.target.put(&self.key, body, self.generation))?;
            return Ok(self.written);
        }
        if !self.buf.is_empty() {
            self.send_part()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        if let Some(upload) = self.upload.as_mut() {
            let key = self.key.clone();
            self.handle
                .block_on(upload.complete())
                .map_err(|e| self.target.error("complete the upload of", &key, e))?;
        }
        Ok(self.written)
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let room = PART_SIZE - self.buf.len();
            let n = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.buf.len() >= PART_SIZE {
                self.send_part().map_err(std::io::Error::other)?;
            }
        }
        self.written += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Sink {
    /// An unfinished object is abandoned: its upload is aborted so no part lingers. (The sink
    /// lives on an encoder thread, outside the runtime, so it may wait for the abort.)
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for task in self.in_flight.drain(..) {
            task.abort();
        }
        if let Some(mut upload) = self.upload.take() {
            let abort = async move {
                let _ = tokio::time::timeout(ABORT_TIMEOUT, upload.abort()).await;
            };
            if Handle::try_current().is_ok() {
                self.handle.spawn(abort);
            } else {
                self.handle.block_on(abort);
            }
        }
    }
}
