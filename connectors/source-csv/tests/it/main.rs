//! Integration tests of source-csv.
