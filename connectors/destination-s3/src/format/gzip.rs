//! Gzip on several threads, as pigz does it: the text is cut into blocks of [`BLOCK`] bytes,
//! compression threads deflate the blocks side by side (each ending on a byte boundary with a
//! sync flush, never the last block), and the writer puts them in order behind one gzip header,
//! then an empty final block and the trailer with the CRC of the whole text (combined from the
//! blocks' CRCs). The object is one ordinary gzip member that any reader takes; only the
//! compressed bytes differ from a single-threaded stream, never the text.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc;

use cdk::{Error, Result};
use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};

use crate::upload::Sink;

/// Text per compressed block: large enough that starting each block without the previous
/// one's window costs nothing measurable, small enough to keep every thread busy.
pub const BLOCK: usize = 1 << 20;
/// Blocks queued per compression thread.
const QUEUED: usize = 2;

/// A deflated block: the text it came from (its buffer is reused), the deflate bytes and
/// the text's CRC.
struct Deflated {
    text: Vec<u8>,
    bytes: std::io::Result<Vec<u8>>,
    crc: Hasher,
}

struct Thread {
    jobs: mpsc::SyncSender<Vec<u8>>,
    done: mpsc::Receiver<Deflated>,
}

/// A gzip stream into a [`Sink`], deflated on `threads` threads.
pub struct ParallelGzip {
    sink: Sink,
    threads: Vec<Thread>,
    /// The thread of each block in flight, oldest first.
    in_flight: VecDeque<usize>,
    turn: usize,
    block: Vec<u8>,
    spare: Vec<Vec<u8>>,
    crc: Hasher,
    len: u64,
}

impl ParallelGzip {
    /// Starts `threads` (at least 1) compression threads at `level` and writes the header.
    pub fn new(mut sink: Sink, level: Compression, threads: usize) -> Result<Self> {
        let threads = (0..threads.max(1))
            .map(|i| start_thread(i, level))
            .collect::<Result<Vec<_>>>()?;
        // ID1 ID2, deflate, no flags, no time, no extra flags, OS unknown (as flate2 writes).
        sink.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])
            .map_err(super::io_error)?;
        Ok(Self {
            sink,
            threads,
            in_flight: VecDeque::new(),
            turn: 0,
            block: Vec::with_capacity(BLOCK),
            spare: Vec::new(),
            crc: Hasher::new(),
            len: 0,
        })
    }

    /// Compressed bytes handed to the sink so far.
    pub fn size(&self) -> u64 {
        self.sink.written()
    }

    /// Sends the current block to the next thread, first taking back the oldest block when
    /// every queue is full.
    fn submit(&mut self) -> std::io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= self.threads.len() * QUEUED {
            self.collect_oldest()?;
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK));
        let block = std::mem::replace(&mut self.block, next);
        self.threads[self.turn]
            .jobs
            .send(block)
            .map_err(|_| stopped())?;
        self.in_flight.push_back(self.turn);
        self.turn = (self.turn + 1) % self.threads.len();
        Ok(())
    }

    /// Waits for the oldest block and writes it out.
    fn collect_oldest(&mut self) -> std::io::Result<()> {
        let Some(thread) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let Deflated {
            mut text,
            bytes,
            crc,
        } = self.threads[thread].done.recv().map_err(|_| stopped())?;
        self.sink.write_all(&bytes?)?;
        self.crc.combine(&crc);
        self.len += text.len() as u64;
        text.clear();
        self.spare.push(text);
        Ok(())
    }

    /// Writes the last blocks, the end of the deflate stream and the trailer, and completes
    /// the object; returns its size.
    pub fn finish(mut self) -> Result<u64> {
        self.submit().map_err(super::io_error)?;
        while !self.in_flight.is_empty() {
            self.collect_oldest().map_err(super::io_error)?;
        }
        // A final fixed-Huffman block with no data: BFINAL 1, BTYPE 01, end of block.
        let mut tail = vec![0x03, 0x00];
        tail.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
        tail.extend_from_slice(&(self.len as u32).to_le_bytes());
        self.sink.write_all(&tail).map_err(super::io_error)?;
        self.sink.finish()
    }
}

impl Write for ParallelGzip {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let take = (BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() >= BLOCK {
                self.submit()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn stopped() -> std::io::Error {
    std::io::Error::other("a gzip compression thread stopped")
}

fn start_thread(i: usize, level: Compression) -> Result<Thread> {
    let (jobs, job_rx) = mpsc::sync_channel::<Vec<u8>>(QUEUED);
    let (done_tx, done) = mpsc::sync_channel(QUEUED);
    std::thread::Builder::new()
        .name(format!("gzip-{i}"))
        .spawn(move || {
            let mut deflate = Compress::new(level, false);
            for text in job_rx {
                deflate.reset();
                let bytes = deflate_block(&mut deflate, &text);
                let mut crc = Hasher::new();
                crc.update(&text);
                if done_tx.send(Deflated { text, bytes, crc }).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| Error::system(format!("cannot start a gzip thread: {e}")))?;
    Ok(Thread { jobs, done })
}

/// Raw deflate of `text`, ended with a sync flush: byte-aligned and not final, so blocks
/// can follow one another.
fn deflate_block(deflate: &mut Compress, text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2 + 1024);
    let start = deflate.total_in();
    loop {
        let consumed = (deflate.total_in() - start) as usize;
        let status = deflate
            .compress_vec(&text[consumed..], &mut out, FlushCompress::Sync)
            .map_err(std::io::Error::other)?;
        let all_in = (deflate.total_in() - start) as usize == text.len();
        // The flush is complete once the output kept room to spare.
        if all_in && out.len() < out.capacity() {
            return Ok(out);
        }
        if status == Status::StreamEnd {
            return Err(std::io::Error::other("deflate ended a block early"));
        }
        out.reserve(out.capacity().max(64 << 10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn blocks_join_into_one_gzip_member_of_the_whole_text() {
        let mut text = Vec::new();
        for i in 0..120_000 {
            text.extend_from_slice(format!("{{\"id\":{i},\"name\":\"user {i}\"}}\n").as_bytes());
        }
        text.extend_from_slice(&[0, 255, 7]);
        assert!(text.len() > 3 * BLOCK);
        let mut deflate = Compress::new(Compression::default(), false);
        let mut stream = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        let mut crc = Hasher::new();
        for block in text.chunks(BLOCK) {
            deflate.reset();
            stream.extend_from_slice(&deflate_block(&mut deflate, block).unwrap());
            let mut c = Hasher::new();
            c.update(block);
            crc.combine(&c);
        }
        stream.extend_from_slice(&[3, 0]);
        stream.extend_from_slice(&crc.finalize().to_le_bytes());
        stream.extend_from_slice(&(text.len() as u32).to_le_bytes());
        // One member: the single-member decoder reads it all, CRC and length checked.
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&stream[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == text);
        assert!(stream.len() < text.len() / 5, "{} bytes", stream.len());
    }
}
