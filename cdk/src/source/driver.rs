//! The read driver: runs the configured streams of a source, concurrently up to a limit, with
//! statuses, checkpoints and per-stream failure handling.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Semaphore;

use super::{ReadContext, ReadOptions, RecordWriter, Stream};
use crate::output::Output;
use crate::protocol::*;
use crate::{Error, Result};

/// The final state of a stream that never gave one (Airbyte's full-refresh sentinel).
fn no_cursor_state() -> serde_json::Value {
    json!({"__ab_no_cursor_state_message": true})
}

/// Reads every configured stream from `streams`.
///
/// Per stream: STARTED, then RUNNING on the first record, states as the stream checkpoints (at
/// least one), then COMPLETE; or INCOMPLETE and a TRACE ERROR naming the stream when it fails,
/// is missing, or is asked for a sync mode it does not support. Other streams carry on; the
/// result is an error listing the failed streams.
pub async fn read_streams(
    streams: Vec<Arc<dyn Stream>>,
    catalog: &ConfiguredAirbyteCatalog,
    state: &InputState,
    options: &ReadOptions,
    output: &Output,
) -> Result<()> {
    let by_descriptor: HashMap<StreamDescriptor, Arc<dyn Stream>> =
        streams.into_iter().map(|s| (s.descriptor(), s)).collect();
    let limit = Arc::new(Semaphore::new(options.max_concurrent_streams.max(1)));
    let mut failures: Vec<Error> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();

    for configured in &catalog.streams {
        let descriptor = configured.descriptor();
        let (stream, no_cursor) = match plan(&by_descriptor, configured) {
            Ok(planned) => planned,
            Err(error) => {
                let error = error.for_stream(descriptor.clone());
                output.stream_status(&descriptor, AirbyteStreamStatus::Incomplete);
                output.error(&error);
                failures.push(error);
                continue;
            }
        };
        let ctx = ReadContext {
            state: match no_cursor {
                true => None,
                false => state.stream_state(&descriptor).cloned(),
            },
            configured: match no_cursor {
                true => ConfiguredAirbyteStream {
                    sync_mode: SyncMode::FullRefresh,
                    ..configured.clone()
                },
                false => configured.clone(),
            },
        };
        let (output, limit, interval) =
            (output.clone(), limit.clone(), options.checkpoint_interval);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let task = tokio::spawn(read_one(stream, ctx, output.clone(), interval, no_cursor));
            let result = match task.await {
                Ok(result) => result,
                Err(e) => Err(Error::system(format!("stream crashed: {}", panic_text(e)))),
            };
            result.map_err(|e| {
                let e = e.for_stream(descriptor.clone());
                output.stream_status(&descriptor, AirbyteStreamStatus::Incomplete);
                output.error(&e);
                e
            })
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(Error::system(format!("stream task failed: {e}"))),
        }
    }
    output.flush();
    if failures.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = failures
        .iter()
        .filter_map(|e| e.stream.as_ref().map(|s| s.to_string()))
        .collect();
    names.sort();
    let first = &failures[0];
    let mut error = Error::config(format!(
        "During the sync, the following streams did not sync successfully: {}",
        names.join(", ")
    ));
    error.failure_type = first.failure_type;
    Err(error.with_internal(&first.message))
}

/// Finds the stream and checks the catalog asks for something it can do; true when the stream
/// is to be read in full instead of incrementally.
///
/// A stream configured incremental without any cursor (none configured, no default; what
/// PyAirbyte asks of every stream) is read in full, as the Python CDK does, with a warning; its
/// final state is the no-cursor sentinel, so the next sync reads it in full again. A cursor
/// named for a stream that cannot read incrementally is still refused.
fn plan(
    streams: &HashMap<StreamDescriptor, Arc<dyn Stream>>,
    configured: &ConfiguredAirbyteStream,
) -> Result<(Arc<dyn Stream>, bool)> {
    let descriptor = configured.descriptor();
    let stream = streams.get(&descriptor).ok_or_else(|| {
        Error::config(format!("stream '{descriptor}' was not found in the source"))
    })?;
    let modes = stream.supported_sync_modes();
    let no_cursor = configured.sync_mode == SyncMode::Incremental
        && configured.resolved_cursor_field().is_none()
        && modes.contains(&SyncMode::FullRefresh);
    if no_cursor {
        tracing::warn!(
            stream = %descriptor,
            "stream '{descriptor}' is incremental but has no cursor field: reading it in full, \
             and the next sync reads it in full again; to read only new rows, set `cursor_field` \
             for this stream in the configured catalog (a column that only grows, such as \
             updated_at)"
        );
        return Ok((stream.clone(), true));
    }
    if !modes.contains(&configured.sync_mode) {
        return Err(Error::config(format!(
            "stream '{descriptor}' does not support sync mode {:?}",
            configured.sync_mode
        )));
    }
    if configured.sync_mode == SyncMode::Incremental && configured.resolved_cursor_field().is_none()
    {
        return Err(Error::config(format!(
            "stream '{descriptor}' is incremental but no cursor field is configured"
        )));
    }
    Ok((stream.clone(), false))
}

async fn read_one(
    stream: Arc<dyn Stream>,
    ctx: ReadContext,
    output: Output,
    interval: u64,
    no_cursor: bool,
) -> Result<()> {
    let descriptor = stream.descriptor();
    output.stream_status(&descriptor, AirbyteStreamStatus::Started);
    let mut writer = RecordWriter::new(output.clone(), descriptor.clone(), interval);
    if let Some((rows, bytes)) = stream.estimate(&ctx).await {
        writer.estimate(rows, bytes);
    }
    let result = stream.read(&ctx, &mut writer).await;
    if result.is_ok() && no_cursor {
        writer.checkpoint(no_cursor_state());
    } else if result.is_ok() && !writer.has_checkpointed() {
        writer.checkpoint(ctx.state.clone().unwrap_or_else(no_cursor_state));
    }
    writer.flush();
    result?;
    tracing::info!(stream = %descriptor, records = writer.record_count(), "stream complete");
    output.stream_status(&descriptor, AirbyteStreamStatus::Complete);
    Ok(())
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => crate::entrypoint::panic_message(&*payload),
        Err(e) => e.to_string(),
    }
}
