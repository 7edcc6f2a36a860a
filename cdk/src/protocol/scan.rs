//! A direct reading of the usual RECORD line: plain keys in any order, `stream` and
//! `namespace` without escapes, an integer `emitted_at`, no `meta` (or null), and `data` checked
//! as JSON on the way past. Anything else (and anything it is unsure of) is left to serde_json,
//! so a line reads the same either way: this only spares serde's generic machinery on the
//! lines that are nearly all of a destination's input.

use std::borrow::Cow;

use super::fast::{RawJson, RawRecord};

/// Nesting deeper than this in `data` is left to serde_json.
const MAX_DEPTH: usize = 64;

/// The RECORD on `line`, when it is of the usual shape; `None` otherwise (serde_json decides).
pub(super) fn record(line: &str) -> Option<RawRecord<'_>> {
    let mut scan = Scan::new(line, false);
    let record = scan.envelope()?;
    scan.space();
    (scan.at == line.len()).then_some(record)
}

/// [`record`], also appending to `fields` where each top-level field of `data` lies (key
/// start and end, without its quotes; value start and end), relative to the start of `data`.
/// True when it appended them all: `data` is an object and no key has an escape; otherwise
/// `fields` is left as it was.
pub(super) fn record_with_fields<'a>(
    line: &'a str,
    fields: &mut Vec<[u32; 4]>,
) -> Option<(RawRecord<'a>, bool)> {
    let before = fields.len();
    let mut scan = Scan::new(line, true);
    scan.fields = std::mem::take(fields);
    let record = scan.envelope().and_then(|record| {
        scan.space();
        (scan.at == line.len()).then_some(record)
    });
    *fields = std::mem::take(&mut scan.fields);
    let complete = record.is_some() && scan.fields_complete && u32::try_from(line.len()).is_ok();
    match complete {
        true => {
            let start = scan.data_start as u32;
            for span in &mut fields[before..] {
                span.iter_mut().for_each(|at| *at -= start);
            }
        }
        false => fields.truncate(before),
    }
    record.map(|record| (record, complete))
}

/// Where `bytes` has its first `"`, `\` or control character, eight bytes at a time (strings
/// in records are mostly too short for a vector search to pay).
pub(crate) fn special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(eight) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(eight);
        let found = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x);
        if found & HIGH != 0 {
            break;
        }
        at += 8;
    }
    let n = bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + n)
}

