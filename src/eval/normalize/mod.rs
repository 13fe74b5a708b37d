//! Whisper's English text normaliser, ported from Python so our WER matches published numbers.
//!
//! A WER is only comparable with Whisper's papers and with our peer baselines (scored with the
//! `whisper-normalizer` 0.1.15 copy of `openai-whisper`'s `normalizers/`) if both transcripts are
//! normalised the same way, so this is a faithful port, quirks included. The entry point is
//! [`EnglishTextNormalizer`] (or [`normalize_english`]); its steps are public for tests and for
//! scoring variants. `tests/eval_normalizer.rs` checks the port against the Python's output.

mod basic;
mod english;
mod numbers;
mod pyre;
mod spelling;

pub use basic::{normalize_basic, remove_symbols_and_diacritics};
pub use english::{EnglishTextNormalizer, normalize_english};
pub use numbers::EnglishNumberNormalizer;
pub use spelling::EnglishSpellingNormalizer;
