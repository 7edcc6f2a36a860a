//! Integration tests of the generator source.
