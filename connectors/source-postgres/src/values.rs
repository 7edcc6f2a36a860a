//! Binary values → JSON text, written straight into the record buffer: numbers exact (numeric
//! keeps every digit), temporal values in Airbyte's formats (RFC 3339, UTC for timestamptz,
//! " BC" for dates before year 1), bytea as base64. NaN and infinities cannot be JSON: they
//! become null and the caller records a `meta.changes` entry.

use postgres_common::civil_from_days;

use crate::types::Kind;

/// Why a value could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// NaN or an infinity: written as `null`.
    NotRepresentable,
    /// An array was written with some elements (NaN, infinities) as `null`.
    PartlyNulled,
    /// The bytes are not a valid binary value of the type (a bug or a protocol mismatch).
    Malformed(&'static str),
}

type Res = Result<(), ValueError>;

/// Days from 1970-01-01 to 2000-01-01 (Postgres' epoch for dates and timestamps).
const PG_EPOCH_DAYS: i64 = 10_957;
const USECS_PER_DAY: i64 = 86_400_000_000;

/// Writes the JSON text of one non-null value of `kind`.
pub fn write_json(kind: &Kind, b: &[u8], out: &mut Vec<u8>) -> Res {
    match kind {
        Kind::Bool => {
            let v = *b.first().ok_or(ValueError::Malformed("bool"))?;
            out.extend_from_slice(if v != 0 { b"true" } else { b"false" });
        }
        Kind::Int2 => write_int(i16::from_be_bytes(fixed(b, "int2")?) as i64, out),
        Kind::Int4 => write_int(i32::from_be_bytes(fixed(b, "int4")?) as i64, out),
        Kind::Int8 => write_int(i64::from_be_bytes(fixed(b, "int8")?), out),
        Kind::Oid => write_int(u32::from_be_bytes(fixed(b, "oid")?) as i64, out),
        Kind::Float4 => {
            let v = f32::from_be_bytes(fixed(b, "float4")?);
            if !v.is_finite() {
                return Err(ValueError::NotRepresentable);
            }
            out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
        }
        Kind::Float8 => {
            let v = f64::from_be_bytes(fixed(b, "float8")?);
            if !v.is_finite() {
                return Err(ValueError::NotRepresentable);
            }
            out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
        }
        Kind::Numeric { .. } => write_numeric(b, out)?,
        Kind::Text => write_str(b, out),
        Kind::Jsonb => match b.split_first() {
            Some((1, text)) => write_str(text, out),
            _ => return Err(ValueError::Malformed("jsonb version")),
        },
        Kind::Bytea => {
            out.push(b'"');
            base64(b, out);
            out.push(b'"');
        }
        Kind::Uuid => {
            let u: [u8; 16] = fixed(b, "uuid")?;
            out.push(b'"');
            for (i, byte) in u.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push(b'-');
                }
                out.push(HEX[(byte >> 4) as usize]);
                out.push(HEX[(byte & 15) as usize]);
            }
            out.push(b'"');
        }
        Kind::Inet => write_inet(b, out)?,
        Kind::Date => {
            let days = i32::from_be_bytes(fixed(b, "date")?);
            if days == i32::MAX || days == i32::MIN {
                return Err(ValueError::NotRepresentable);
            }
            out.push(b'"');
            let bc = write_date(days as i64, out);
            if bc {
                out.extend_from_slice(b" BC");
            }
            out.push(b'"');
        }
        Kind::Time => {
            out.push(b'"');
            write_time(i64::from_be_bytes(fixed(b, "time")?), out);
            out.push(b'"');
        }
        Kind::TimeTz => {
            if b.len() != 12 {
                return Err(ValueError::Malformed("timetz"));
            }
            let micros = i64::from_be_bytes(fixed(&b[..8], "timetz")?);
            // Postgres stores the zone as seconds west of UTC.
            let offset = -(i32::from_be_bytes(fixed(&b[8..], "timetz")?) as i64);
            out.push(b'"');
            write_time(micros, out);
            write_offset(offset, out);
            out.push(b'"');
        }
        Kind::Timestamp | Kind::TimestampTz => {
            let micros = i64::from_be_bytes(fixed(b, "timestamp")?);
            if micros == i64::MAX || micros == i64::MIN {
                return Err(ValueError::NotRepresentable);
            }
            let days = micros.div_euclid(USECS_PER_DAY);
            let time = micros.rem_euclid(USECS_PER_DAY);
            out.push(b'"');
            let bc = write_date(days, out);
            out.push(b'T');
            write_time(time, out);
            if *kind == Kind::TimestampTz {
                out.push(b'Z');
            }
            if bc {
                out.extend_from_slice(b" BC");
            }
            out.push(b'"');
        }
        Kind::Array(elem) => write_array(elem, b, out)?,
    }
    Ok(())
}

