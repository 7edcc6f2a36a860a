//! components tests (to come).
