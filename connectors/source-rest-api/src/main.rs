//! The source-rest-api binary.
fn main() -> std::process::ExitCode {
    cdk::entrypoint::run_source(source_rest_api::SourceRestApi::new())
}
