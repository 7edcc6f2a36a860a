fn main() -> std::process::ExitCode {
    cdk::entrypoint::run_source(source_csv::SourceCsv)
}
