//! `request_window_splitting`: on a `SPLIT_REQUEST_WINDOW` response the slice's window is read
//! again as two halves (in whole `cursor_granularity` units, the first half the smaller when
//! the count is odd), each split again if refused, down to one granularity unit or
//! `min_split_window`, at most 10 splits deep.

use cdk::{Error, Result};
use chrono::TimeDelta;
use serde_json::Value;

use super::Context;
use crate::cursor::{DatetimeCursor, Interval};
use crate::error_handler::Action;
use crate::interpolation::datetime::PyDuration;
use crate::manifest::{Build, Node};

/// How deep a window may be split (airbyte-cdk's safety net).
pub const MAX_SPLIT_DEPTH: u32 = 10;

/// The stream's `request_window_splitting`.
#[derive(Debug, Clone)]
pub struct RequestWindowSplitting {
    failure_message: Option<String>,
    min_split_window: Option<TimeDelta>,
    min_text: Option<String>,
}

/// The smallest step each `datetime_format` directive can show.
const FORMAT_UNITS: [(&str, i64); 11] = [
    ("%epoch_microseconds", 1),
    ("%s_as_float", 1),
    ("%f", 1),
    ("%_ms", 1_000),
    ("%ms", 1_000),
    ("%S", 1_000_000),
    ("%s", 1_000_000),
    ("%M", 60_000_000),
    ("%H", 3_600_000_000),
    ("%I", 3_600_000_000),
    ("%d", 86_400_000_000),
];

impl RequestWindowSplitting {
    /// Reads the block and checks that the stream's cursor can split its window.
    pub fn decode(node: Option<Node<'_>>, b: &Build, cx: &Context<'_>) -> Result<Option<Self>> {
        let name = cx.stream;
        let uses_action = cx.requester.uses_action(Action::SplitRequestWindow);
        let Some(node) = node else {
            if uses_action {
                return Err(Error::config(format!(
                    "stream '{name}' has a response filter with the SPLIT_REQUEST_WINDOW action but \
                     the retriever does not define `request_window_splitting`: add a \
                     `request_window_splitting` block to the retriever"
                )));
            }
            return Ok(None);
        };
        let mut c = node.component(Some("RequestWindowSplitting"))?;
        c.expect(&["RequestWindowSplitting"])?;
        let failure_message = c.opt_str("failure_message")?;
        let min_text = match c.opt_template(b, "min_split_window")? {
            Some(t) => t.eval_str(&crate::interpolation::Vars::new())?,
            None => None,
        };
        c.finish()?;
        if !uses_action {
            tracing::warn!(stream = %name, "the stream defines `request_window_splitting` but no response filter with the SPLIT_REQUEST_WINDOW action; the window will never be split");
        }
        let refuse = |why: String| Err(Error::config(format!("stream '{name}': {why}")));
        let Some(cursor) = cx.cursor.filter(|c| !c.count) else {
            return refuse(format!(
                "`request_window_splitting` requires an incremental cursor that supports window \
                 splitting, found {}: this is only supported for a `DatetimeBasedCursor` with \
                 `cursor_granularity` set",
                if cx.cursor.is_some() {
                    "an IncrementingCountCursor"
                } else {
                    "no cursor"
                }
            ));
        };
        let Some(granularity) = cursor.granularity() else {
            return refuse(
                "`request_window_splitting` requires `cursor_granularity` on the \
                 `DatetimeBasedCursor`: without it there is no smallest window to stop splitting \
                 at, and no way to keep two child windows from overlapping"
                    .into(),
            );
        };
        if cursor.client_side && !cursor.data_feed {
            return refuse(
                "`request_window_splitting` cannot be used together with \
                 `is_client_side_incremental`: the window is filtered client-side rather than sent \
                 to the API, so splitting it would not change the request"
                    .into(),
            );
        }
        if granularity.months == 0 && granularity.delta <= TimeDelta::zero() {
            return refuse(
                "`request_window_splitting` requires a `cursor_granularity` greater than zero"
                    .into(),
            );
        }
        let format = cursor.datetime_format();
        let finest = FORMAT_UNITS
            .iter()
            .filter(|(d, _)| format.contains(d))
            .map(|(_, us)| *us)
            .min();
        if let (Some(unit), 0) = (finest, granularity.months)
            && granularity.delta < TimeDelta::microseconds(unit)
        {
            return refuse(format!(
                "`request_window_splitting` requires `cursor_granularity` to be no finer than what \
                 `datetime_format` '{format}' can represent"
            ));
        }
        let min_split_window = match &min_text {
            None => None,
            Some(t) => match PyDuration::parse(t) {
                Ok(d) if d.months == 0 && d.delta > TimeDelta::zero() => Some(d.delta),
                _ => {
                    return refuse(format!(
                        "`min_split_window` must be a positive duration expressible as a fixed \
                         number of days/hours/minutes/seconds: '{t}' is not"
                    ));
                }
            },
        };
        Ok(Some(Self {
            failure_message,
            min_split_window,
            min_text,
        }))
    }

