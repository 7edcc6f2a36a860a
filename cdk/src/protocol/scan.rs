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
/// `fields` is left as it was. A line that starts with the bytes of `prefix` (what the last
/// line had before its `data`) is read from its `data` on; `prefix` then becomes this line's.
pub(super) fn record_with_fields<'a>(
    line: &'a str,
    fields: &mut Vec<[u32; 4]>,
    prefix: &mut Prefix,
) -> Option<(RawRecord<'a>, bool)> {
    let before = fields.len();
    let mut scan = Scan::new(line, true);
    scan.fields = std::mem::take(fields);
    let known = prefix.matches(line);
    let record = match known {
        true => scan.record_after(prefix),
        false => scan.envelope(),
    }
    .and_then(|record| {
        scan.space();
        (scan.at == line.len()).then_some(record)
    });
    *fields = std::mem::take(&mut scan.fields);
    if record.is_some()
        && !known
        && let Some(keys) = scan.before_data
    {
        *prefix = Prefix::of(line, scan.data_start, keys);
    }
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

/// The start of a RECORD line up to its `data` value, and what it said there (`type` having
/// come first). A writer puts every envelope's keys in one order and records come in runs of
/// one stream, so most lines start with the same bytes as the line before: those bytes read
/// the same again, and are compared instead of read.
#[derive(Debug, Default)]
pub(crate) struct Prefix {
    bytes: Vec<u8>,
    keys: RecordKeys<Span>,
}

/// Where a string lies on a line.
type Span = (usize, usize);

impl Prefix {
    fn matches(&self, line: &str) -> bool {
        !self.bytes.is_empty() && line.as_bytes().starts_with(&self.bytes)
    }

    fn of(line: &str, data_start: usize, keys: RecordKeys<Span>) -> Self {
        Self {
            bytes: line.as_bytes()[..data_start].to_vec(),
            keys,
        }
    }
}

/// The keys of a `record` read so far; `S` is a string (or where it lies).
#[derive(Debug, Clone, Copy)]
struct RecordKeys<S> {
    stream: Option<S>,
    namespace: Option<Option<S>>,
    data: bool,
    emitted_at: Option<i64>,
    meta: bool,
}

impl<S> Default for RecordKeys<S> {
    fn default() -> Self {
        Self {
            stream: None,
            namespace: None,
            data: false,
            emitted_at: None,
            meta: false,
        }
    }
}

/// Where `bytes` has its first `"`, `\` or control character: sixteen bytes at a time (SSE2,
/// which every x86-64 has), then eight, then one.
pub(crate) fn special(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; each load reads 16 bytes that lie inside `bytes`.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control = _mm_set1_epi8(0x1f);
            while at + 16 <= bytes.len() {
                let x = _mm_loadu_si128(bytes.as_ptr().add(at).cast());
                let found = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                    // x <= 0x1f, unsigned
                    _mm_cmpeq_epi8(_mm_max_epu8(x, control), control),
                );
                let mask = _mm_movemask_epi8(found) as u32;
                if mask != 0 {
                    return Some(at + mask.trailing_zeros() as usize);
                }
                at += 16;
            }
        }
    }
    special_swar(&bytes[at..]).map(|n| at + n)
}

