//! auth tests (to come).
