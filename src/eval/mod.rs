//! Scoring transcripts: Whisper's English text normaliser and word error rate.
//!
//! Tests and benchmarks score our transcripts the way the peer baselines in `shared/baselines`
//! were scored: both sides through Whisper's English normaliser ([`normalize`]), then a word-level
//! Levenshtein alignment summed over a corpus ([`wer`]). [`corpus`] reads the dev corpus manifest
//! those references come from.

pub mod corpus;
pub mod normalize;
pub mod wer;

pub use corpus::{CorpusClip, CorpusError, default_corpus_dir, load_manifest};
pub use normalize::{EnglishTextNormalizer, normalize_english};
pub use wer::{WerCounts, english_wer, word_error_counts};
