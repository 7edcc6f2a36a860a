//! `DatetimeBasedCursor`: the window of a read (start from the config or the state, minus the
//! lookback window; end from the config or now), cut into intervals by `step` and
//! `cursor_granularity`, the interval bounds as request options, and the cursor values of
//! records parsed with `cursor_datetime_formats` (then `datetime_format`).

pub mod clamping;
mod count;

use cdk::Result;
use serde_json::Value;

use crate::interpolation::datetime::{
    Dt, PyDuration, format_airbyte, max_dt, parse_airbyte, parse_loose, utc_now,
};
use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Component, Node};
use crate::request_option::RequestOption;

#[derive(Debug)]
pub struct DatetimeCursor {
    pub cursor_field: String,
    datetime_format: String,
    input_formats: Vec<String>,
    start: MinMax,
    end: Option<MinMax>,
    step: Option<PyDuration>,
    granularity: PyDuration,
    lookback: Option<PyDuration>,
    pub start_option: Option<RequestOption>,
    pub end_option: Option<RequestOption>,
    pub field_start: String,
    pub field_end: String,
    pub client_side: bool,
    pub strict: bool,
    /// `global_substream_cursor`: one cursor for all partitions of a partitioned stream.
    pub global_substream: bool,
    /// `clamping`: slice bounds on day, week or month boundaries.
    clamping: Option<clamping::Clamping>,
    /// `is_data_feed`: records come newest first; a page ending before the slice stops the read.
    pub data_feed: bool,
    /// An `IncrementingCountCursor` ([`count`]): values are integers held as epoch seconds.
    pub count: bool,
    /// `allow_catalog_defined_cursor_field`: the configured catalog's cursor field replaces
    /// `cursor_field` ([`Self::use_catalog_field`]), and discover says the cursor is not
    /// source-defined.
    pub catalog_defined: bool,
}

#[derive(Debug)]
struct MinMax {
    datetime: Template,
    format: String,
    min: Option<Template>,
    max: Option<Template>,
}

/// One interval of a read.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub start: Dt,
    pub end: Dt,
    pub start_text: String,
    pub end_text: String,
}

fn duration(c: &mut Component<'_>, b: &Build, key: &str) -> Result<Option<PyDuration>> {
    let Some(t) = c.opt_template(b, key)? else {
        return Ok(None);
    };
    match t.eval_str(&Vars::new())? {
        None => Ok(None),
        Some(s) => PyDuration::parse(&s)
            .map(Some)
            .map_err(|e| c.error(format!("{key}: {e}"))),
    }
}

impl MinMax {
    fn decode(
        c: &mut Component<'_>,
        b: &Build,
        key: &str,
        default_format: &str,
    ) -> Result<Option<Self>> {
        let Some(node) = c.child(key) else {
            return Ok(None);
        };
        if let Value::String(s) = node.value {
            return Ok(Some(MinMax {
                datetime: c.template_of(b, key, s)?,
                format: default_format.to_string(),
                min: None,
                max: None,
            }));
        }
        let mut m = node.component(Some("MinMaxDatetime"))?;
        m.expect(&["MinMaxDatetime"])?;
        let mm = MinMax {
            datetime: m.template(b, "datetime")?,
            format: m
                .opt_str("datetime_format")?
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| default_format.to_string()),
            min: m.opt_template(b, "min_datetime")?,
            max: m.opt_template(b, "max_datetime")?,
        };
        m.finish()?;
        Ok(Some(mm))
    }

    fn parse(&self, text: &str) -> Result<Dt> {
        parse_airbyte(text, &self.format)
            .or_else(|_| parse_loose(text))
            .map_err(|_| {
                cdk::Error::config(format!(
                    "'{text}' (from '{}') does not match the datetime format '{}'",
                    self.datetime.source(),
                    self.format
                ))
            })
    }

    fn eval(&self) -> Result<Option<Dt>> {
        let vars = Vars::new();
        let Some(text) = self.datetime.eval_str(&vars)? else {
            return Ok(None);
        };
        let mut dt = self.parse(&text)?;
        if let Some(min) = &self.min
            && let Some(t) = min.eval_str(&vars)?
        {
            dt = dt.max(self.parse(&t)?);
        }
        if let Some(max) = &self.max
            && let Some(t) = max.eval_str(&vars)?
        {
            dt = dt.min(self.parse(&t)?);
        }
        Ok(Some(dt))
    }
}

