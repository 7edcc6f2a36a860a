//! The destination-postgres binary.
fn main() -> std::process::ExitCode {
    cdk::entrypoint::run_destination(destination_postgres::DestinationPostgres)
}
