//! The `intervene` binary: the studio window, or a job when a subcommand is given.

fn main() -> std::process::ExitCode {
    intervene::bench::tune_allocator();
    intervene::cli::main()
}
