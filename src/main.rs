//! The `twlab` command. It is all in the library (`twlab::cli`), so that a project can build
//! the same command as a binary of its own.

fn main() -> std::process::ExitCode {
    twlab::cli::main()
}
