//! Integration tests of destination-s3.
