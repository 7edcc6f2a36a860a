//! COPY row encoding, in PostgreSQL's text or binary format.

use bytes::{BufMut, Bytes, BytesMut};

use crate::schema::PgType;
use crate::value::{Cell, Decimal, civil_from_days};

/// The COPY format used for loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Binary,
}

impl Format {
    /// The format from `DESTINATION_POSTGRES_COPY_FORMAT` (`text` / `binary`), else the one
    /// measured to be faster.
    pub fn from_env() -> Self {
        match std::env::var("DESTINATION_POSTGRES_COPY_FORMAT").as_deref() {
            Ok("text") => Format::Text,
            Ok("binary") => Format::Binary,
            _ => Format::Binary,
        }
    }

    pub fn sql_option(self) -> &'static str {
        match self {
            Format::Text => "(FORMAT text)",
            Format::Binary => "(FORMAT binary)",
        }
    }
}

const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Rows encoded for one COPY.
#[derive(Debug)]
pub struct Encoder {
    format: Format,
    buf: BytesMut,
    first_in_row: bool,
}

impl Encoder {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            buf: BytesMut::with_capacity(1 << 20),
            first_in_row: true,
        }
    }

    /// Empties the encoder for the cells of one row, to be appended to a row of another
    /// encoder after its first values (see [`append_cells`](Self::append_cells)).
    pub fn start_cells(&mut self) {
        self.buf.clear();
        // Each cell follows another value of the row it goes into.
        self.first_in_row = false;
    }

    /// Appends the cells written to `cells` since its [`start_cells`](Self::start_cells).
    pub fn append_cells(&mut self, cells: &Encoder) {
        self.buf.extend_from_slice(&cells.buf);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What starts a COPY stream.
    pub fn header(format: Format) -> Bytes {
        match format {
            Format::Text => Bytes::new(),
            Format::Binary => {
                let mut b = BytesMut::with_capacity(19);
                b.put_slice(BINARY_SIGNATURE);
                b.put_i32(0);
                b.put_i32(0);
                b.freeze()
            }
        }
    }

    /// What ends a COPY stream.
    pub fn trailer(format: Format) -> Bytes {
        match format {
            Format::Text => Bytes::new(),
            Format::Binary => Bytes::from_static(&[0xff, 0xff]),
        }
    }

    /// The encoded rows so far, leaving the encoder empty.
    pub fn take(&mut self) -> Bytes {
        let rows = self.buf.split().freeze();
        // The next batch is likely as large: room for it at once spares growing (and
        // copying) the buffer step by step.
        self.buf.reserve(rows.len());
        rows
    }

    pub fn row_start(&mut self, columns: usize) {
        self.first_in_row = true;
        if self.format == Format::Binary {
            self.buf.put_i16(columns as i16);
        }
    }

    pub fn row_end(&mut self) {
        if self.format == Format::Text {
            self.buf.put_u8(b'\n');
        }
    }

    fn separator(&mut self) {
        if self.format == Format::Text && !std::mem::take(&mut self.first_in_row) {
            self.buf.put_u8(b'\t');
        }
    }

    pub fn null(&mut self) {
        self.separator();
        match self.format {
            Format::Text => self.buf.put_slice(b"\\N"),
            Format::Binary => self.buf.put_i32(-1),
        }
    }

    pub fn text(&mut self, s: &str) {
        self.separator();
        match self.format {
            Format::Text => escape_into(&mut self.buf, s.as_bytes()),
            Format::Binary => {
                self.buf.put_i32(s.len() as i32);
                self.buf.put_slice(s.as_bytes());
            }
        }
    }

    pub fn json(&mut self, s: &str) {
        self.separator();
        match self.format {
            Format::Text => escape_into(&mut self.buf, s.as_bytes()),
            Format::Binary => {
                self.buf.put_i32(s.len() as i32 + 1);
                self.buf.put_u8(1);
                self.buf.put_slice(s.as_bytes());
            }
        }
    }

    pub fn int(&mut self, v: i64) {
        self.separator();
        match self.format {
            Format::Text => self.buf.put_slice(itoa::Buffer::new().format(v).as_bytes()),
            Format::Binary => {
                self.buf.put_i32(8);
                self.buf.put_i64(v);
            }
        }
    }

    /// A `timestamp` / `timestamptz` value in microseconds since 2000-01-01.
    pub fn timestamp(&mut self, micros: i64, tz: bool) {
        self.separator();
        match self.format {
            Format::Text => {
                let days = micros.div_euclid(86_400_000_000);
                let (y, m, d) = civil_from_days(days);
                write_ymd(&mut self.buf, y, m, d);
                self.buf.put_u8(b' ');
                write_time(&mut self.buf, micros.rem_euclid(86_400_000_000));
                if tz {
                    self.buf.put_slice(b"+00");
                }
                if y <= 0 {
                    self.buf.put_slice(b" BC");
                }
            }
            Format::Binary => {
                self.buf.put_i32(8);
                self.buf.put_i64(micros);
            }
        }
    }

    pub fn cell(&mut self, cell: &Cell<'_>, ty: PgType) {
        match cell {
            Cell::Null => self.null(),
            Cell::Text(s) => self.text(s),
            Cell::Json(s) => self.json(s),
            Cell::Int(v) => self.int(*v),
            Cell::Timestamp(v) => self.timestamp(*v, ty == PgType::TimestampTz),
            Cell::Bool(v) => {
                self.separator();
                match self.format {
                    Format::Text => self.buf.put_u8(if *v { b't' } else { b'f' }),
                    Format::Binary => {
                        self.buf.put_i32(1);
                        self.buf.put_u8(u8::from(*v));
                    }
                }
            }
            Cell::Num(d) => {
                self.separator();
                match self.format {
                    Format::Text => self.buf.put_slice(d.text.as_bytes()),
                    Format::Binary => numeric_binary(&mut self.buf, d),
                }
            }
            Cell::Date(days) => {
                self.separator();
                match self.format {
                    Format::Text => {
                        let (y, m, d) = civil_from_days(i64::from(*days));
                        write_ymd(&mut self.buf, y, m, d);
                        if y <= 0 {
                            self.buf.put_slice(b" BC");
                        }
                    }
                    Format::Binary => {
                        self.buf.put_i32(4);
                        self.buf.put_i32(*days);
                    }
                }
            }
            Cell::Time(micros) => {
                self.separator();
                match self.format {
                    Format::Text => write_time(&mut self.buf, *micros),
                    Format::Binary => {
                        self.buf.put_i32(8);
                        self.buf.put_i64(*micros);
                    }
                }
            }
            Cell::TimeTz(micros, offset) => {
                self.separator();
                match self.format {
                    Format::Text => {
                        write_time(&mut self.buf, *micros);
                        let (sign, abs) = if *offset < 0 {
                            (b'-', -offset)
                        } else {
                            (b'+', *offset)
                        };
                        self.buf.put_u8(sign);
                        two(&mut self.buf, (abs / 3600) as u32);
                        self.buf.put_u8(b':');
                        two(&mut self.buf, (abs / 60 % 60) as u32);
                    }
                    Format::Binary => {
                        self.buf.put_i32(12);
                        self.buf.put_i64(*micros);
                        // The wire format counts seconds west of UTC.
                        self.buf.put_i32(-offset);
                    }
                }
            }
        }
    }
}

