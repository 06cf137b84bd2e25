//! The `flowtime` binary: everything lives in [`flowtime::cli`].

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    flowtime::cli::main()
}

/// glibc's malloc gives each thread that allocates concurrently an arena of its own and keeps
/// memory freed there for that arena: a long-running server's RSS grew by 2.8 MiB over 10,000
/// variant cycles with a flat live heap. One arena (as `MALLOC_ARENA_MAX=1`) returns it; measured
/// against mimalloc in ARCHITECTURE.md, "Decisions". Set before any other thread exists.
#[cfg_attr(
    all(target_os = "linux", target_env = "gnu"),
    expect(unsafe_code, reason = "mallopt is glibc's C API: one call, no pointers")
)]
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; no other thread is running yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
