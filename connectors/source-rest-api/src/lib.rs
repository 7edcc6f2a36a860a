//! source-rest-api (work in progress).
