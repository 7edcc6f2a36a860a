//! The server side of CDC: the checks that say precisely what to fix (with the SQL), the
//! replication slot's position, and moving it.

use std::collections::HashSet;

use cdk::{Error, Result};
use tokio_postgres::Client;

use crate::config::{CdcSettings, PostgresConfig};
use crate::connect::query_error;
use crate::types::{quote_ident, quote_literal};

/// The slot's positions (LSNs as numbers).
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub confirmed_flush: u64,
    pub restart: u64,
    /// The server removed WAL the slot needs (`wal_status = 'lost'`).
    pub lost: bool,
}

/// `X/Y`, the text form of an LSN.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Checks wal_level, the user's REPLICATION attribute, the publication and the slot; returns
/// the slot.
pub async fn preflight(
    client: &Client,
    config: &PostgresConfig,
    cdc: &CdcSettings,
) -> Result<Slot> {
    let q = |e: tokio_postgres::Error| query_error(&e, "cannot check the CDC setup");
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), \
             (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
             EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[&cdc.publication],
        )
        .await
        .map_err(q)?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(Error::config(format!(
            "CDC needs wal_level 'logical', the server has '{wal_level}': run \
             ALTER SYSTEM SET wal_level = logical; and restart the server"
        )));
    }
    if !row.get::<_, Option<bool>>(1).unwrap_or(false) {
        return Err(Error::config(format!(
            "user '{}' lacks the REPLICATION attribute CDC needs: run ALTER USER {} REPLICATION;",
            config.username,
            quote_ident(&config.username)
        )));
    }
    if !row.get::<_, bool>(2) {
        return Err(Error::config(format!(
            "publication '{}' does not exist: run CREATE PUBLICATION {} FOR TABLE <tables>; \
             (or FOR ALL TABLES)",
            cdc.publication,
            quote_ident(&cdc.publication)
        )));
    }
    slot(client, config, cdc).await
}

/// The configured slot, checked to be a pgoutput slot of this database.
pub async fn slot(client: &Client, config: &PostgresConfig, cdc: &CdcSettings) -> Result<Slot> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, slot_type, \
             (coalesce(confirmed_flush_lsn, '0/0') - '0/0')::int8, \
             (coalesce(restart_lsn, '0/0') - '0/0')::int8, \
             coalesce(wal_status = 'lost', false) \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&cdc.replication_slot],
        )
        .await
        .map_err(|e| query_error(&e, "cannot read the replication slot"))?;
    let create = format!(
        "SELECT pg_create_logical_replication_slot({}, 'pgoutput');",
        quote_literal(&cdc.replication_slot)
    );
    let Some(row) = row else {
        return Err(Error::config(format!(
            "replication slot '{}' does not exist: run {create}",
            cdc.replication_slot
        )));
    };
    let plugin: Option<String> = row.get(0);
    let database: Option<String> = row.get(1);
    let slot_type: String = row.get(2);
    if slot_type != "logical" || plugin.as_deref() != Some("pgoutput") {
        return Err(Error::config(format!(
            "replication slot '{}' is a {slot_type} slot of plugin '{}', CDC needs a logical \
             slot of 'pgoutput': drop it (SELECT pg_drop_replication_slot({});) and run {create}",
            cdc.replication_slot,
            plugin.unwrap_or_default(),
            quote_literal(&cdc.replication_slot)
        )));
    }
    if database.as_deref() != Some(config.database.as_str()) {
        return Err(Error::config(format!(
            "replication slot '{}' belongs to database '{}', not '{}'",
            cdc.replication_slot,
            database.unwrap_or_default(),
            config.database
        )));
    }
    Ok(Slot {
        confirmed_flush: row.get::<_, i64>(3) as u64,
        restart: row.get::<_, i64>(4) as u64,
        lost: row.get(5),
    })
}

/// `(schema, table)` of every table in the publication.
pub async fn published(client: &Client, publication: &str) -> Result<HashSet<(String, String)>> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| query_error(&e, "cannot list the publication's tables"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Moves the slot's confirmed position to `lsn` (never backwards: the server refuses that).
pub async fn advance(client: &Client, slot: &str, lsn: u64) -> Result<()> {
    client
        .execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &lsn_text(lsn)],
        )
        .await
        .map_err(|e| query_error(&e, format!("cannot advance replication slot '{slot}'")))?;
    tracing::info!(slot, lsn = %lsn_text(lsn), "replication slot advanced");
    Ok(())
}

/// The end of the WAL the server has written so far (its insert position), once flushed (logical
/// decoding reads flushed WAL only; with `synchronous_commit = off` the flush lags a little).
/// Waits at most `wait`, then settles for the flushed position.
pub async fn caught_up_lsn(client: &Client, wait: std::time::Duration) -> Result<u64> {
    let row = client
        .query_one("SELECT (pg_current_wal_insert_lsn() - '0/0')::int8", &[])
        .await
        .map_err(|e| query_error(&e, "cannot read the server's WAL position"))?;
    let target = row.get::<_, i64>(0) as u64;
    let started = std::time::Instant::now();
    let deadline = started + wait;
    let mut forced = false;
    loop {
        let flushed = flush_lsn(client).await?;
        if flushed >= target {
            return Ok(target);
        }
        if !forced && started.elapsed() >= std::time::Duration::from_secs(1) {
            // The WAL writer leaves a partial page of an open transaction unflushed; a
            // synchronous commit flushes everything before it. Commit a logical message
            // (which pgoutput does not publish).
            forced = true;
            let flush = "BEGIN; SET LOCAL synchronous_commit = on; \
                SELECT pg_logical_emit_message(true, 'source-postgres', 'flush'); COMMIT;";
            if let Err(e) = client.batch_execute(flush).await {
                tracing::debug!(error = %e, "cannot write a logical message; waiting for the WAL writer");
                let _ = client.batch_execute("ROLLBACK").await;
            }
            continue;
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(target = %lsn_text(target), flushed = %lsn_text(flushed),
                "the server has not flushed its WAL up to the read's start position; reading up to what it flushed");
            return Ok(flushed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The server's flushed WAL position: a read decodes the log up to it.
pub async fn flush_lsn(client: &Client) -> Result<u64> {
    let row = client
        .query_one("SELECT (pg_current_wal_flush_lsn() - '0/0')::int8", &[])
        .await
        .map_err(|e| query_error(&e, "cannot read the server's WAL position"))?;
    Ok(row.get::<_, i64>(0) as u64)
}
