//! CDC's GLOBAL state: the shared part holds the log position every stream continues from
//! (`{"state_type":"cdc","version":1,"lsn":n,"lsn_text":"X/Y","replication_slot":…}`); each
//! stream's part is its snapshot progress (a ctid state) until its snapshot is complete, then
//! `{"state_type":"cdc","version":1}`.

use cdk::{Error, Result};
use serde_json::{Value, json};

use super::slot::lsn_text;
use crate::state::{CtidStatus, StreamState};

/// The shared part for position `lsn`.
pub fn shared(lsn: u64, slot: &str, publication: &str) -> Value {
    json!({"state_type": "cdc", "version": 1, "lsn": lsn, "lsn_text": lsn_text(lsn),
        "replication_slot": slot, "publication": publication})
}

/// The part of a stream whose snapshot is complete.
pub fn streaming() -> Value {
    json!({"state_type": "cdc", "version": 1})
}

/// The LSN of a shared state: ours, or the offset of Airbyte's Debezium-based connector
/// (`{"state": {"<key>": "{\"lsn\":n,…}"}}`).
pub fn shared_lsn(shared: Option<&Value>) -> Result<Option<u64>> {
    let Some(v) = shared else { return Ok(None) };
    if let Some(lsn) = v.get("lsn") {
        return lsn
            .as_u64()
            .map(Some)
            .ok_or_else(|| Error::config(format!("the CDC state's lsn {lsn} is not a number")));
    }
    let offset = v.get("state").and_then(Value::as_object).and_then(|m| {
        m.values()
            .filter_map(Value::as_str)
            .filter_map(|s| serde_json::from_str::<Value>(s).ok())
            .find_map(|o| o.get("lsn").and_then(Value::as_u64))
    });
    match offset {
        Some(lsn) => Ok(Some(lsn)),
        None if v.as_object().is_some_and(|m| m.is_empty()) => Ok(None),
        None => Err(Error::config(format!(
            "the GLOBAL state's shared part {v} carries no CDC position"
        ))),
    }
}

/// Where a stream stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Its snapshot is to be read, from the start or from a ctid state.
    Snapshot(Option<CtidStatus>),
    Streaming,
}

/// The phase of a stream from its part of the state.
pub fn phase(stream_state: Option<&Value>) -> Result<Phase> {
    if stream_state
        .and_then(|s| s.get("state_type"))
        .and_then(Value::as_str)
        == Some("cdc")
    {
        return Ok(Phase::Streaming);
    }
    Ok(match StreamState::parse(stream_state)? {
        Some(StreamState::Ctid(c)) => Phase::Snapshot(Some(c)),
        _ => Phase::Snapshot(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_positions_parse() {
        let ours = shared(0x1_0000_0010, "s", "p");
        assert_eq!(ours["lsn_text"], "1/10");
        assert_eq!(shared_lsn(Some(&ours)).unwrap(), Some(0x1_0000_0010));
        let debezium = json!({"state": {"[\"db\",{\"server\":\"db\"}]":
            "{\"transaction_id\":null,\"lsn\":23896935,\"txId\":505}"}});
        assert_eq!(shared_lsn(Some(&debezium)).unwrap(), Some(23896935));
        assert!(shared_lsn(Some(&json!({"x": 1}))).is_err());
        assert_eq!(phase(Some(&streaming())).unwrap(), Phase::Streaming);
        assert_eq!(phase(None).unwrap(), Phase::Snapshot(None));
    }
}
