fn main() -> std::process::ExitCode {
    cdk::entrypoint::run_destination(destination_s3::DestinationS3)
}
