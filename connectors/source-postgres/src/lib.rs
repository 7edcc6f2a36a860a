//! source-postgres (work in progress).