impl DatetimeCursor {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("DatetimeBasedCursor"))?;
        c.expect(&["DatetimeBasedCursor", "IncrementingCountCursor"])?;
        if c.type_name == "IncrementingCountCursor" {
            return Self::decode_count(c, b);
        }
        let catalog_defined = c.bool_or("allow_catalog_defined_cursor_field", false)?;
        let global_substream = c.bool_or("global_substream_cursor", false)?;
        let cursor_field = c
            .template(b, "cursor_field")?
            .eval_str(&Vars::new())?
            .ok_or_else(|| c.error("cursor_field evaluated to an empty value"))?;
        let datetime_format = c.str("datetime_format")?;
        let mut input_formats = c
            .string_list("cursor_datetime_formats")?
            .unwrap_or_default();
        if !input_formats.contains(&datetime_format) {
            input_formats.push(datetime_format.clone());
        }
        let start = MinMax::decode(&mut c, b, "start_datetime", &datetime_format)?
            .ok_or_else(|| c.error("the field 'start_datetime' is required"))?;
        let end = MinMax::decode(&mut c, b, "end_datetime", &datetime_format)?;
        let step = duration(&mut c, b, "step")?;
        let granularity = duration(&mut c, b, "cursor_granularity")?;
        if step.is_some() != granularity.is_some() {
            return Err(c.error("step and cursor_granularity must be set together"));
        }
        let lookback = duration(&mut c, b, "lookback_window")?;
        let start_option = c
            .child("start_time_option")
            .map(|n| RequestOption::decode(n, b))
            .transpose()?;
        let end_option = c
            .child("end_time_option")
            .map(|n| RequestOption::decode(n, b))
            .transpose()?;
        let name = |c: &mut Component<'_>, key: &str, default: &str| -> Result<String> {
            Ok(match c.opt_template(b, key)? {
                Some(t) => t
                    .eval_str(&Vars::new())?
                    .unwrap_or_else(|| default.to_string()),
                None => default.to_string(),
            })
        };
        let field_start = name(&mut c, "partition_field_start", "start_time")?;
        let field_end = name(&mut c, "partition_field_end", "end_time")?;
        let clamping = clamping::Clamping::decode(&mut c, b)?;
        let data_feed = c.bool_or("is_data_feed", false)?;
        // A data feed filters the records older than the slice after pagination, as Airbyte.
        let client_side = c.bool_or("is_client_side_incremental", false)? || data_feed;
        let strict = c.bool_or("is_compare_strictly", false)?;
        c.finish()?;
        Ok(Self {
            cursor_field,
            datetime_format,
            input_formats,
            start,
            end,
            step,
            granularity: granularity.unwrap_or_default(),
            lookback,
            start_option,
            end_option,
            field_start,
            field_end,
            client_side,
            strict,
            global_substream,
            clamping,
            data_feed,
            count: false,
            catalog_defined,
        })
    }

    /// With `allow_catalog_defined_cursor_field`, the cursor field the configured catalog
    /// picked for `stream` (a missing, empty or `[""]` one keeps the manifest's).
    pub fn use_catalog_field(&mut self, stream: &str, picked: Option<&Vec<String>>) -> Result<()> {
        let Some(picked) =
            picked.filter(|p| self.catalog_defined && p.first().is_some_and(|f| !f.is_empty()))
        else {
            return Ok(());
        };
        if picked.len() > 1 {
            return Err(cdk::Error::config(format!(
                "The `{stream}` stream does not support nested cursor_field. Please specify only a single cursor_field for the stream in the configured catalog."
            )));
        }
        self.cursor_field = picked[0].clone();
        Ok(())
    }

    /// Whether a data feed's page, ending with `last`, reached records older than `interval`
    /// (Airbyte's `CursorStopCondition`; a record without a readable cursor does not stop).
    pub fn feed_ends(&self, interval: &Interval, last: Option<&Value>) -> bool {
        let Some(dt) = last
            .and_then(|r| r.get(&self.cursor_field))
            .and_then(|v| self.parse_value(v))
        else {
            return false;
        };
        dt < interval.start || (self.strict && dt == interval.start)
    }

    /// `cursor_granularity`, when the manifest sets it (with `step`).
    pub fn granularity(&self) -> Option<&PyDuration> {
        self.step.as_ref().map(|_| &self.granularity)
    }

    /// The format of the interval bounds in requests and of the state.
    pub fn datetime_format(&self) -> &str {
        &self.datetime_format
    }

    pub fn format(&self, dt: &Dt) -> String {
        format_airbyte(dt, &self.datetime_format)
    }

    /// The configured start.
    pub fn start_datetime(&self) -> Result<Dt> {
        self.start
            .eval()?
            .ok_or_else(|| cdk::Error::config("start_datetime evaluated to an empty value"))
    }

    /// The configured end, or now.
    pub fn end_datetime(&self) -> Result<Dt> {
        if self.count {
            return Ok(max_dt());
        }
        match &self.end {
            Some(e) => Ok(e.eval()?.unwrap_or_else(utc_now)),
            None => Ok(utc_now()),
        }
    }

    /// A cursor value of a record or a state: a datetime in one of the cursor's formats.
    pub fn parse_value(&self, v: &Value) -> Option<Dt> {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        self.input_formats
            .iter()
            .find_map(|f| parse_airbyte(&text, f).ok())
    }

    /// Where a read starts: the later of the configured start and the state's cursor.
    pub fn sync_start(&self, start: Dt, state_value: Option<Dt>) -> Dt {
        match state_value {
            Some(s) if s > start => s,
            _ => start,
        }
    }

    /// Whether a partition's first slice, starting at `first`, leaves a gap after `sync_start`:
    /// it starts more than one cursor unit (`cursor_granularity`, else a millisecond) later, as
    /// a slice clamped up to the next period does. airbyte-cdk's state then stays at
    /// `sync_start`: the slices read never join the interval the state stands for.
    pub fn leaves_gap(&self, sync_start: Dt, first: Dt) -> bool {
        let next = match self.granularity.is_zero() {
            true => sync_start.checked_add_signed(chrono::TimeDelta::milliseconds(1)),
            false => Some(self.granularity.add_to(&sync_start)),
        };
        next.is_some_and(|n| first > n)
    }

    /// The intervals from `sync_start` (minus the lookback window) to `end`.
    pub fn intervals(&self, sync_start: Dt, end: Dt) -> Vec<Interval> {
        let mut start = match &self.lookback {
            Some(l) => l.sub_from(&sync_start),
            None => sync_start,
        };
        if let Some(clamping) = self.clamping {
            let granularity = self.step.is_some().then_some(&self.granularity);
            return clamping.intervals(
                start,
                end,
                self.step.as_ref(),
                granularity,
                self.strict,
                |d| self.format(d),
            );
        }
        let mut out = Vec::new();
        let within = |s: &Dt| if self.strict { *s < end } else { *s <= end };
        while within(&start) {
            let next = match &self.step {
                Some(step) if !step.is_zero() => step.add_to(&start),
                _ => max_dt(),
            };
            let slice_end = if next == max_dt() {
                end
            } else {
                self.granularity.sub_from(&next).min(end)
            };
            out.push(Interval {
                start,
                end: slice_end,
                start_text: self.format(&start),
                end_text: self.format(&slice_end),
            });
            if next <= start || next == max_dt() {
                break;
            }
            start = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cursor(extra: Value) -> DatetimeCursor {
        let mut v = json!({
            "type": "DatetimeBasedCursor", "cursor_field": "updated_at",
            "datetime_format": "%Y-%m-%dT%H:%M:%SZ", "start_datetime": "{{ config['start'] }}"
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let b = Build::new(&json!({"start": "2024-01-01T00:00:00Z"}), None, 1);
        DatetimeCursor::decode(Node::root(&v), &b).unwrap()
    }

    fn dt(s: &str) -> Dt {
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn steps_and_granularity() {
        let c = cursor(json!({"step": "P1D", "cursor_granularity": "PT1S"}));
        let start = c.start_datetime().unwrap();
        let iv = c.intervals(start, dt("2024-01-03T12:00:00Z"));
        let texts: Vec<(&str, &str)> = iv
            .iter()
            .map(|i| (i.start_text.as_str(), i.end_text.as_str()))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("2024-01-01T00:00:00Z", "2024-01-01T23:59:59Z"),
                ("2024-01-02T00:00:00Z", "2024-01-02T23:59:59Z"),
                ("2024-01-03T00:00:00Z", "2024-01-03T12:00:00Z"),
            ]
        );
        let one = cursor(json!({})).intervals(start, dt("2024-01-03T12:00:00Z"));
        assert_eq!(one.len(), 1);
        assert!(
            cursor(json!({}))
                .intervals(dt("2025-01-01T00:00:00Z"), dt("2024-01-01T00:00:00Z"))
                .is_empty()
        );
    }

    #[test]
    fn state_and_lookback() {
        let c = cursor(json!({"lookback_window": "P1D", "cursor_datetime_formats": ["%s"]}));
        let start = c.start_datetime().unwrap();
        let state = c.parse_value(&json!("2024-02-01T00:00:00Z"));
        let sync = c.sync_start(start, state);
        assert_eq!(sync, dt("2024-02-01T00:00:00Z"));
        let iv = c.intervals(sync, dt("2024-02-05T00:00:00Z"));
        assert_eq!(iv[0].start_text, "2024-01-31T00:00:00Z");
        assert_eq!(
            c.parse_value(&json!(1706745600)),
            Some(dt("2024-02-01T00:00:00Z"))
        );
        assert_eq!(c.parse_value(&json!("garbage")), None);
    }
}