struct Scan<'a> {
    text: &'a str,
    at: usize,
    /// Whether to note where the top-level fields of `data` lie.
    want_fields: bool,
    /// Set while `data` is read (when `want_fields`).
    in_data: bool,
    data_start: usize,
    fields: Vec<[u32; 4]>,
    fields_complete: bool,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str, want_fields: bool) -> Self {
        Self {
            text,
            at: 0,
            want_fields,
            in_data: false,
            data_start: 0,
            fields: Vec::new(),
            fields_complete: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips white space and then `byte`.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// `{`, then `f` for each key until the closing `}` (which it consumes).
    fn members(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.items(b'}', |s| {
            let key = s.plain_string()?;
            s.eat(b':')?;
            s.space();
            f(s, key)
        })
    }

    /// The items of an object or array whose opening bracket was consumed, each read by
    /// `item`, separated by commas, up to `close` (which it consumes).
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.space();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            self.space();
            item(self)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                c if c == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn envelope(&mut self) -> Option<RawRecord<'a>> {
        let mut kind = None;
        let mut record = None;
        self.members(|scan, key| match key {
            "type" if kind.is_none() => {
                kind = Some(scan.plain_string()?);
                Some(())
            }
            "record" if record.is_none() => {
                record = Some(scan.record()?);
                Some(())
            }
            "type" | "record" => None,
            _ => scan.value(0),
        })?;
        (kind? == "RECORD").then_some(record?)
    }

    fn record(&mut self) -> Option<RawRecord<'a>> {
        let (mut stream, mut namespace, mut data, mut emitted_at) = (None, None, None, None);
        let mut meta_seen = false;
        self.members(|scan, key| {
            match key {
                "stream" if stream.is_none() => stream = Some(scan.plain_string()?),
                "namespace" if namespace.is_none() => {
                    namespace = Some(match scan.peek()? {
                        b'"' => Some(scan.plain_string()?),
                        _ => {
                            scan.literal(b"null")?;
                            None
                        }
                    })
                }
                "data" if data.is_none() => {
                    let start = scan.at;
                    scan.in_data = scan.want_fields;
                    scan.data_start = start;
                    scan.fields_complete = scan.want_fields && scan.peek() == Some(b'{');
                    scan.value(0)?;
                    scan.in_data = false;
                    data = Some(&scan.text[start..scan.at]);
                }
                "emitted_at" if emitted_at.is_none() => emitted_at = Some(scan.integer()?),
                // A record without changes; a real `meta` is serde's to read.
                "meta" if !meta_seen => {
                    scan.literal(b"null")?;
                    meta_seen = true;
                }
                "stream" | "namespace" | "data" | "emitted_at" | "meta" => return None,
                _ => scan.value(0)?,
            }
            Some(())
        })?;
        Some(RawRecord {
            stream: Cow::Borrowed(stream?),
            namespace: namespace.flatten().map(Cow::Borrowed),
            data: RawJson::new(data?),
            emitted_at: emitted_at?,
            meta: None,
        })
    }

    /// A string without escapes, its text.
    fn plain_string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let rest = self.text.as_bytes().get(start..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// A JSON integer that fits an `i64`.
    fn integer(&mut self) -> Option<i64> {
        let bytes = self.text.as_bytes();
        let negative = self.peek()? == b'-';
        let digits = self.at + usize::from(negative);
        let mut end = digits;
        let mut value: i64 = 0;
        while let Some(&b) = bytes.get(end).filter(|b| b.is_ascii_digit()) {
            let digit = i64::from(b - b'0');
            value = value.checked_mul(10)?;
            value = if negative {
                value.checked_sub(digit)?
            } else {
                value.checked_add(digit)?
            };
            end += 1;
        }
        if end == digits
            || (end - digits > 1 && bytes[digits] == b'0')
            || matches!(bytes.get(end), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        self.at = end;
        Some(value)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.text.as_bytes().get(self.at..end)? == word).then(|| self.at = end)
    }

    /// Moves past one JSON value, checking it as serde_json would.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.object(depth + 1)
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.array(depth + 1)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// An object in `data`: its keys may have escapes.
    fn object(&mut self, depth: usize) -> Option<()> {
        self.at += 1; // {
        // `data` itself, whose fields are noted when asked for.
        let noted = self.in_data && depth == 1;
        self.items(b'}', |s| {
            if s.peek()? != b'"' {
                return None;
            }
            let key_start = s.at + 1;
            s.string()?;
            let key_end = s.at - 1;
            s.eat(b':')?;
            s.space();
            let value_start = s.at;
            s.value(depth)?;
            if noted {
                if s.text.as_bytes()[key_start..key_end].contains(&b'\\') {
                    s.fields_complete = false;
                }
                let span = [key_start, key_end, value_start, s.at].map(|at| at as u32);
                s.fields.push(span);
            }
            Some(())
        })
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.at += 1; // [
        self.items(b']', |s| s.value(depth))
    }

    /// A string with any escapes; `\u` escapes of surrogates are left to serde_json.
    fn string(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let mut at = self.at + 1;
        loop {
            at += special(bytes.get(at..)?)?;
            match bytes[at] {
                b'"' => {
                    self.at = at + 1;
                    return Some(());
                }
                b'\\' => match *bytes.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                    b'u' => {
                        let hex = bytes.get(at + 2..at + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit)
                            || (matches!(hex[0], b'd' | b'D') && !matches!(hex[1], b'0'..=b'7'))
                        {
                            return None;
                        }
                        at += 6;
                    }
                    _ => return None,
                },
                _ => return None, // a control character
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let mut at = self.at;
        let digits = |at: usize| {
            bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let n = digits(at.min(bytes.len()));
        if n == 0 || (n > 1 && bytes[at] == b'0') {
            return None;
        }
        at += n;
        if bytes.get(at) == Some(&b'.') {
            let n = digits(at + 1);
            if n == 0 {
                return None;
            }
            at += 1 + n;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let n = digits(at.min(bytes.len()));
            if n == 0 {
                return None;
            }
            at += n;
        }
        self.at = at;
        Some(())
    }
}
