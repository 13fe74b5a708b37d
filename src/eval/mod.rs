//! Scoring transcripts: Whisper's text normalisers and word (or character) error rate.
//!
//! Tests and benchmarks score our transcripts the way the peer baselines in `shared/baselines`
//! were scored: both sides through Whisper's English normaliser ([`normalize`]; its basic one
//! for other languages), then a word-level Levenshtein alignment summed over a corpus
//! ([`wer`]; characters for languages written without spaces, [`Metric`]). [`corpus`] reads the dev corpus manifest
//! those references come from.

pub mod corpus;
pub mod normalize;
pub mod wer;

pub use corpus::{CorpusClip, CorpusError, default_corpus_dir, load_manifest};
pub use normalize::{EnglishTextNormalizer, normalize_basic, normalize_english};
pub use wer::{Metric, WerCounts, character_error_counts, english_wer, score, word_error_counts};
