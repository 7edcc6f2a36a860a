//! `IncrementingCountCursor`: an integer cursor (an id that only grows), read in one slice from
//! the state's value (or `start_value`, default 0) with that value in `start_value_option`; the
//! state is `{"<cursor_field>": <largest value read>}`, a number, as Airbyte writes it.
//!
//! It runs on the datetime cursor's machinery: a count `n` is held as the instant `n` seconds
//! after the epoch (`%s`), so counts up to about 8·10¹² are supported; larger ones are an error.

use cdk::Result;
use serde_json::Value;

use super::{DatetimeCursor, MinMax};
use crate::interpolation::Vars;
use crate::interpolation::datetime::{Dt, PyDuration};
use crate::manifest::{Build, Component};
use crate::request_option::RequestOption;

/// The largest count an instant can hold (chrono's range, in seconds).
const MAX_COUNT: i64 = 8_000_000_000_000;

impl DatetimeCursor {
    /// Decodes an `IncrementingCountCursor` (the component is open).
    pub(super) fn decode_count(mut c: Component<'_>, b: &Build) -> Result<Self> {
        let cursor_field = c
            .template(b, "cursor_field")?
            .eval_str(&Vars::new())?
            .ok_or_else(|| c.error("cursor_field evaluated to an empty value"))?;
        let start_text = match c.get("start_value") {
            None | Some(Value::Null) => "0".to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => c
                .template_of(b, "start_value", &s)?
                .eval_str(&Vars::new())?
                .unwrap_or_else(|| "0".into()),
            Some(other) => {
                return Err(c.error(format!("start_value must be an integer, got {other}")));
            }
        };
        let start: i64 = start_text.trim().parse().map_err(|_| {
            c.error(format!(
                "start_value must be an integer, got '{start_text}'"
            ))
        })?;
        if start.abs() > MAX_COUNT {
            return Err(c.error(format!(
                "start_value {start} is beyond the counts supported (±{MAX_COUNT})"
            )));
        }
        let start_option = c
            .child("start_value_option")
            .map(|n| RequestOption::decode(n, b))
            .transpose()?;
        let catalog_defined = c.bool_or("allow_catalog_defined_cursor_field", false)?;
        let start_template = c.template_of(b, "start_value", &start.to_string())?;
        c.finish()?;
        let format = "%s".to_string();
        Ok(Self {
            cursor_field,
            datetime_format: format.clone(),
            input_formats: vec![format.clone()],
            start: MinMax {
                datetime: start_template,
                format,
                min: None,
                max: None,
            },
            end: None,
            step: None,
            granularity: PyDuration::default(),
            lookback: None,
            start_option,
            end_option: None,
            field_start: "start".into(),
            field_end: "end".into(),
            client_side: false,
            strict: false,
            global_substream: false,
            clamping: None,
            data_feed: false,
            catalog_defined,
            count: true,
        })
    }

    /// A cursor value as the state holds it: the formatted datetime, or the count as a number.
    pub fn state_value(&self, dt: &Dt) -> Value {
        if self.count {
            Value::from(dt.timestamp())
        } else {
            Value::String(self.format(dt))
        }
    }
}