/// [`special`] eight bytes at a time.
fn special_swar(bytes: &[u8]) -> Option<usize> {
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
    data_end: usize,
    fields: Vec<[u32; 4]>,
    fields_complete: bool,
    /// The envelope's `type` was `RECORD`, read before its `record`.
    type_first: bool,
    /// What the `record` said before its `data`, when `type_first`.
    before_data: Option<RecordKeys<Span>>,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str, want_fields: bool) -> Self {
        Self {
            text,
            at: 0,
            want_fields,
            in_data: false,
            data_start: 0,
            data_end: 0,
            fields: Vec::new(),
            fields_complete: false,
            type_first: false,
            before_data: None,
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
        self.items(b'}', |s| s.member(&mut f))
    }

    /// One `"key": value` of an object, the value read by `f`.
    fn member(&mut self, f: &mut impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        let key = self.plain_string()?;
        self.eat(b':')?;
        self.space();
        f(self, key)
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
            if self.after_item(close)? {
                return Some(());
            }
        }
    }

    /// After an item: true at `close` (consumed), false at a comma (consumed).
    fn after_item(&mut self, close: u8) -> Option<bool> {
        self.space();
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(false)
            }
            c if c == close => {
                self.at += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// The rest of an object after one of its members, each further one read by `f`.
    fn more_members(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        while !self.after_item(b'}')? {
            self.space();
            self.member(&mut f)?;
        }
        Some(())
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
                scan.type_first = kind == Some("RECORD");
                record = Some(scan.record()?);
                Some(())
            }
            "type" | "record" => None,
            _ => scan.value(0),
        })?;
        (kind? == "RECORD").then_some(record?)
    }

    fn record(&mut self) -> Option<RawRecord<'a>> {
        let mut keys = RecordKeys::default();
        self.members(|scan, key| scan.record_member(&mut keys, key))?;
        self.raw_record(keys)
    }

    /// A line that starts with `prefix`: its `data` on, then the rest of the `record` and of
    /// the envelope (whose `type` and `record` were read).
    fn record_after(&mut self, prefix: &Prefix) -> Option<RawRecord<'a>> {
        let text = self.text;
        let at = |(start, end): Span| &text[start..end];
        let known = &prefix.keys;
        let mut keys = RecordKeys {
            stream: known.stream.map(at),
            namespace: known.namespace.map(|n| n.map(at)),
            data: false,
            emitted_at: known.emitted_at,
            meta: known.meta,
        };
        self.at = prefix.bytes.len();
        self.space();
        self.data(&mut keys)?;
        self.more_members(|scan, key| scan.record_member(&mut keys, key))?;
        self.more_members(|scan, key| match key {
            "type" | "record" => None,
            _ => scan.value(0),
        })?;
        self.raw_record(keys)
    }

    fn raw_record(&self, keys: RecordKeys<&'a str>) -> Option<RawRecord<'a>> {
        Some(RawRecord {
            stream: Cow::Borrowed(keys.stream?),
            namespace: keys.namespace.flatten().map(Cow::Borrowed),
            data: RawJson::new(&self.text[self.data_start..self.data_end]),
            emitted_at: keys.emitted_at?,
            meta: None,
        })
        .filter(|_| keys.data)
    }

    /// One member of a `record`.
    fn record_member(&mut self, keys: &mut RecordKeys<&'a str>, key: &'a str) -> Option<()> {
        match key {
            "stream" if keys.stream.is_none() => keys.stream = Some(self.plain_string()?),
            "namespace" if keys.namespace.is_none() => {
                keys.namespace = Some(match self.peek()? {
                    b'"' => Some(self.plain_string()?),
                    _ => {
                        self.literal(b"null")?;
                        None
                    }
                })
            }
            "data" if !keys.data => {
                if self.type_first {
                    let span = |s: &str| {
                        let start = s.as_ptr() as usize - self.text.as_ptr() as usize;
                        (start, start + s.len())
                    };
                    self.before_data = Some(RecordKeys {
                        stream: keys.stream.map(span),
                        namespace: keys.namespace.map(|n| n.map(span)),
                        data: false,
                        emitted_at: keys.emitted_at,
                        meta: keys.meta,
                    });
                }
                self.data(keys)?;
            }
            "emitted_at" if keys.emitted_at.is_none() => keys.emitted_at = Some(self.integer()?),
            // A record without changes; a real `meta` is serde's to read.
            "meta" if !keys.meta => {
                self.literal(b"null")?;
                keys.meta = true;
            }
            "stream" | "namespace" | "data" | "emitted_at" | "meta" => return None,
            _ => self.value(0)?,
        }
        Some(())
    }

    /// The `data` value.
    fn data(&mut self, keys: &mut RecordKeys<&'a str>) -> Option<()> {
        let start = self.at;
        self.in_data = self.want_fields;
        self.data_start = start;
        self.fields_complete = self.want_fields && self.peek() == Some(b'{');
        self.value(0)?;
        self.in_data = false;
        self.data_end = self.at;
        keys.data = true;
        Some(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a reading gives: the record's parts, whether its fields are complete, and them.
    type Reading = Option<(String, Option<String>, String, i64, bool, Vec<[u32; 4]>)>;

    fn read(line: &str, prefix: &mut Prefix) -> Reading {
        let mut fields = Vec::new();
        let (r, complete) = record_with_fields(line, &mut fields, prefix)?;
        let namespace = r.namespace.map(|n| n.into_owned());
        let data = r.data.get().to_string();
        Some((
            r.stream.into_owned(),
            namespace,
            data,
            r.emitted_at,
            complete,
            fields,
        ))
    }

    /// Two lines with one envelope: the second, read after the first, reads as it does alone.
    fn after_first(first: &str, second: &str) -> Result<bool, TestCaseError> {
        let mut prefix = Prefix::default();
        read(first, &mut prefix);
        let known = prefix.matches(second);
        prop_assert_eq!(
            read(second, &mut prefix),
            read(second, &mut Prefix::default())
        );
        Ok(known)
    }

    #[test]
    fn a_line_with_the_last_lines_start_reads_as_it_does_alone() {
        let first = r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{"a":1},"emitted_at":5}}"#;
        let second = r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{"b":"x"},"emitted_at":6}}"#;
        assert!(after_first(first, second).unwrap());
        let mut prefix = Prefix::default();
        read(first, &mut prefix);
        let (stream, namespace, data, at, complete, fields) = read(second, &mut prefix).unwrap();
        assert_eq!((stream.as_str(), namespace.as_deref()), ("s", Some("n")));
        assert_eq!((data.as_str(), at, complete), (r#"{"b":"x"}"#, 6, true));
        assert_eq!(fields, [[2, 3, 5, 8]]);
        // White space before `data` that the first line did not have.
        let spaced = r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data": {"c":2},"emitted_at":7}}"#;
        assert!(after_first(first, spaced).unwrap());
        assert_eq!(read(spaced, &mut prefix).unwrap().2, r#"{"c":2}"#);
        // What follows `data` is read in full: a repeated key or a broken tail is refused.
        for broken in [
            r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{},"stream":"t","emitted_at":6}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{},"emitted_at":6},"type":"STATE"}"#,
            r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{},"emitted_at":6}"#,
            r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{"a":},"emitted_at":6}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{}}}"#,
        ] {
            assert!(after_first(first, broken).unwrap(), "{broken}");
            assert!(read(broken, &mut prefix).is_none(), "{broken}");
        }
        // A `type` after the `record` is not known at `data`: nothing is kept.
        let late = r#"{"record":{"stream":"s","data":{},"emitted_at":1},"type":"RECORD"}"#;
        let mut prefix = Prefix::default();
        assert!(read(late, &mut prefix).is_some());
        assert!(!prefix.matches(late));
    }

    /// A RECORD envelope with `data` somewhere in it: the text before `data`, and after.
    fn envelope() -> impl Strategy<Value = (String, String)> {
        let at = prop_oneof![Just(7i64), any::<i64>()];
        (0..5usize, at, "[a-z]{0,2}").prop_map(|(layout, at, s)| {
            let (before, after) = match layout {
                0 => (
                    format!(
                        r#"{{"type":"RECORD","record":{{"stream":"{s}","namespace":"n","data":"#
                    ),
                    format!(r#","emitted_at":{at}}}}}"#),
                ),
                1 => (
                    format!(
                        r#" {{ "type" : "RECORD", "record" : {{ "emitted_at" : {at}, "data" : "#
                    ),
                    format!(r#" , "meta" : null, "stream" : "{s}", "x" : [1] }} , "y" : {{}} }}"#),
                ),
                2 => (
                    format!(r#"{{"type":"RECORD","record":{{"stream":"{s}","meta":null,"data":"#),
                    format!(r#","namespace":null,"emitted_at":{at},"meta":null}}}}"#),
                ),
                3 => (
                    format!(r#"{{"type":"RECORD","record":{{"stream":"{s}","data":"#),
                    format!(r#","emitted_at":{at}}},"type":"RECORD"}}"#),
                ),
                _ => (
                    format!(r#"{{"type":"LOG","record":{{"stream":"{s}","data":"#),
                    format!(r#","emitted_at":{at}}}}}"#),
                ),
            };
            (before, after)
        })
    }

    /// A `data` value: objects of plain and odd keys, or anything else, sometimes broken.
    fn data() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#"{"id":1,"name":"a \"b\"","tags":["x",null],"n":-1.5e3}"#.to_string()),
            Just(r#"{"k\u0041":true,"o":{"p":[{}]}}"#.to_string()),
            Just("[1,2]".to_string()),
            Just(r#""text""#.to_string()),
            Just(r#"{"a":01}"#.to_string()),
            Just(r#"{"a":1,}"#.to_string()),
            "[ -~]{0,8}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The first `"`, `\` or control character, found sixteen or eight bytes at a time,
        /// is the one a byte-by-byte search finds.
        #[test]
        fn special_finds_the_first_special_byte(
            mut bytes in proptest::collection::vec(0x20u8..=0xff, 0..80),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20],
            put in any::<bool>(),
        ) {
            if put && !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let naive = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(special(&bytes), naive);
        }

        #[test]
        fn reading_after_a_known_start_agrees_with_reading_alone(
            (before, after) in envelope(),
            (other_before, other_after) in envelope(),
            first in data(),
            second in data(),
            same in any::<bool>(),
        ) {
            let first = format!("{before}{first}{after}");
            let second = match same {
                true => format!("{before}{second}{after}"),
                false => format!("{other_before}{second}{other_after}"),
            };
            let known = after_first(&first, &second)?;
            // Every record read keeps its start (`type` comes first in these envelopes).
            let read_first = read(&first, &mut Prefix::default()).is_some();
            prop_assert_eq!(known, read_first && second.starts_with(&before));
        }
    }
}
