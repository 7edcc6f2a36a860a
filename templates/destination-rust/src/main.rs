fn main() -> std::process::ExitCode {
    cdk::entrypoint::run_destination({{snake_name}}::{{type_name}})
}
