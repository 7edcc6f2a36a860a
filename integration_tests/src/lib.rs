//! Pipelines across connectors on real servers, and the benchmark harness behind `bench`.

pub mod bench;
