//! Integration tests of postgres-common against real servers: a throwaway PostgreSQL cluster
//! and a throwaway OpenSSH server.

mod tunnel;
mod tunnel_schema;
