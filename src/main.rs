fn main() -> std::process::ExitCode {
    camview::cli::main()
}
