//! `pagination_reset` and the `RESET_PAGINATION` action: the slice's pagination starts again
//! from the first page when the API says so or when `limits.number_of_records` records were
//! read. With `SPLIT_USING_CURSOR` on an incremental stream the slice then starts at the
//! highest cursor value read so far, and a restart that would not move the start fails the
//! read; otherwise the same slice is read again once, and a second restart fails.

use cdk::{Error, Result};

use super::Context;
use crate::cursor::{DatetimeCursor, Interval};
use crate::interpolation::datetime::Dt;
use crate::manifest::Node;

/// The retriever's `pagination_reset`.
#[derive(Debug, Clone)]
pub struct PaginationReset {
    split_using_cursor: bool,
    limit: Option<u64>,
}

impl PaginationReset {
    pub fn decode(node: Option<Node<'_>>, cx: &Context<'_>) -> Result<Option<Self>> {
        let Some(node) = node else { return Ok(None) };
        let mut c = node.component(Some("PaginationReset"))?;
        c.expect(&["PaginationReset"])?;
        let split_using_cursor = match c.str("action")?.as_str() {
            "SPLIT_USING_CURSOR" => true,
            "RESET" => false,
            other => return Err(c.error(format!("unknown PaginationReset action '{other}'"))),
        };
        let limit = match c.child("limits") {
            None => None,
            Some(n) => {
                let mut l = n.component(Some("PaginationResetLimits"))?;
                l.expect(&["PaginationResetLimits"])?;
                let n = l.opt_i64("number_of_records")?;
                l.finish()?;
                n.map(|n| n.max(0) as u64)
            }
        };
        c.finish()?;
        if cx.record_filter && limit.is_some() {
            return Err(Error::config(format!(
                "stream '{}': PaginationResetLimits are not supported while having record filter",
                cx.stream
            )));
        }
        Ok(Some(Self {
            split_using_cursor,
            limit,
        }))
    }
}

/// What one slice's read has seen, to decide where a restart begins.
#[derive(Debug)]
pub struct Tracker<'a> {
    cursor: Option<&'a DatetimeCursor>,
    limit: Option<u64>,
    records: u64,
    most_recent: Option<Dt>,
    same_slice: u32,
    allowed_same_slice: u32,
}

impl<'a> Tracker<'a> {
    /// `cursor` is the stream's cursor; it is used only with `SPLIT_USING_CURSOR`.
    pub fn new(config: Option<&PaginationReset>, cursor: Option<&'a DatetimeCursor>) -> Self {
        let cursor = cursor.filter(|_| config.is_some_and(|c| c.split_using_cursor));
        Self {
            cursor,
            limit: config.and_then(|c| c.limit),
            records: 0,
            most_recent: None,
            same_slice: 0,
            allowed_same_slice: if cursor.is_some() { 1 } else { 2 },
        }
    }

    /// Whether restarts move the slice's start (the read must see records' cursor values).
    pub fn uses_cursor(&self) -> Option<&'a DatetimeCursor> {
        self.cursor
    }

    /// Counts a page of `count` records whose highest cursor value is `max`.
    pub fn observe(&mut self, count: usize, max: Option<Dt>) {
        self.records += count as u64;
        if let Some(m) = max
            && self.most_recent.is_none_or(|r| m > r)
        {
            self.most_recent = Some(m);
        }
    }

    pub fn reached_limit(&self) -> bool {
        self.limit.is_some_and(|l| self.records >= l)
    }

    /// The window to read from the first page again: from the highest cursor value seen to
    /// the end of `original`, or `previous` again; an error when that makes no progress too
    /// often.
    pub fn restart(
        &mut self,
        previous: Option<&Interval>,
        original: Option<&Interval>,
    ) -> Result<Option<Interval>> {
        let next = match (self.cursor, original) {
            (Some(cursor), Some(o)) => Some(match self.most_recent {
                Some(m) => Interval {
                    start: m,
                    end: o.end,
                    start_text: cursor.format(&m),
                    end_text: o.end_text.clone(),
                },
                None => o.clone(),
            }),
            _ => previous.cloned(),
        };
        let same = match (&next, previous) {
            (Some(n), Some(p)) => n.start_text == p.start_text && n.end_text == p.end_text,
            (None, None) => true,
            _ => false,
        };
        if same {
            self.same_slice += 1;
            if self.same_slice >= self.allowed_same_slice {
                return Err(Error::system(format!(
                    "there were {} attempts with the same slice already while the max allowed is {}",
                    self.same_slice, self.allowed_same_slice
                )));
            }
        } else {
            self.same_slice = 0;
        }
        self.records = 0;
        Ok(next)
    }
}
