//! The acceptance suite against the example manifests (added with the examples).
