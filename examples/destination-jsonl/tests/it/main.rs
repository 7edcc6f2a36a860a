//! Integration tests of the JSON-lines destination.
