//! Integration tests of destination-postgres.
