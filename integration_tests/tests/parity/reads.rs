//! Reads of the harness's own manifests against one local fake API.