fn fixed<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], ValueError> {
    b.try_into().map_err(|_| ValueError::Malformed(what))
}

fn write_int(v: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes `b` (text from the server) as a JSON string. Invalid UTF-8 (a SQL_ASCII database)
/// is replaced rather than passed on.
pub fn write_str(b: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(b) {
        Ok(s) => cdk::json::write_str(out, s),
        Err(_) => cdk::json::write_str(out, &String::from_utf8_lossy(b)),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Numeric's binary form (base-10000 digits, weight, sign, display scale) as decimal text
/// with exactly `dscale` fraction digits, as `numeric_out` prints it.
fn write_numeric(b: &[u8], out: &mut Vec<u8>) -> Res {
    if b.len() < 8 {
        return Err(ValueError::Malformed("numeric"));
    }
    let ndigits = u16::from_be_bytes([b[0], b[1]]) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]) as i64;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]) as i64;
    if matches!(sign, NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF) {
        return Err(ValueError::NotRepresentable);
    }
    if b.len() != 8 + 2 * ndigits {
        return Err(ValueError::Malformed("numeric digits"));
    }
    let digit = |i: i64| -> u16 {
        if i < 0 || i as usize >= ndigits {
            0
        } else {
            let at = 8 + 2 * i as usize;
            u16::from_be_bytes([b[at], b[at + 1]])
        }
    };
    if sign == NUMERIC_NEG {
        out.push(b'-');
    }
    if weight < 0 {
        out.push(b'0');
    } else {
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format(digit(0)).as_bytes());
        for i in 1..=weight {
            let d = digit(i);
            out.extend_from_slice(&four_digits(d));
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let mut written = 0;
        let mut i = weight + 1;
        while written < dscale {
            let d = four_digits(digit(i));
            let take = (dscale - written).min(4) as usize;
            out.extend_from_slice(&d[..take]);
            written += take as i64;
            i += 1;
        }
    }
    Ok(())
}

fn four_digits(d: u16) -> [u8; 4] {
    [
        b'0' + (d / 1000 % 10) as u8,
        b'0' + (d / 100 % 10) as u8,
        b'0' + (d / 10 % 10) as u8,
        b'0' + (d % 10) as u8,
    ]
}

/// Writes `YYYY-MM-DD` for days since 2000-01-01; returns true for a BC date (written with
/// its BC year: Postgres year 0 is 1 BC).
fn write_date(days: i64, out: &mut Vec<u8>) -> bool {
    let (y, m, d) = civil_from_days(days + PG_EPOCH_DAYS);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    if year < 10_000 {
        out.extend_from_slice(&four_digits(year as u16));
    } else {
        write_int(year, out);
    }
    out.push(b'-');
    out.extend_from_slice(&four_digits(m as u16)[2..]);
    out.push(b'-');
    out.extend_from_slice(&four_digits(d as u16)[2..]);
    bc
}

/// `HH:MM:SS.ffffff` for microseconds since midnight (24:00:00 is valid in Postgres).
fn write_time(micros: i64, out: &mut Vec<u8>) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    out.extend_from_slice(&four_digits((secs / 3600) as u16)[2..]);
    out.push(b':');
    out.extend_from_slice(&four_digits((secs / 60 % 60) as u16)[2..]);
    out.push(b':');
    out.extend_from_slice(&four_digits((secs % 60) as u16)[2..]);
    out.push(b'.');
    out.extend_from_slice(&four_digits((frac / 100) as u16)[..]);
    out.extend_from_slice(&four_digits((frac % 100) as u16)[2..]);
}

