//! Deterministic rows: every column is a function of the id, so tests can predict them.

use serde::Serialize;
use serde_json::{Value, json};

pub fn json_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "email": {"type": ["null", "string"]},
            "score": {"type": ["null", "number"]},
            "active": {"type": ["null", "boolean"]},
            "created_at": {"type": ["null", "string"], "format": "date-time",
                           "airbyte_type": "timestamp_with_timezone"}
        }
    })
}

#[derive(Serialize)]
pub struct Row<'a> {
    id: u64,
    name: &'a str,
    email: &'a str,
    score: f64,
    active: bool,
    created_at: &'a str,
}

/// Builds rows in reused buffers (no allocation per row).
#[derive(Default)]
pub struct RowGenerator {
    name: String,
    email: String,
    created_at: String,
}

/// 2024-01-01T00:00:00Z
const BASE_EPOCH: u64 = 1_704_067_200;

impl RowGenerator {
    pub fn row(&mut self, id: u64) -> Row<'_> {
        // itoa and push_str rather than `write!`: the formatting machinery was a third of the
        // time of a generated record.
        let mut id_text = itoa::Buffer::new();
        let digits = id_text.format(id);
        self.name.clear();
        self.name.push_str("user ");
        self.name.push_str(digits);
        self.email.clear();
        self.email.push_str("user");
        self.email.push_str(digits);
        self.email.push_str("@example.com");
        self.created_at.clear();
        format_rfc3339(BASE_EPOCH + id * 61, &mut self.created_at);
        Row {
            id,
            name: &self.name,
            email: &self.email,
            score: (id % 1000) as f64 / 8.0,
            active: !id.is_multiple_of(3),
            created_at: &self.created_at,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (civil-from-days, proleptic Gregorian).
fn format_rfc3339(secs: u64, out: &mut String) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let two = |out: &mut String, n: u64| {
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    two(out, year as u64 / 100);
    two(out, year as u64);
    out.push('-');
    two(out, month as u64);
    out.push('-');
    two(out, day as u64);
    out.push('T');
    two(out, rem / 3600);
    out.push(':');
    two(out, rem % 3600 / 60);
    out.push(':');
    two(out, rem % 60);
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_right() {
        let mut s = String::new();
        format_rfc3339(BASE_EPOCH, &mut s);
        assert_eq!(s, "2024-01-01T00:00:00Z");
        s.clear();
        format_rfc3339(951_782_400, &mut s); // leap day
        assert_eq!(s, "2000-02-29T00:00:00Z");
    }

    #[test]
    fn rows_are_deterministic() {
        let mut g = RowGenerator::default();
        let row = serde_json::to_value(g.row(3)).unwrap();
        assert_eq!(
            row,
            json!({"id": 3, "name": "user 3", "email": "user3@example.com", "score": 0.375,
                   "active": false, "created_at": "2024-01-01T00:03:03Z"})
        );
    }
}
