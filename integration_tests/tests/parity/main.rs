//! Parity with Airbyte's declarative engine (airbyte-cdk 7.39.1, pip-installed into a venv the
//! harness makes or reuses): our `source-rest-api` and Airbyte's engine run the same manifests
//! — reads against one local fake API (records, final states, and each resuming from the
//! other's state), and `spec` + `discover` of a corpus of published manifests.
//! The binaries come from the workspace build: run with `cargo test --workspace`.

mod actions;
mod api;
mod async_job;
mod components;
mod components2;
mod components2_api;
mod components_api;
mod corpus;
mod engines;
mod properties_files;
mod properties_files_api;
mod reads;
mod token_quota;
