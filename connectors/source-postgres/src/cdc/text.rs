//! Text-format values (what pgoutput sends) → the JSON a full refresh writes for the same
//! column: the session runs with `DateStyle ISO`, `TimeZone UTC` and `extra_float_digits 3`
//! (see `connect.rs`), so only temporal values need reshaping to RFC 3339.

use crate::types::Kind;
use crate::values::{ValueError, write_str};

type Res = Result<(), ValueError>;

/// Writes the JSON of one non-null text value of `kind`.
pub fn write_text_json(kind: &Kind, t: &str, out: &mut Vec<u8>) -> Res {
    match kind {
        Kind::Bool => out.extend_from_slice(if t == "t" { b"true" } else { b"false" }),
        Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Oid => number(t, out)?,
        // Through the binary path's formatter, so both paths write the same digits.
        Kind::Float4 | Kind::Float8 => {
            let v: f64 = t.parse().map_err(|_| ValueError::Malformed("float"))?;
            if !v.is_finite() {
                return Err(ValueError::NotRepresentable);
            }
            let mut b = ryu::Buffer::new();
            let text = match kind {
                Kind::Float4 => b.format_finite(v as f32),
                _ => b.format_finite(v),
            };
            out.extend_from_slice(text.as_bytes());
        }
        Kind::Numeric { .. } => {
            if matches!(t, "NaN" | "Infinity" | "-Infinity") {
                return Err(ValueError::NotRepresentable);
            }
            // money arrives with its symbols (`$1,234.50`): keep the number.
            let digits: String = t
                .chars()
                .filter(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+'))
                .collect();
            let negative = t.starts_with('(') && t.ends_with(')');
            if negative {
                out.push(b'-');
            }
            number(&digits, out)?;
        }
        Kind::Text | Kind::Jsonb | Kind::Uuid | Kind::Inet => write_str(t.as_bytes(), out),
        Kind::Bytea => {
            let hex = t
                .strip_prefix("\\x")
                .ok_or(ValueError::Malformed("bytea"))?;
            let bytes = decode_hex(hex).ok_or(ValueError::Malformed("bytea"))?;
            crate::values::write_json(&Kind::Bytea, &bytes, out)?;
        }
        Kind::Date => {
            if t.contains("infinity") {
                return Err(ValueError::NotRepresentable);
            }
            write_str(t.as_bytes(), out);
        }
        Kind::Time => quoted(out, |o| time(t, o)),
        Kind::TimeTz => quoted(out, |o| timetz(t, o)),
        Kind::Timestamp | Kind::TimestampTz => {
            if t.contains("infinity") {
                return Err(ValueError::NotRepresentable);
            }
            let (body, bc) = match t.strip_suffix(" BC") {
                Some(b) => (b, true),
                None => (t, false),
            };
            let (date, rest) = body
                .split_once(' ')
                .ok_or(ValueError::Malformed("timestamp"))?;
            out.push(b'"');
            out.extend_from_slice(date.as_bytes());
            out.push(b'T');
            if *kind == Kind::TimestampTz {
                timetz(rest, out);
            } else {
                time(rest, out);
            }
            if bc {
                out.extend_from_slice(b" BC");
            }
            out.push(b'"');
        }
        Kind::Array(elem) => array(elem, t, out)?,
    }
    Ok(())
}

/// An hstore's text (`"k"=>"v", "n"=>NULL`) as the JSON text `hstore::json` gives
/// (`{"k": "v", "n": null}`), which a full refresh reads.
pub fn hstore_json(t: &str) -> Option<String> {
    let mut out = String::from("{");
    let mut chars = t.chars().peekable();
    let quoted = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        if chars.next()? != '"' {
            return None;
        }
        let mut v = String::new();
        loop {
            match chars.next()? {
                '\\' => v.push(chars.next()?),
                '"' => return Some(v),
                c => v.push(c),
            }
        }
    };
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
    };
    skip_spaces(&mut chars);
    while chars.peek().is_some() {
        let key = quoted(&mut chars)?;
        if chars.next()? != '=' || chars.next()? != '>' {
            return None;
        }
        if out.len() > 1 {
            out.push_str(", ");
        }
        out.push_str(&serde_json::to_string(&key).ok()?);
        out.push_str(": ");
        if chars.peek() == Some(&'"') {
            out.push_str(&serde_json::to_string(&quoted(&mut chars)?).ok()?);
        } else {
            let word: String = chars.by_ref().take(4).collect();
            if word != "NULL" {
                return None;
            }
            out.push_str("null");
        }
        skip_spaces(&mut chars);
    }
    out.push('}');
    Some(out)
}

fn number(t: &str, out: &mut Vec<u8>) -> Res {
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-+.eE".contains(&b))
    {
        return Err(ValueError::Malformed("number"));
    }
    out.extend_from_slice(t.as_bytes());
    Ok(())
}

fn quoted(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    f(out);
    out.push(b'"');
}

/// `HH:MM:SS[.f]` → `HH:MM:SS.ffffff`.
fn time(t: &str, out: &mut Vec<u8>) {
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    out.extend_from_slice(hms.as_bytes());
    out.push(b'.');
    let frac = &frac[..frac.len().min(6)];
    out.extend_from_slice(frac.as_bytes());
    out.extend(std::iter::repeat_n(b'0', 6 - frac.len()));
}

