//! destination-s3: writes records as JSONL, CSV or Parquet files to Amazon S3, an
//! S3-compatible store (MinIO) or a local directory, in the layout of Airbyte's destination-s3.
//! Files are streamed with multipart uploads and completed on each commit, so states are
//! echoed only once their records are stored; overwrite removes older generations only after
//! the sync succeeded.

pub mod config;
pub mod format;
pub mod layout;
mod stream;
pub mod target;
mod upload;
mod writer;

use bytes::Bytes;
use cdk::destination::{Input, load};
use cdk::protocol::ConfiguredAirbyteCatalog;
use cdk::{Destination, Error, Output, Result};

pub use config::S3Config;
use target::{Patience, Target};
pub use writer::loader_options;

pub struct DestinationS3;

#[cdk::async_trait]
impl Destination for DestinationS3 {
    type Config = S3Config;

    /// Writes, lists and deletes `<bucket path>/_airbyte_check_<uuid>/_EXAMPLE`.
    async fn check(&self, config: &S3Config) -> Result<()> {
        let target = Target::new(config, Patience::Check)?;
        let dir = format!(
            "{}/_airbyte_check_{}",
            layout::without_variables(&config.s3_bucket_path),
            uuid::Uuid::new_v4().simple()
        );
        let dir = dir.trim_start_matches('/').to_string();
        let key = format!("{dir}/_EXAMPLE");
        let failed = |what: &str, e: Error| {
            Error::config(format!("{what} {}: {}", target.display, e.message))
        };
        target
            .put(&key, Bytes::from_static(b"{\"data\": 1}"), 0)
            .await
            .map_err(|e| failed("cannot write a test object to", e))?;
        let listed = target.list(&dir).await;
        let deleted = target.delete(&key).await;
        let listed = listed.map_err(|e| failed("cannot list objects in", e))?;
        if !listed.iter().any(|k| *k == target.normalise(&key)) {
            return Err(Error::config(format!(
                "failed to write to S3 bucket {}: the test object '{key}' was not listed",
                target.display
            )));
        }
        deleted.map_err(|e| failed("cannot delete the test object from", e))
    }

    async fn write(
        &self,
        config: &S3Config,
        catalog: &ConfiguredAirbyteCatalog,
        input: Input,
        output: &Output,
    ) -> Result<()> {
        large_allocations_outside_the_heap();
        let target = Target::new(config, Patience::Write)?;
        let mut writer = writer::S3Writer::new(config.clone(), target);
        let modes = self.supported_sync_modes();
        load(
            input,
            catalog,
            &modes,
            &mut writer,
            loader_options(&config.format),
            output,
        )
        .await
    }
}

/// Large buffers (batches, parquet pages, upload parts) come and go all the time. glibc's
/// adaptive mmap threshold moves them into the heap, where they fragment it and memory creeps
/// up with the amount of data; with a fixed threshold, allocations of 1 MiB and more are
/// mapped and unmapped, and peak memory stays flat however many records pass.
fn large_allocations_outside_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before the write allocates
    // its buffers and is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
