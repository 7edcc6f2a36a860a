//! End-to-end pipelines: real connector binaries piped together by the real `cdk sync`, against
//! the kit's throwaway PostgreSQL, in-process S3 and wiremock servers. Each test checks the
//! values that arrive, not just exit codes. The binaries come from the workspace build, so run
//! these with `cargo test --workspace` (or `cargo build --workspace --bins` first).

mod bundled_connection;
mod common;
mod csv_to_postgres;
mod kill_resume;
mod postgres_cdc_dedup;
mod postgres_dedup;
mod postgres_to_s3_parquet;
mod rest_api_to_local_jsonl;
mod rest_api_to_postgres_basic;
mod schedules_and_cancel;
mod seed_connection;
