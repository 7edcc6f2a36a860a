//! source-csv (work in progress).
