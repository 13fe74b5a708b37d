//! The `hearken` binary: everything lives in the library; this only hands over the exit code.

/// mimalloc keeps freed pages for reuse; with the system allocator every large tensor of a
/// forward pass is a fresh mmap, and page faults cost ~15 % of encoder time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keep_freed_memory_a_while();
    hearken::cli::run()
}

/// How long mimalloc keeps freed memory before returning it to the OS. At its default (10 ms)
/// a window's large temporaries went back between windows and the kernel zeroed fresh 2 MB
/// pages for the next one: `clear_page` was 11 % of an offline corpus run. A second keeps them
/// through a busy stretch and still returns them soon after the load stops.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// `mi_option_purge_delay` in `mimalloc.h`, the same in mimalloc v2 and v3.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    /// mimalloc's run-time option setter (linked in with the allocator).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Sets [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` in the environment says otherwise.
fn keep_freed_memory_a_while() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of an integer option, valid at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}
