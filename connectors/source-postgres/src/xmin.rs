//! Xmin incremental (Airbyte's "Detect Changes with Xmin System Column"): rows whose `xmin`
//! (the transaction that last wrote them) is at or after the state's, read again each time
//! they are updated. The state is Airbyte's `{"version":2,"state_type":"xmin",
//! "num_wraparound":…,"xmin_xid_value":…,"xmin_raw_value":…}`: the 64-bit transaction id
//! (epoch << 32 | xid) of the read's snapshot `xmin`, so a wraparound of the 32-bit `xmin`
//! column is seen and handled.

use cdk::{RecordWriter, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connect::query_error;
use crate::read::{RowFormat, RowSink, TableReader};
use crate::state::{CtidStatus, StreamState};

/// Airbyte's `XminStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XminStatus {
    pub version: u32,
    pub state_type: String,
    pub num_wraparound: i64,
    pub xmin_xid_value: i64,
    pub xmin_raw_value: i64,
}

impl XminStatus {
    /// The status of a 64-bit transaction id.
    pub fn from_raw(raw: i64) -> Self {
        Self {
            version: 2,
            state_type: "xmin".into(),
            num_wraparound: raw >> 32,
            xmin_xid_value: raw & 0xffff_ffff,
            xmin_raw_value: raw,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The condition on `xmin` selecting rows written from transaction `prev` on, up to the
/// snapshot's `xmax` (raw 64-bit ids); `None` when more than one wraparound passed (every row
/// is read again).
pub fn filter(prev: &XminStatus, xmax_raw: i64) -> Option<String> {
    let col = "xmin::text::int8";
    let end = XminStatus::from_raw(xmax_raw);
    if end.num_wraparound == prev.num_wraparound {
        Some(format!("{col} >= {}", prev.xmin_xid_value))
    } else if end.num_wraparound == prev.num_wraparound + 1 {
        Some(format!(
            "({col} >= {} OR {col} < {})",
            prev.xmin_xid_value, end.xmin_xid_value
        ))
    } else {
        None
    }
}

/// The snapshot's xmin and xmax as 64-bit transaction ids.
async fn snapshot_bounds(reader: &TableReader<'_>) -> Result<(i64, i64)> {
    let row = reader
        .client
        .query_one(
            "SELECT txid_snapshot_xmin(txid_current_snapshot()), \
             txid_snapshot_xmax(txid_current_snapshot())",
            &[],
        )
        .await
        .map_err(|e| query_error(&e, "cannot read the transaction snapshot"))?;
    Ok((row.get(0), row.get(1)))
}

/// Reads a stream in Xmin mode: the initial load (resumable, in ctid chunks) when there is no
/// xmin state yet, else the rows written since the state's transaction.
pub async fn read(
    reader: &TableReader<'_>,
    state: Option<StreamState>,
    out: &mut RecordWriter,
) -> Result<()> {
    let (xmin, xmax) = snapshot_bounds(reader).await?;
    let current = XminStatus::from_raw(xmin);
    let (prev, resume): (Option<XminStatus>, Option<CtidStatus>) = match state {
        Some(StreamState::Xmin(x)) => (Some(x), None),
        Some(StreamState::Ctid(c)) => (None, Some(c)),
        _ => (None, None),
    };
    let Some(prev) = prev else {
        // The load's final state switches the stream to Xmin; a resumed load keeps the
        // status it started with (rows changed meanwhile are read again after it).
        let inc = resume
            .as_ref()
            .and_then(|c| c.incremental_state.clone())
            .filter(|v| v.get("state_type").and_then(Value::as_str) == Some("xmin"))
            .unwrap_or_else(|| current.to_value());
        let format = RowFormat::new(reader.table, 1);
        return reader.ctid_load(resume, Some(inc), out, format).await;
    };
    let table = reader.table.sql_name();
    let mut query = format!("SELECT {} FROM {table}", reader.select_list());
    match filter(&prev, xmax) {
        Some(f) => query.push_str(&format!(" WHERE {f}")),
        None => tracing::warn!(stream = %table,
            "more than one transaction id wraparound since the state: reading every row again"),
    }
    reader.read_query(&query, out as &mut dyn RowSink).await?;
    out.checkpoint(current.to_value());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraparound_widens_the_filter() {
        let prev = XminStatus::from_raw(4_000_000_000);
        assert_eq!(prev.num_wraparound, 0);
        assert_eq!(
            filter(&prev, 4_100_000_000).unwrap(),
            "xmin::text::int8 >= 4000000000"
        );
        let wrapped = (1i64 << 32) + 500;
        assert_eq!(
            filter(&prev, wrapped).unwrap(),
            "(xmin::text::int8 >= 4000000000 OR xmin::text::int8 < 500)"
        );
        assert_eq!(filter(&prev, (2i64 << 32) + 1), None);
        let s = XminStatus::from_raw(wrapped);
        assert_eq!((s.num_wraparound, s.xmin_xid_value), (1, 500));
    }
}
