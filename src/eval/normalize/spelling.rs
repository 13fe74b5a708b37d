//! British to American spelling, word by word, from Whisper's `english.json`.
//!
//! The table (1,739 entries from the tysto.com UK/US list) is committed next to this file verbatim
//! from `whisper-normalizer` 0.1.15 and embedded at compile time, so scoring never depends on
//! files being present at run time and "colour" and "color" always count as the same word.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::pyre::split_words;

/// `english.json`, parsed once per process.
static BRITISH_TO_AMERICAN: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("english.json")).expect("english.json is a string map")
});

/// Whisper's `EnglishSpellingNormalizer`: maps each whitespace-separated word through the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnglishSpellingNormalizer;

impl EnglishSpellingNormalizer {
    /// A normaliser over the embedded table.
    pub fn new() -> Self {
        Self
    }

    /// Rewrites British spellings; like the Python it also collapses and trims whitespace.
    pub fn normalize(&self, s: &str) -> String {
        let mapping = &*BRITISH_TO_AMERICAN;
        let words: Vec<&str> = split_words(s)
            .map(|word| mapping.get(word).map_or(word, String::as_str))
            .collect();
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn british_words_become_american() {
        let spelling = EnglishSpellingNormalizer::new();
        assert_eq!(
            spelling.normalize("the colour of  centre "),
            "the color of center"
        );
    }
}