    /// The two halves of a refused window, or the error that ends the read.
    pub fn children(
        &self,
        stream: &str,
        cursor: &DatetimeCursor,
        window: &Interval,
        depth: u32,
        rejection: Option<&str>,
    ) -> Result<[Interval; 2]> {
        if depth >= MAX_SPLIT_DEPTH {
            return Err(Error::transient(self.failure(
                format!(
                    "stream '{stream}' could not split its request window to a size the API \
                     accepts within {MAX_SPLIT_DEPTH} splits"
                ),
                rejection,
            )));
        }
        match split(cursor, window, self.min_split_window) {
            Some(halves) => {
                tracing::info!(stream = %stream, depth, start = %window.start_text, end = %window.end_text,
                    "the API refused the request window; reading it as two halves");
                Ok(halves)
            }
            None => {
                let note = self
                    .min_text
                    .as_ref()
                    .map(|m| format!(", its configured `min_split_window` ({m})"))
                    .unwrap_or_default();
                Err(Error::transient(self.failure(
                    format!(
                        "the API kept rejecting stream '{stream}''s request window \
                         {}..{} even at the smallest window its cursor allows{note}, or \
                         splitting the window further would not make progress",
                        window.start_text, window.end_text
                    ),
                    rejection,
                )))
            }
        }
    }

    fn failure(&self, message: String, rejection: Option<&str>) -> String {
        let mut out = message;
        if let Some(r) = rejection.filter(|r| !r.is_empty()) {
            out.push_str(&format!("; the API said: {r}"));
        }
        if let Some(extra) = self
            .failure_message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            out.push_str(". ");
            out.push_str(extra);
        }
        out
    }
}

/// A window's two halves as airbyte-cdk's cursor cuts them: its bounds as written in the
/// request, counted in granularity units (both ends included), the first half taking
/// `units / 2` of them. `None` when it cannot be split.
pub fn split(
    cursor: &DatetimeCursor,
    window: &Interval,
    min_split_window: Option<TimeDelta>,
) -> Option<[Interval; 2]> {
    let g = cursor.granularity().filter(|g| g.months == 0)?.delta;
    let start = cursor.parse_value(&Value::String(window.start_text.clone()))?;
    let end = cursor.parse_value(&Value::String(window.end_text.clone()))?;
    if start >= end || g <= TimeDelta::zero() {
        return None;
    }
    let span = end - start;
    if min_split_window.is_some_and(|m| span <= m) {
        return None;
    }
    let units = match (span.num_microseconds(), g.num_microseconds()) {
        (Some(s), Some(u)) => s / u + 1,
        _ => span.num_milliseconds() / g.num_milliseconds().max(1) + 1,
    };
    if units <= 1 {
        return None;
    }
    let first_end = start + g * i32::try_from(units / 2).ok()? - g;
    let second_start = first_end + g;
    if !(start <= first_end && first_end < second_start && second_start <= end) {
        return None;
    }
    let bound = |s, e| Interval {
        start: s,
        end: e,
        start_text: cursor.format(&s),
        end_text: cursor.format(&e),
    };
    Some([bound(start, first_end), bound(second_start, end)])
}
