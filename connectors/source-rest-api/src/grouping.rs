//! `GroupingPartitionRouter`: the partitions of an underlying router in batches of
//! `group_size`, one partition per batch whose values are lists (`{"id": [1, 2, 3]}`), for APIs
//! that take several keys in one request. With `deduplicate` (the default) a key already seen
//! is skipped, as in Airbyte.

use cdk::{Error, Result};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::partition::Partition;

/// The key of a partition: its one value besides `parent_slice`.
fn key_of(p: &Partition) -> Result<&Value> {
    let mut keys = p.values.iter().filter(|(k, _)| *k != "parent_slice");
    match (keys.next(), keys.next()) {
        (Some((_, v)), None) => Ok(v),
        _ => Err(Error::config(format!(
            "GroupingPartitionRouter expects a single partition key-value pair, got {}",
            Value::Object(p.values.clone())
        ))),
    }
}

/// One partition of a batch: each key with the list of the batch's values.
fn grouped(batch: &[Partition]) -> Partition {
    let mut values = Map::new();
    if let Some(first) = batch.first() {
        for key in first.values.keys() {
            let list = batch
                .iter()
                .map(|p| p.values.get(key).cloned().unwrap_or(Value::Null))
                .collect();
            values.insert(key.clone(), Value::Array(list));
        }
    }
    let mut extra_fields = Map::new();
    let mut extra_keys: Vec<&String> = batch.iter().flat_map(|p| p.extra_fields.keys()).collect();
    extra_keys.sort();
    extra_keys.dedup();
    for key in extra_keys {
        let list = batch
            .iter()
            .map(|p| p.extra_fields.get(key).cloned().unwrap_or(Value::Null))
            .collect();
        extra_fields.insert(key.clone(), Value::Array(list));
    }
    Partition {
        values,
        injections: Vec::new(),
        extra_fields,
    }
}

/// Groups the partitions `inner` produces and sends the groups to `tx`.
pub async fn group(
    mut inner: mpsc::Receiver<Result<Partition>>,
    size: usize,
    deduplicate: bool,
    tx: &mpsc::Sender<Result<Partition>>,
) -> Result<()> {
    let mut batch = Vec::with_capacity(size);
    let mut seen: Vec<Value> = Vec::new();
    while let Some(p) = inner.recv().await {
        let p = p?;
        let key = key_of(&p)?.clone();
        if deduplicate {
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
        }
        batch.push(p);
        if batch.len() == size {
            if tx.send(Ok(grouped(&batch))).await.is_err() {
                return Ok(());
            }
            batch.clear();
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(grouped(&batch))).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn part(id: i64) -> Partition {
        let mut p = Partition::default();
        p.values.insert("id".into(), json!(id));
        p.values.insert("parent_slice".into(), json!({}));
        p.extra_fields
            .insert("name".into(), json!(format!("n{id}")));
        p
    }

    #[tokio::test]
    async fn batches_deduplicated_keys() {
        let (itx, irx) = mpsc::channel(8);
        for id in [1, 2, 1, 3] {
            itx.send(Ok(part(id))).await.unwrap();
        }
        drop(itx);
        let (tx, mut rx) = mpsc::channel(8);
        group(irx, 2, true, &tx).await.unwrap();
        drop(tx);
        let mut out = Vec::new();
        while let Some(p) = rx.recv().await {
            let p = p.unwrap();
            out.push((Value::Object(p.values), Value::Object(p.extra_fields)));
        }
        assert_eq!(
            out,
            vec![
                (
                    json!({"id": [1, 2], "parent_slice": [{}, {}]}),
                    json!({"name": ["n1", "n2"]})
                ),
                (
                    json!({"id": [3], "parent_slice": [{}]}),
                    json!({"name": ["n3"]})
                ),
            ]
        );
    }

    #[tokio::test]
    async fn two_keys_are_an_error() {
        let (itx, irx) = mpsc::channel(1);
        let mut p = part(1);
        p.values.insert("other".into(), json!(2));
        itx.send(Ok(p)).await.unwrap();
        drop(itx);
        let (tx, _rx) = mpsc::channel(1);
        let e = group(irx, 2, true, &tx).await.unwrap_err();
        assert!(
            e.message.contains("single partition key-value pair"),
            "{}",
            e.message
        );
    }
}
