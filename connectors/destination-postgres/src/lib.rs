//! destination-postgres (work in progress).
