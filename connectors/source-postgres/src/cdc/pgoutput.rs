//! Decoder of pgoutput messages (logical replication protocol version 1): Begin, Commit,
//! Relation, Insert, Update, Delete and Truncate; Type, Origin and Message are skipped.

use cdk::{Error, Result};

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    /// An unchanged TOASTed value: not sent.
    Unchanged,
    Text(&'a [u8]),
}

/// A column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    pub name: String,
    pub type_oid: u32,
    pub key: bool,
}

/// One decoded message.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// `final_lsn` is the LSN of the commit record; `commit_ts` microseconds since 2000-01-01.
    Begin {
        final_lsn: u64,
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts: i64,
    },
    Relation {
        oid: u32,
        schema: String,
        name: String,
        replica_identity: u8,
        columns: Vec<RelColumn>,
    },
    Insert {
        rel: u32,
        new: Vec<Value<'a>>,
    },
    /// `old` is the key ('K') or the whole old row ('O') when the identity requires it.
    Update {
        rel: u32,
        old: Option<Vec<Value<'a>>>,
        new: Vec<Value<'a>>,
    },
    /// `key_only`: `old` carries the replica identity's key columns (others are null).
    Delete {
        rel: u32,
        key_only: bool,
        old: Vec<Value<'a>>,
    },
    Truncate {
        rels: Vec<u32>,
    },
    Other(u8),
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

fn malformed(what: &str) -> Error {
    Error::system(format!("malformed pgoutput message: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| malformed("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn cstr(&mut self) -> Result<String> {
        let rest = &self.b[self.at..];
        let len = rest.iter().position(|c| *c == 0);
        let len = len.ok_or_else(|| malformed("unterminated string"))?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Value<'a>>> {
        let n = self.u16()? as usize;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    Value::Text(self.take(len)?)
                }
                other => return Err(malformed(&format!("column kind {}", other as char))),
            });
        }
        Ok(values)
    }
}

/// Decodes one message.
pub fn decode(b: &[u8]) -> Result<Message<'_>> {
    let mut r = Reader { b, at: 1 };
    let tag = *b.first().ok_or_else(|| malformed("empty"))?;
    Ok(match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_ts: r.u64()? as i64,
            xid: r.u32()?,
        },
        b'C' => {
            r.u8()?;
            Message::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
                commit_ts: r.u64()? as i64,
            }
        }
        b'R' => {
            let oid = r.u32()?;
            let schema = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                r.u32()?; // typmod
                columns.push(RelColumn {
                    name,
                    type_oid,
                    key: flags & 1 == 1,
                });
            }
            Message::Relation {
                oid,
                schema,
                name,
                replica_identity,
                columns,
            }
        }
        b'I' => {
            let rel = r.u32()?;
            expect(&mut r, b'N')?;
            Message::Insert {
                rel,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(malformed("update without new tuple"));
            }
            Message::Update {
                rel,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(malformed("delete without old tuple"));
            }
            Message::Delete {
                rel,
                key_only: kind == b'K',
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            r.u8()?;
            let rels = (0..n).map(|_| r.u32()).collect::<Result<_>>()?;
            Message::Truncate { rels }
        }
        other => Message::Other(other),
    })
}

fn expect(r: &mut Reader<'_>, tag: u8) -> Result<()> {
    if r.u8()? != tag {
        return Err(malformed(&format!("expected '{}'", tag as char)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_update_delete_decode() {
        let mut b = vec![b'I'];
        b.extend_from_slice(&7u32.to_be_bytes());
        b.push(b'N');
        b.extend_from_slice(&3u16.to_be_bytes());
        b.extend_from_slice(b"t\0\0\0\x0242n");
        b.push(b'u');
        assert_eq!(
            decode(&b).unwrap(),
            Message::Insert {
                rel: 7,
                new: vec![Value::Text(b"42"), Value::Null, Value::Unchanged]
            }
        );
        b[0] = b'D';
        b[5] = b'K';
        assert!(matches!(
            decode(&b).unwrap(),
            Message::Delete { rel: 7, .. }
        ));
        b.truncate(8);
        assert!(decode(&b).is_err());
    }
}
