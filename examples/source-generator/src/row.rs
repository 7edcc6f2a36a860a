//! Deterministic rows: every column is a function of the id, so tests can predict them.

use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write;

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
        self.name.clear();
        let _ = write!(self.name, "user {id}");
        self.email.clear();
        let _ = write!(self.email, "user{id}@example.com");
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
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
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
