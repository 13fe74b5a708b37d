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

/// A WAV header and data: `format` 1 (PCM) or 3 (float), mono, at `rate` (which the header
/// may claim absurd), with the data size `declared` (default: the real size).
pub(crate) fn wav_with(
    format: u16,
    bits: u16,
    rate: u32,
    data: &[u8],
    declared: Option<u32>,
) -> Vec<u8> {
    let size = declared.unwrap_or(data.len() as u32);
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&36u32.wrapping_add(size).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate.wrapping_mul(u32::from(bits) / 8)).to_le_bytes());
    out.extend_from_slice(&(bits / 8).to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// Float samples as FLOAT32_LE bytes.
pub(crate) fn f32le_bytes(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}
