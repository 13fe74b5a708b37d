//! Helpers the crate's unit tests share across layers.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Panics in this test process's server code since it started, counted by a hook that chains
/// to the default one. A bad-input test reads it before and after its cases: a bad input may
/// be refused, never crash a handler (even one whose panic a guard would have caught).
///
/// Panics on test threads themselves (libtest names them by the test's path, `a::b::c`) are
/// failed assertions, not server crashes, and are left out so that one failing test does
/// not fail every other bad-input test running beside it.
pub(crate) fn panics_so_far() -> usize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_test_thread = std::thread::current()
                .name()
                .is_some_and(|name| name.contains("::"));
            if !on_test_thread {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}
