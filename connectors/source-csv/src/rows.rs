//! Hands a file's CSV rows to the caller while the next ones are parsed on a thread of their
//! own: parsing and typed-JSON writing then share the two cores. Rows keep their order, and an
//! error stops both sides. `SOURCE_CSV_THREADS=1` keeps everything on the calling thread.

use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

use cdk::Result;
use csv::ByteRecord;

use crate::parse::CsvFile;

/// Rows per hand-over: large enough that the channel costs little per row, small enough to
/// keep memory flat.
const BATCH: usize = 256;
/// Batches parsed ahead of the writer.
const AHEAD: usize = 4;

/// Whether rows are parsed on a separate thread.
fn threaded() -> bool {
    match std::env::var("SOURCE_CSV_THREADS") {
        Ok(n) => n.trim() != "1",
        Err(_) => std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
    }
}

/// Calls `each` on every data row of `csv`, in order.
pub fn for_each(
    csv: &mut CsvFile<'_>,
    mut each: impl FnMut(&ByteRecord) -> Result<()>,
) -> Result<()> {
    if !threaded() {
        let mut row = ByteRecord::new();
        while csv.next_row(&mut row)? {
            each(&row)?;
        }
        return Ok(());
    }
    let (full_tx, full_rx) = sync_channel::<Result<Batch>>(AHEAD);
    let (spent_tx, spent_rx) = channel::<Vec<ByteRecord>>();
    std::thread::scope(|scope| {
        scope.spawn(move || parse(csv, &full_tx, &spent_rx));
        for batch in full_rx {
            let batch = batch?;
            for row in &batch.rows[..batch.len] {
                each(row)?;
            }
            // The parser may have stopped already; its rows are then simply dropped.
            let _ = spent_tx.send(batch.rows);
        }
        Ok(())
    })
}

/// Parsed rows; the first `len` are this batch's.
struct Batch {
    rows: Vec<ByteRecord>,
    len: usize,
}

/// Parses batches until the file ends, an error occurs (sent on) or the writer hangs up.
fn parse(
    csv: &mut CsvFile<'_>,
    full: &SyncSender<Result<Batch>>,
    spent: &Receiver<Vec<ByteRecord>>,
) {
    loop {
        let mut rows = spent.try_recv().unwrap_or_default();
        rows.resize_with(BATCH, ByteRecord::new);
        let mut len = 0;
        let mut end = false;
        while len < BATCH {
            match csv.next_row(&mut rows[len]) {
                Ok(true) => len += 1,
                Ok(false) => {
                    end = true;
                    break;
                }
                Err(e) => {
                    // The rows before the bad one are records, as on one thread.
                    if len > 0 && full.send(Ok(Batch { rows, len })).is_err() {
                        return;
                    }
                    let _ = full.send(Err(e));
                    return;
                }
            }
        }
        if (len > 0 && full.send(Ok(Batch { rows, len })).is_err()) || end {
            return;
        }
    }
}
