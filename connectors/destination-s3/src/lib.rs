//! destination-s3 (work in progress).
