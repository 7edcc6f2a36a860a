//! Testing support: run connector binaries and inspect their messages; with the `testing`
//! feature, throwaway PostgreSQL, S3 and HTTP servers.