/// Text-format escaping: backslash, newline, carriage return and tab.
fn escape_into(buf: &mut BytesMut, s: &[u8]) {
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        let esc: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        buf.put_slice(&s[start..i]);
        buf.put_slice(esc);
        start = i + 1;
    }
    buf.put_slice(&s[start..]);
}

fn two(buf: &mut BytesMut, v: u32) {
    buf.put_u8(b'0' + (v / 10 % 10) as u8);
    buf.put_u8(b'0' + (v % 10) as u8);
}

fn write_ymd(buf: &mut BytesMut, y: i64, m: u32, d: u32) {
    let year = if y <= 0 { 1 - y } else { y };
    let text = itoa::Buffer::new().format(year).to_string();
    for _ in text.len()..4 {
        buf.put_u8(b'0');
    }
    buf.put_slice(text.as_bytes());
    buf.put_u8(b'-');
    two(buf, m);
    buf.put_u8(b'-');
    two(buf, d);
}

fn write_time(buf: &mut BytesMut, micros: i64) {
    let secs = micros / 1_000_000;
    two(buf, (secs / 3600) as u32);
    buf.put_u8(b':');
    two(buf, (secs / 60 % 60) as u32);
    buf.put_u8(b':');
    two(buf, (secs % 60) as u32);
    let frac = micros % 1_000_000;
    if frac != 0 {
        buf.put_u8(b'.');
        let text = itoa::Buffer::new().format(frac + 1_000_000).to_string();
        buf.put_slice(&text.as_bytes()[1..]);
    }
}

