//! Integration tests of source-rest-api.
