//! Row rewrites for pandas options the csv parser has no notion of: a comment in the middle of
//! a line, numbers with a thousands separator or a decimal comma, and `parse_dates` columns
//! written as pandas writes timestamps. Only rows of a dialect with such options pass here.

use csv::ByteRecord;

use crate::config::Dialect;

/// Rewrites `row` in place per the dialect's options.
pub fn row(row: &mut ByteRecord, dialect: &Dialect, header: &[String]) {
    let mut out = ByteRecord::with_capacity(row.as_slice().len(), row.len());
    let mut changed = false;
    for (i, field) in row.iter().enumerate() {
        let (field, stop) = match dialect.comment {
            Some(c) => match field.iter().position(|b| *b == c) {
                Some(at) => (&field[..at], true),
                None => (field, false),
            },
            None => (field, false),
        };
        changed |= stop;
        let date_column = header
            .get(i)
            .is_some_and(|name| dialect.parse_dates.iter().any(|d| d == name));
        if date_column && let Some(t) = timestamp(field) {
            out.push_field(&t);
            changed = true;
        } else if let Some(n) = number(field, dialect.thousands, dialect.decimal) {
            out.push_field(&n);
            changed = true;
        } else {
            out.push_field(field);
        }
        if stop {
            break;
        }
    }
    if changed {
        out.set_position(row.position().cloned());
        *row = out;
    }
}

/// A number spelled with `thousands` separators and a `decimal` point, in plain spelling;
/// `None` when the field is no such number or needs no change.
fn number(field: &[u8], thousands: Option<u8>, decimal: u8) -> Option<Vec<u8>> {
    let special = |b: &u8| Some(*b) == thousands || (*b == decimal && decimal != b'.');
    if !field.iter().any(special) {
        return None;
    }
    let mut out = Vec::with_capacity(field.len());
    let mut digits = 0;
    for (i, b) in field.iter().enumerate() {
        match *b {
            b'0'..=b'9' => {
                digits += 1;
                out.push(*b);
            }
            b if Some(b) == thousands => {
                if digits == 0 {
                    return None;
                }
            }
            b if b == decimal => out.push(b'.'),
            b'+' | b'-' if i == 0 => out.push(*b),
            b'e' | b'E' | b'+' | b'-' if digits > 0 => out.push(*b),
            _ => return None,
        }
    }
    (digits > 0 && crate::values::parse_number(&out).is_some()).then_some(out)
}

/// An ISO 8601 date or date-time as pandas writes a parsed timestamp:
/// `YYYY-MM-DDTHH:MM:SS[.ffffff][±hh:mm]`.
fn timestamp(field: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(field).ok()?.trim();
    if crate::values::is_date(text.as_bytes()) {
        return Some(format!("{text}T00:00:00").into_bytes());
    }
    let with_tz = crate::values::datetime_offset(text.as_bytes())?;
    let text = text.replacen(' ', "T", 1);
    let write = |t: chrono::NaiveDateTime| {
        let micros = t.and_utc().timestamp_subsec_micros();
        if micros == 0 {
            t.format("%Y-%m-%dT%H:%M:%S").to_string()
        } else {
            t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
        }
    };
    if with_tz {
        let t = chrono::DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M%#z")
            .or_else(|_| chrono::DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%#z"))
            .or_else(|_| chrono::DateTime::parse_from_rfc3339(&text))
            .ok()?;
        let offset = t.offset().local_minus_utc();
        let sign = if offset < 0 { '-' } else { '+' };
        let offset = offset.abs();
        Some(
            format!(
                "{}{sign}{:02}:{:02}",
                write(t.naive_local()),
                offset / 3600,
                offset % 3600 / 60
            )
            .into_bytes(),
        )
    } else {
        let t = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M"))
            .ok()?;
        Some(write(t).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Option<Vec<u8>>) -> Option<String> {
        v.map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn numbers_with_separators() {
        assert_eq!(
            text(number(b"1.234,5", Some(b'.'), b',')),
            Some("1234.5".into())
        );
        assert_eq!(text(number(b"-2,0", None, b',')), Some("-2.0".into()));
        assert_eq!(
            text(number(b"1,000,000", Some(b','), b'.')),
            Some("1000000".into())
        );
        assert_eq!(number(b"12", Some(b','), b'.'), None);
        assert_eq!(number(b"a,b", Some(b','), b'.'), None);
    }

    #[test]
    fn timestamps_as_pandas_writes_them() {
        assert_eq!(
            text(timestamp(b"2024-01-02")),
            Some("2024-01-02T00:00:00".into())
        );
        assert_eq!(
            text(timestamp(b"2024-01-02 03:04")),
            Some("2024-01-02T03:04:00".into())
        );
        assert_eq!(
            text(timestamp(b"2024-01-02T03:04:05.5")),
            Some("2024-01-02T03:04:05.500000".into())
        );
        assert_eq!(
            text(timestamp(b"2024-01-02T03:04:05Z")),
            Some("2024-01-02T03:04:05+00:00".into())
        );
        assert_eq!(timestamp(b"soon"), None);
    }
}
