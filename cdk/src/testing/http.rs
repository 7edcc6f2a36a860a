//! HTTP mock servers for REST and HTTPS-file tests: wiremock, re-exported so connectors share
//! one version. Each `MockServer` runs on its own thread and port.

pub use wiremock::*;