/// `Z` or `+HH:MM` (`+HH:MM:SS` for the rare offsets with seconds).
fn write_offset(offset_secs: i64, out: &mut Vec<u8>) {
    if offset_secs == 0 {
        out.push(b'Z');
        return;
    }
    out.push(if offset_secs < 0 { b'-' } else { b'+' });
    let a = offset_secs.abs();
    out.extend_from_slice(&four_digits((a / 3600) as u16)[2..]);
    out.push(b':');
    out.extend_from_slice(&four_digits((a / 60 % 60) as u16)[2..]);
    if a % 60 != 0 {
        out.push(b':');
        out.extend_from_slice(&four_digits((a % 60) as u16)[2..]);
    }
}

/// inet/cidr binary form (family, prefix bits, is_cidr, length, address) as `inet_out`
/// prints it: the prefix is shown for cidr, and for inet when it is not the full width.
fn write_inet(b: &[u8], out: &mut Vec<u8>) -> Res {
    let (family, bits, is_cidr, addr) = match b {
        [f, bits, c, n, addr @ ..] if addr.len() == *n as usize => (*f, *bits, *c != 0, addr),
        _ => return Err(ValueError::Malformed("inet")),
    };
    out.push(b'"');
    let full = match (family, addr.len()) {
        (2, 4) => {
            let ip = std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            out.extend_from_slice(ip.to_string().as_bytes());
            32
        }
        (3, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(addr);
            out.extend_from_slice(std::net::Ipv6Addr::from(a).to_string().as_bytes());
            128
        }
        _ => return Err(ValueError::Malformed("inet family")),
    };
    if is_cidr || bits != full {
        out.push(b'/');
        write_int(bits as i64, out);
    }
    out.push(b'"');
    Ok(())
}

