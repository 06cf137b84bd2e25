//! The `flowtime` binary: everything lives in [`flowtime::cli`].

fn main() -> std::process::ExitCode {
    flowtime::cli::main()
}
