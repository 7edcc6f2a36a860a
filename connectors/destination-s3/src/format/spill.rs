//! Where a Parquet row group's finished pages wait until the row group is written out: in
//! memory up to a budget shared by all columns of the file, then in an anonymous temp file per
//! column. Parquet needs each column chunk contiguous, so a row group is buffered whole; with
//! this store a 128 MB row group costs the budget in memory, not 128 MB. The budget is shared
//! by every file of the process, so many streams do not multiply it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use parquet::arrow::arrow_writer::{PageKey, PageStore, PageStoreArgs, PageStoreFactory};
use parquet::errors::{ParquetError, Result};

/// Pages kept in memory, across all columns of all files, before they go to disk.
pub const MEMORY_BUDGET: usize = 24 << 20;

/// Bytes of pages in memory in the whole process.
static RESIDENT: LazyLock<Arc<AtomicUsize>> = LazyLock::new(Arc::default);

/// Creates a [`SpillStore`] per column chunk, all sharing one memory budget.
#[derive(Debug, Default)]
pub struct SpillFactory {
    resident: Arc<AtomicUsize>,
    budget: usize,
}

impl SpillFactory {
    /// A factory under the process-wide [`MEMORY_BUDGET`].
    pub fn shared() -> Self {
        Self {
            resident: RESIDENT.clone(),
            budget: MEMORY_BUDGET,
        }
    }

    /// A factory with a budget of its own.
    #[cfg(test)]
    pub fn new(budget: usize) -> Self {
        Self {
            resident: Arc::default(),
            budget,
        }
    }
}

impl PageStoreFactory for SpillFactory {
    fn create(&self, _args: &PageStoreArgs<'_>) -> Result<Box<dyn PageStore>> {
        Ok(Box::new(SpillStore {
            resident: self.resident.clone(),
            budget: self.budget,
            mine: 0,
            file: None,
            end: 0,
            pages: Vec::new(),
        }))
    }
}

enum Page {
    Memory(Bytes),
    Disk { offset: u64, len: usize },
    Taken,
}

pub struct SpillStore {
    resident: Arc<AtomicUsize>,
    budget: usize,
    /// Bytes of this store in memory.
    mine: usize,
    file: Option<File>,
    end: u64,
    pages: Vec<Page>,
}

impl PageStore for SpillStore {
    fn put(&mut self, value: Bytes) -> Result<PageKey> {
        let key = PageKey::new(self.pages.len() as u64);
        let len = value.len();
        if self.resident.load(Ordering::Relaxed) + len <= self.budget {
            self.resident.fetch_add(len, Ordering::Relaxed);
            self.mine += len;
            self.pages.push(Page::Memory(value));
            return Ok(key);
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(tempfile::tempfile().map_err(|e| {
                ParquetError::General(format!("cannot create a temp file for parquet pages: {e}"))
            })?),
        };
        file.write_all_at(&value, self.end)?;
        self.pages.push(Page::Disk {
            offset: self.end,
            len,
        });
        self.end += len as u64;
        Ok(key)
    }

    fn take(&mut self, key: PageKey) -> Result<Bytes> {
        let page = self
            .pages
            .get_mut(key.get() as usize)
            .map(|p| std::mem::replace(p, Page::Taken))
            .ok_or_else(|| ParquetError::General(format!("invalid page key {}", key.get())))?;
        match page {
            Page::Memory(bytes) => {
                self.mine -= bytes.len();
                self.resident.fetch_sub(bytes.len(), Ordering::Relaxed);
                Ok(bytes)
            }
            Page::Disk { offset, len } => {
                let file = self
                    .file
                    .as_ref()
                    .ok_or_else(|| ParquetError::General("spilled page without a file".into()))?;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, offset)?;
                Ok(Bytes::from(buf))
            }
            Page::Taken => Err(ParquetError::General(format!(
                "page {} was already taken",
                key.get()
            ))),
        }
    }

    fn memory_size(&self) -> usize {
        self.mine
    }
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        self.resident.fetch_sub(self.mine, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_beyond_the_budget_go_to_disk_and_come_back() {
        let factory = SpillFactory::new(10);
        let mut a = SpillStore {
            resident: factory.resident.clone(),
            budget: factory.budget,
            mine: 0,
            file: None,
            end: 0,
            pages: Vec::new(),
        };
        let k1 = a.put(Bytes::from_static(b"12345678")).unwrap();
        let k2 = a.put(Bytes::from_static(b"abcdefgh")).unwrap();
        let k3 = a.put(Bytes::from_static(b"xy")).unwrap();
        assert_eq!(a.memory_size(), 10);
        assert!(a.file.is_some(), "the second page must spill");
        assert_eq!(&a.take(k2).unwrap()[..], b"abcdefgh");
        assert_eq!(&a.take(k1).unwrap()[..], b"12345678");
        assert_eq!(&a.take(k3).unwrap()[..], b"xy");
        assert_eq!(factory.resident.load(Ordering::Relaxed), 0);
        assert!(a.take(k1).is_err());
    }

    #[test]
    fn a_parquet_file_written_through_a_tiny_budget_reads_back() {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
        use parquet::arrow::arrow_writer::ArrowWriterOptions;
        use parquet::file::properties::WriterProperties;

        let ids = Arc::new(Int64Array::from_iter_values(0..50_000)) as ArrayRef;
        let names = Arc::new(StringArray::from_iter_values(
            (0..50_000).map(|i| format!("name {i}")),
        )) as ArrayRef;
        let batch = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
        let factory = Arc::new(SpillFactory::new(4096));
        let options = ArrowWriterOptions::new()
            .with_properties(
                WriterProperties::builder()
                    .set_data_page_size_limit(1024)
                    .set_max_row_group_row_count(Some(20_000))
                    .build(),
            )
            .with_page_store_factory(factory.clone());
        let mut out = Vec::new();
        let mut writer =
            ArrowWriter::try_new_with_options(&mut out, batch.schema(), options).unwrap();
        for _ in 0..2 {
            writer.write(&batch).unwrap();
        }
        writer.close().unwrap();
        assert_eq!(factory.resident.load(Ordering::Relaxed), 0);
        let rows: Vec<RecordBatch> = ParquetRecordBatchReader::try_new(Bytes::from(out), 50_000)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r == &batch));
    }
}
