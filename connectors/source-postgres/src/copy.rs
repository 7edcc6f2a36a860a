//! Streaming decoder of `COPY … TO STDOUT (FORMAT binary)`: tuples are handed to a callback as
//! they arrive, straight from the network buffers when a tuple sits in one message (the usual
//! case), so memory stays at a message or two whatever the table size.

use bytes::{Buf, Bytes, BytesMut};
use cdk::{Error, Result};
use futures::{Stream, StreamExt};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// One tuple: its bytes and, per field, (offset, length) with length -1 for NULL.
pub struct Tuple<'a> {
    data: &'a [u8],
    fields: &'a [(u32, i32)],
}

impl<'a> Tuple<'a> {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// The field's bytes, `None` for NULL.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let (at, len) = self.fields[i];
        (len >= 0).then(|| &self.data[at as usize..at as usize + len as usize])
    }
}

/// Feeds every tuple of a binary COPY stream to `on_tuple`; returns the number of tuples.
pub async fn for_each_tuple<S, F>(stream: S, mut on_tuple: F) -> Result<u64>
where
    S: Stream<Item = std::result::Result<Bytes, tokio_postgres::Error>>,
    F: FnMut(&Tuple<'_>) -> Result<()>,
{
    let mut decoder = Decoder::default();
    let mut pending = BytesMut::new();
    futures::pin_mut!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| crate::connect::query_error(&e, "reading rows failed"))?;
        if pending.is_empty() {
            let used = decoder.parse(&chunk, &mut on_tuple)?;
            if used < chunk.len() {
                pending.extend_from_slice(&chunk[used..]);
            }
        } else {
            pending.extend_from_slice(&chunk);
            let used = decoder.parse(&pending, &mut on_tuple)?;
            pending.advance(used);
        }
    }
    if !decoder.finished || !pending.is_empty() {
        return Err(Error::transient(
            "the COPY stream ended before its trailer (connection lost?)",
        ));
    }
    Ok(decoder.tuples)
}

#[derive(Default)]
struct Decoder {
    header_done: bool,
    finished: bool,
    tuples: u64,
    fields: Vec<(u32, i32)>,
}

impl Decoder {
    /// Decodes the complete tuples at the start of `buf`; returns the bytes used.
    fn parse<F>(&mut self, buf: &[u8], on_tuple: &mut F) -> Result<usize>
    where
        F: FnMut(&Tuple<'_>) -> Result<()>,
    {
        let mut pos = 0;
        if !self.header_done {
            if buf.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(Error::system(
                    "COPY output does not start with the binary signature",
                ));
            }
            pos = SIGNATURE.len() + 4;
            let ext = read_i32(buf, pos) as usize;
            pos += 4;
            if buf.len() < pos + ext {
                return Ok(0);
            }
            pos += ext;
            self.header_done = true;
        }
        loop {
            if self.finished || buf.len() < pos + 2 {
                return Ok(pos);
            }
            let count = i16::from_be_bytes([buf[pos], buf[pos + 1]]);
            if count == -1 {
                self.finished = true;
                return Ok(pos + 2);
            }
            let mut at = pos + 2;
            self.fields.clear();
            let mut complete = true;
            for _ in 0..count {
                if buf.len() < at + 4 {
                    complete = false;
                    break;
                }
                let len = read_i32(buf, at);
                at += 4;
                let size = len.max(0) as usize;
                if buf.len() < at + size {
                    complete = false;
                    break;
                }
                self.fields.push((at as u32, len));
                at += size;
            }
            if !complete {
                return Ok(pos);
            }
            on_tuple(&Tuple {
                data: buf,
                fields: &self.fields,
            })?;
            self.tuples += 1;
            pos = at;
        }
    }
}

#[inline]
fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        for (id, name) in [(1i32, Some("a")), (2, None)] {
            b.extend_from_slice(&2i16.to_be_bytes());
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&id.to_be_bytes());
            match name {
                Some(n) => {
                    b.extend_from_slice(&(n.len() as i32).to_be_bytes());
                    b.extend_from_slice(n.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    #[tokio::test]
    async fn tuples_split_anywhere_decode_the_same() {
        let bytes = sample();
        for split in 1..bytes.len() {
            let chunks: Vec<std::result::Result<Bytes, tokio_postgres::Error>> = bytes
                .chunks(split)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let mut seen = Vec::new();
            let n = for_each_tuple(futures::stream::iter(chunks), |t| {
                seen.push((t.get(0).map(<[u8]>::to_vec), t.get(1).map(<[u8]>::to_vec)));
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(n, 2, "split {split}");
            assert_eq!(seen[0].1.as_deref(), Some(&b"a"[..]));
            assert_eq!(seen[1].1, None);
        }
    }

    #[tokio::test]
    async fn a_stream_without_trailer_is_an_error() {
        let mut bytes = sample();
        bytes.truncate(bytes.len() - 2);
        let chunks = vec![Ok::<_, tokio_postgres::Error>(Bytes::from(bytes))];
        let e = for_each_tuple(futures::stream::iter(chunks), |_| Ok(()))
            .await
            .unwrap_err();
        assert!(e.message.contains("before its trailer"), "{}", e.message);
    }
}
