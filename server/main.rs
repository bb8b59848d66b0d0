//! The `cairn` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    cairn::cli::main()
}
