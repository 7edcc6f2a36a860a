fn main() -> std::process::ExitCode {
    cdk::entrypoint::run_source({{snake_name}}::{{type_name}})
}
