//! Integration tests of source-postgres.
