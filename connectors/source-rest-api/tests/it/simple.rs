//! simple tests (to come).
