//! One stream's files, encoded on a thread of their own so encoding overlaps with the loader's
//! parsing: batches come in over a bounded channel, go into the current file, and the file is
//! completed when it reaches the size limit or when the loader commits. A failed file is
//! abandoned (its upload aborted); completed files stay.

use std::thread::JoinHandle;

use cdk::destination::{Batch, Outcome};
use cdk::{Error, Result};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::format::{Encoder, StreamFormat};
use crate::layout::{Context, Template};
use crate::target::Target;
use crate::upload::Sink;

/// Everything the thread needs to name and write files.
pub struct StreamFiles {
    pub target: Target,
    pub template: Template,
    pub context: Context,
    pub format: StreamFormat,
    pub max_file_bytes: u64,
}

enum Message {
    Write(Batch),
    Commit(oneshot::Sender<Result<()>>),
    Close(Outcome, oneshot::Sender<Result<Vec<String>>>),
}

/// The async side's handle on a stream's thread.
pub struct StreamWorker {
    name: String,
    tx: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl StreamWorker {
    pub fn start(files: StreamFiles, handle: Handle) -> Result<Self> {
        let name = files.context.stream.clone();
        // Two batches queued at most: memory stays bounded when uploads are slower than input.
        let (tx, rx) = mpsc::channel(2);
        let thread = std::thread::Builder::new()
            .name(format!("encode-{name}"))
            .spawn(move || {
                Worker {
                    files,
                    handle,
                    current: None,
                    next_part: 0,
                    written: Vec::new(),
                    error: None,
                }
                .run(rx)
            })
            .map_err(|e| {
                Error::system(format!("cannot start a thread for stream '{name}': {e}"))
            })?;
        Ok(Self {
            name,
            tx,
            thread: Some(thread),
        })
    }

    fn gone(&self) -> Error {
        Error::system(format!(
            "the file writer of stream '{}' stopped unexpectedly",
            self.name
        ))
    }

    pub async fn write(&self, batch: Batch) -> Result<()> {
        self.tx
            .send(Message::Write(batch))
            .await
            .map_err(|_| self.gone())
    }

    /// Completes the current file; every record written so far is then stored.
    pub async fn commit(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Commit(reply))
            .await
            .map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Ends the stream: completes the current file on success, abandons it on failure.
    /// Returns the keys of every file completed in this sync.
    pub async fn close(&mut self, outcome: Outcome) -> Result<Vec<String>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Close(outcome, reply))
            .await
            .map_err(|_| self.gone())?;
        let result = answer.await.map_err(|_| self.gone())?;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

struct Worker {
    files: StreamFiles,
    handle: Handle,
    current: Option<(String, Box<dyn Encoder>)>,
    next_part: u64,
    written: Vec<String>,
    error: Option<Error>,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        while let Some(message) = rx.blocking_recv() {
            match message {
                Message::Write(batch) => {
                    if self.error.is_none()
                        && let Err(e) = self.write(&batch)
                    {
                        self.fail(e);
                    }
                }
                Message::Commit(reply) => {
                    let result = match &self.error {
                        Some(e) => Err(e.clone()),
                        None => self.finish_file(),
                    };
                    if let Err(e) = &result {
                        self.fail(e.clone());
                    }
                    let _ = reply.send(result);
                }
                Message::Close(outcome, reply) => {
                    let result = match (&self.error, outcome) {
                        (Some(e), _) => Err(e.clone()),
                        (None, Outcome::Success) => self.finish_file(),
                        (None, Outcome::Failure) => {
                            self.current = None;
                            Ok(())
                        }
                    };
                    self.current = None;
                    let _ = reply.send(result.map(|()| std::mem::take(&mut self.written)));
                    return;
                }
            }
        }
        // The channel closed without a close: abandon the current file.
        self.current = None;
    }

    fn fail(&mut self, e: Error) {
        // Dropping the encoder aborts its upload.
        self.current = None;
        self.error = Some(e);
    }

    fn write(&mut self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            let key = self.next_key()?;
            let sink = Sink::new(
                self.files.target.clone(),
                self.handle.clone(),
                key.clone(),
                self.files.format.generation_id,
            );
            let encoder = self.files.format.encoder(sink)?;
            self.current = Some((key, encoder));
        }
        let Some((_, encoder)) = self.current.as_mut() else {
            return Ok(());
        };
        encoder.write(batch)?;
        if encoder.size() >= self.files.max_file_bytes {
            self.finish_file()?;
        }
        Ok(())
    }

    /// The key of the next file: the next part number whose key is not taken.
    fn next_key(&mut self) -> Result<String> {
        loop {
            let key = self
                .files
                .template
                .render(&self.files.context, self.next_part);
            self.next_part += 1;
            let target = &self.files.target;
            if !self.written.contains(&key) && !self.handle.block_on(target.exists(&key))? {
                return Ok(key);
            }
        }
    }

    fn finish_file(&mut self) -> Result<()> {
        let Some((key, encoder)) = self.current.take() else {
            return Ok(());
        };
        let bytes = encoder.finish()?;
        tracing::info!(stream = %self.files.context.stream, key = %key, bytes, "file complete");
        self.written.push(key);
        Ok(())
    }
}
