//! substreams tests (to come).