/// `HH:MM:SS[.f]±HH[:MM[:SS]]` → `HH:MM:SS.ffffff` then `Z` or `±HH:MM[:SS]`.
fn timetz(t: &str, out: &mut Vec<u8>) {
    let at = t.rfind(['+', '-']).unwrap_or(t.len());
    let (clock, zone) = t.split_at(at);
    time(clock, out);
    let offset = zone.get(1..).unwrap_or("");
    if offset.split(':').all(|p| p.bytes().all(|b| b == b'0')) {
        out.push(b'Z');
        return;
    }
    out.extend_from_slice(&zone.as_bytes()[..1]);
    let mut parts = offset.split(':');
    out.extend_from_slice(parts.next().unwrap_or("00").as_bytes());
    out.push(b':');
    out.extend_from_slice(parts.next().unwrap_or("00").as_bytes());
    if let Some(s) = parts.next().filter(|s| *s != "00") {
        out.push(b':');
        out.extend_from_slice(s.as_bytes());
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let b = hex.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A text array `{a,"b c",NULL,{1,2}}` as a JSON array (nested for more dimensions).
fn array(elem: &Kind, t: &str, out: &mut Vec<u8>) -> Res {
    // A lower bound decoration like `[0:1]={1,2}` goes first.
    let body = match t.find("={") {
        Some(at) if t.starts_with('[') => &t[at + 1..],
        _ => t,
    };
    let mut chars = body.char_indices().peekable();
    let mut partly = false;
    parse_level(elem, body, &mut chars, out, &mut partly)?;
    if partly {
        return Err(ValueError::PartlyNulled);
    }
    Ok(())
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

fn parse_level(
    elem: &Kind,
    s: &str,
    chars: &mut Chars<'_>,
    out: &mut Vec<u8>,
    partly: &mut bool,
) -> Res {
    let bad = ValueError::Malformed("array");
    if chars.next().map(|c| c.1) != Some('{') {
        return Err(bad);
    }
    out.push(b'[');
    let mut first = true;
    loop {
        match chars.peek().map(|c| c.1) {
            Some('}') => {
                chars.next();
                out.push(b']');
                return Ok(());
            }
            Some(',') => {
                chars.next();
                continue;
            }
            None => return Err(bad),
            _ => {}
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if chars.peek().map(|c| c.1) == Some('{') {
            parse_level(elem, s, chars, out, partly)?;
            continue;
        }
        let (value, was_quoted) = element(s, chars)?;
        if !was_quoted && value == "NULL" {
            out.extend_from_slice(b"null");
            continue;
        }
        let mark = out.len();
        match write_text_json(elem, &value, out) {
            Ok(()) => {}
            Err(ValueError::NotRepresentable) | Err(ValueError::PartlyNulled) => {
                out.truncate(mark);
                out.extend_from_slice(b"null");
                *partly = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One element: quoted (with backslash escapes) or bare up to `,` or `}`.
fn element(s: &str, chars: &mut Chars<'_>) -> Result<(String, bool), ValueError> {
    let mut v = String::new();
    if chars.peek().map(|c| c.1) == Some('"') {
        chars.next();
        loop {
            match chars.next().map(|c| c.1) {
                Some('\\') => v.push(chars.next().ok_or(ValueError::Malformed("array"))?.1),
                Some('"') => return Ok((v, true)),
                Some(c) => v.push(c),
                None => return Err(ValueError::Malformed("array")),
            }
        }
    }
    let start = chars.peek().map(|c| c.0).unwrap_or(s.len());
    let mut end = start;
    while let Some(&(i, c)) = chars.peek() {
        if c == ',' || c == '}' {
            break;
        }
        end = i + c.len_utf8();
        chars.next();
    }
    v.push_str(s[start..end].trim());
    Ok((v, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(kind: Kind, t: &str) -> String {
        let mut out = Vec::new();
        write_text_json(&kind, t, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn temporal_values_match_the_binary_path() {
        assert_eq!(j(Kind::Time, "12:00:01.5"), "\"12:00:01.500000\"");
        assert_eq!(j(Kind::TimeTz, "12:00:01+00"), "\"12:00:01.000000Z\"");
        assert_eq!(
            j(Kind::TimeTz, "12:00:01-05:30"),
            "\"12:00:01.000000-05:30\""
        );
        assert_eq!(
            j(Kind::TimestampTz, "2024-01-02 03:04:05.123+00"),
            "\"2024-01-02T03:04:05.123000Z\""
        );
        assert_eq!(
            j(Kind::Timestamp, "0044-03-15 12:00:00 BC"),
            "\"0044-03-15T12:00:00.000000 BC\""
        );
    }

    #[test]
    fn arrays_bytea_and_numbers() {
        assert_eq!(
            hstore_json(r#""k"=>"v", "q\"x"=>NULL"#).unwrap(),
            r#"{"k": "v", "q\"x": null}"#
        );
        assert_eq!(hstore_json("").unwrap(), "{}");
        assert_eq!(j(Kind::Float8, "-0"), "-0.0");
        let ints = Kind::Array(Box::new(Kind::Int4));
        assert_eq!(j(ints.clone(), "{1,NULL,3}"), "[1,null,3]");
        assert_eq!(j(ints, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
        let texts = Kind::Array(Box::new(Kind::Text));
        assert_eq!(
            j(texts, r#"{a,"b,c","NULL","q\"x"}"#),
            r#"["a","b,c","NULL","q\"x"]"#
        );
        assert_eq!(j(Kind::Bytea, "\\x0102"), "\"AQI=\"");
        assert_eq!(j(Kind::Numeric { integer: false }, "$1,234.50"), "1234.50");
        let mut out = Vec::new();
        assert_eq!(
            write_text_json(&Kind::Float8, "NaN", &mut out),
            Err(ValueError::NotRepresentable)
        );
    }
}
