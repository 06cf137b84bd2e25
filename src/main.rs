//! The `flowtime` binary: everything lives in [`flowtime::cli`].

/// mimalloc returns memory freed on any thread to the system (glibc's per-thread arenas kept it:
/// a long-running server's RSS grew by megabytes with a flat live heap; ARCHITECTURE.md,
/// "Decisions").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flowtime::cli::main()
}