fn base64(b: &[u8], out: &mut Vec<u8>) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut chunks = b.chunks_exact(3);
    for c in &mut chunks {
        let n = (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32;
        out.extend_from_slice(&[
            A[(n >> 18) as usize & 63],
            A[(n >> 12) as usize & 63],
            A[(n >> 6) as usize & 63],
            A[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = (a as u32) << 16;
            out.extend_from_slice(&[A[(n >> 18) as usize & 63], A[(n >> 12) as usize & 63]]);
            out.extend_from_slice(b"==");
        }
        [a, b] => {
            let n = (a as u32) << 16 | (b as u32) << 8;
            out.extend_from_slice(&[
                A[(n >> 18) as usize & 63],
                A[(n >> 12) as usize & 63],
                A[(n >> 6) as usize & 63],
            ]);
            out.push(b'=');
        }
        _ => {}
    }
}

/// An array's binary form: dimensions, then elements (NaN elements become null too, without
/// failing the whole array).
fn write_array(elem: &Kind, b: &[u8], out: &mut Vec<u8>) -> Res {
    let int = |at: usize| -> Result<i32, ValueError> {
        b.get(at..at + 4)
            .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or(ValueError::Malformed("array header"))
    };
    let ndim = int(0)?;
    if ndim == 0 {
        out.extend_from_slice(b"[]");
        return Ok(());
    }
    if !(1..=6).contains(&ndim) {
        return Err(ValueError::Malformed("array dimensions"));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for d in 0..ndim as usize {
        dims.push(int(12 + 8 * d)?.max(0) as usize);
    }
    let mut pos = 12 + 8 * ndim as usize;
    let mut lossy = false;
    write_dim(elem, b, &mut pos, &dims, out, &mut lossy)?;
    if pos != b.len() {
        return Err(ValueError::Malformed("array length"));
    }
    if lossy {
        return Err(ValueError::PartlyNulled);
    }
    Ok(())
}

fn write_dim(
    elem: &Kind,
    b: &[u8],
    pos: &mut usize,
    dims: &[usize],
    out: &mut Vec<u8>,
    lossy: &mut bool,
) -> Res {
    out.push(b'[');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(b',');
        }
        if dims.len() > 1 {
            write_dim(elem, b, pos, &dims[1..], out, lossy)?;
            continue;
        }
        let len = b
            .get(*pos..*pos + 4)
            .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or(ValueError::Malformed("array element"))?;
        *pos += 4;
        if len < 0 {
            out.extend_from_slice(b"null");
            continue;
        }
        let end = *pos + len as usize;
        let value = b
            .get(*pos..end)
            .ok_or(ValueError::Malformed("array element"))?;
        *pos = end;
        let mark = out.len();
        match write_json(elem, value, out) {
            Ok(()) => {}
            Err(ValueError::NotRepresentable | ValueError::PartlyNulled) => {
                out.truncate(mark);
                out.extend_from_slice(b"null");
                *lossy = true;
            }
            Err(e) => return Err(e),
        }
    }
    out.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(kind: Kind, b: &[u8]) -> String {
        let mut out = Vec::new();
        write_json(&kind, b, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [ndigits, weight as u16, sign, dscale] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_keep_every_digit() {
        let n = Kind::Numeric { integer: false };
        // 12345678901234567890.000000001: weight 4, groups 1234 5678 9012 3456 7890 . 0000 0000 1000
        let b = numeric(8, 4, 0, 9, &[1234, 5678, 9012, 3456, 7890, 0, 0, 1000]);
        assert_eq!(json(n.clone(), &b), "12345678901234567890.000000001");
        assert_eq!(
            json(n.clone(), &numeric(1, -2, 0x4000, 6, &[1200])),
            "-0.000012"
        );
        assert_eq!(json(n.clone(), &numeric(0, 0, 0, 2, &[])), "0.00");
        assert_eq!(json(n.clone(), &numeric(1, 1, 0, 0, &[5])), "50000");
        let mut out = Vec::new();
        assert_eq!(
            write_json(&n, &numeric(0, 0, NUMERIC_NAN, 0, &[]), &mut out),
            Err(ValueError::NotRepresentable)
        );
    }

    #[test]
    fn temporal_formats() {
        assert_eq!(json(Kind::Date, &0i32.to_be_bytes()), "\"2000-01-01\"");
        // 0044-03-15 BC is year -43 in astronomical numbering.
        let days = -(PG_EPOCH_DAYS + 719_468) + days_from_civil(-43, 3, 15);
        assert_eq!(
            json(Kind::Date, &(days as i32).to_be_bytes()),
            "\"0044-03-15 BC\""
        );
        let ts = 86_400_000_000i64 + 3_723_000_004;
        assert_eq!(
            json(Kind::TimestampTz, &ts.to_be_bytes()),
            "\"2000-01-02T01:02:03.000004Z\""
        );
        assert_eq!(
            json(Kind::Timestamp, &(-1i64).to_be_bytes()),
            "\"1999-12-31T23:59:59.999999\""
        );
        let mut tz = 3_600_000_000i64.to_be_bytes().to_vec();
        tz.extend_from_slice(&(-19_800i32).to_be_bytes());
        assert_eq!(json(Kind::TimeTz, &tz), "\"01:00:00.000000+05:30\"");
    }

    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe
    }

    #[test]
    fn strings_bytes_and_arrays() {
        assert_eq!(
            json(Kind::Text, "a\"b\\\n\u{1}é".as_bytes()),
            r#""a\"b\\\n\u0001é""#
        );
        assert_eq!(json(Kind::Bytea, b"hello"), "\"aGVsbG8=\"");
        assert_eq!(json(Kind::Bytea, b""), "\"\"");
        let mut arr = Vec::new();
        for v in [1i32, 0, 23, 2, 1] {
            arr.extend_from_slice(&v.to_be_bytes()); // ndim 1, no nulls flag, oid 23, dim 2, lbound 1
        }
        arr.extend_from_slice(&4i32.to_be_bytes());
        arr.extend_from_slice(&7i32.to_be_bytes());
        arr.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(json(Kind::Array(Box::new(Kind::Int4)), &arr), "[7,null]");
    }
}