/// PostgreSQL's binary `numeric`: base-10000 digits with a weight, sign and display scale.
fn numeric_binary(buf: &mut BytesMut, d: &Decimal<'_>) {
    let point = d.point();
    let digits = d.int.bytes().chain(d.frac.bytes());
    let dscale = d.scale().min(i64::from(u16::MAX >> 2)) as u16;
    // Base-10000 groups: on the stack for the usual lengths, no allocation per value.
    let needed = (d.int.len() + d.frac.len()) / 4 + 2;
    let mut stack = [0i16; 32];
    let mut heap = Vec::new();
    let slots: &mut [i16] = if needed <= stack.len() {
        &mut stack[..needed]
    } else {
        heap.resize(needed, 0);
        &mut heap
    };
    let mut len = 0;
    let mut weight: i64 = 0;
    for (i, c) in digits.enumerate() {
        let v = i16::from(c - b'0');
        if len == 0 && v == 0 {
            continue;
        }
        // Decimal exponent of this digit and its base-10000 group.
        let x = point - 1 - i as i64;
        let group = x.div_euclid(4);
        if len == 0 {
            weight = group;
        }
        let k = (weight - group) as usize;
        len = len.max(k + 1);
        slots[k] += v * 10i16.pow(x.rem_euclid(4) as u32);
    }
    while len > 0 && slots[len - 1] == 0 {
        len -= 1;
    }
    let groups = &slots[..len];
    let sign: u16 = if d.negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i32(8 + 2 * groups.len() as i32);
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight as i16);
    buf.put_u16(sign);
    buf.put_u16(dscale);
    for &g in groups {
        buf.put_i16(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<i16> {
        let d = Decimal::parse(text).unwrap();
        let mut b = BytesMut::new();
        numeric_binary(&mut b, &d);
        b[4..]
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_binary_layout() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(numeric("0"), [0, 0, 0, 0]);
        assert_eq!(numeric("1"), [1, 0, 0, 0, 1]);
        assert_eq!(numeric("12345.678"), [3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(numeric("-0.0001"), [1, -1, 0x4000, 4, 1]);
        assert_eq!(numeric("1e4"), [1, 1, 0, 0, 1]);
        assert_eq!(numeric("1.5e-3"), [1, -1, 0, 4, 15]);
        assert_eq!(numeric("100000000"), [1, 2, 0, 0, 1]);
    }

    #[test]
    fn text_rows_escape_and_separate() {
        let mut e = Encoder::new(Format::Text);
        e.row_start(3);
        e.text("a\tb\\c\n");
        e.null();
        e.timestamp(-1, true);
        e.row_end();
        assert_eq!(
            &e.take()[..],
            b"a\\tb\\\\c\\n\t\\N\t1999-12-31 23:59:59.999999+00\n"
        );
        e.row_start(2);
        e.cell(
            &Cell::Date(crate::value::days_from_civil(-43, 3, 15) as i32),
            PgType::Date,
        );
        e.cell(&Cell::TimeTz(3_600_000_000, -5400), PgType::TimeTz);
        e.row_end();
        assert_eq!(&e.take()[..], b"0044-03-15 BC\t01:00:00-01:30\n");
    }
}
