//! source-rest-api: a declarative REST source that runs Airbyte low-code manifests.

pub mod interpolation;
