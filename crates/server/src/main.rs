//! The `basalt` binary: all the work is in the library.

fn main() -> std::process::ExitCode {
    basalt::cli::main()
}
