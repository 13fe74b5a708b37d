//! The `hearken` binary: everything lives in the library; this only hands over the exit code.

/// mimalloc keeps freed pages for reuse; with the system allocator every large tensor of a
/// forward pass is a fresh mmap, and page faults cost ~15 % of encoder time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hearken::cli::run()
}
