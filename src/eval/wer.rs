//! Word error rate: a word-level Levenshtein alignment counted as substitutions, deletions and
//! insertions, summable over a corpus.
//!
//! Corpus WER is total errors over total reference words (not a mean of per-clip rates), as jiwer
//! computes it for the peer baselines. The total is the edit distance whatever the alignment; the
//! split into S/D/I depends on how ties are broken, and this backtrace breaks them the way
//! rapidfuzz's `Levenshtein.opcodes` (which jiwer uses) does, so the recorded S/D/I reproduce too.

use std::iter::Sum;
use std::ops::{Add, AddAssign};

use super::normalize::{normalize_basic, normalize_english};

/// Error counts from aligning a hypothesis against a reference, for one clip or summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WerCounts {
    /// Reference words replaced by a different word.
    pub substitutions: usize,
    /// Reference words missing from the hypothesis.
    pub deletions: usize,
    /// Hypothesis words with no reference word.
    pub insertions: usize,
    /// Words in the reference: the denominator.
    pub reference_words: usize,
}

impl WerCounts {
    /// Substitutions + deletions + insertions.
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Reference words the hypothesis got right.
    pub fn hits(&self) -> usize {
        self.reference_words - self.substitutions - self.deletions
    }

    /// Errors per reference word. With no reference words this is the insertion count, as in
    /// jiwer, so output on silence still scores as an error rather than dividing by zero.
    pub fn wer(&self) -> f64 {
        self.errors() as f64 / self.reference_words.max(1) as f64
    }
}

impl Add for WerCounts {
    type Output = Self;

    fn add(mut self, other: Self) -> Self {
        self += other;
        self
    }
}

impl AddAssign for WerCounts {
    fn add_assign(&mut self, other: Self) {
        self.substitutions += other.substitutions;
        self.deletions += other.deletions;
        self.insertions += other.insertions;
        self.reference_words += other.reference_words;
    }
}

impl Sum for WerCounts {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// Aligns two already-normalised texts word by word (words are whitespace-separated).
///
/// Memory is one byte per (reference word × hypothesis word) after their common prefix and suffix
/// are set aside, which is small for anything up to long-form transcripts of a few thousand words.
pub fn word_error_counts(reference: &str, hypothesis: &str) -> WerCounts {
    let reference: Vec<&str> = reference.split_whitespace().collect();
    let hypothesis: Vec<&str> = hypothesis.split_whitespace().collect();
    WerCounts {
        reference_words: reference.len(),
        ..align(&reference, &hypothesis)
    }
}

/// Normalises both sides with Whisper's English normaliser, then aligns them.
pub fn english_wer(reference: &str, hypothesis: &str) -> WerCounts {
    word_error_counts(
        &normalize_english(reference),
        &normalize_english(hypothesis),
    )
}

/// What a transcript in some language is scored by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Word error rate: languages written with spaces between words.
    Wer,
    /// Character error rate, whitespace left out: languages written without spaces between
    /// words (Japanese, Chinese, Thai…) or whose spacing varies between writers (Korean), where
    /// a word count would measure the segmentation instead of the recognition.
    Cer,
}

impl Metric {
    /// The metric Whisper's evaluations use for `language` (an ISO 639-1 code).
    pub fn for_language(language: &str) -> Self {
        match language {
            "ja" | "ko" | "zh" | "yue" | "th" | "lo" | "my" | "km" | "bo" => Self::Cer,
            _ => Self::Wer,
        }
    }

    /// `WER` or `CER`, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wer => "WER",
            Self::Cer => "CER",
        }
    }
}

/// Scores a transcript in `language` the way Whisper's evaluations do: English through the
/// English normaliser, every other language through the basic one, then words or characters
/// by [`Metric::for_language`]. For CER, `reference_words` counts reference characters.
pub fn score(language: &str, reference: &str, hypothesis: &str) -> WerCounts {
    if language == "en" {
        return english_wer(reference, hypothesis);
    }
    let (reference, hypothesis) = (normalize_basic(reference), normalize_basic(hypothesis));
    match Metric::for_language(language) {
        Metric::Wer => word_error_counts(&reference, &hypothesis),
        Metric::Cer => character_error_counts(&reference, &hypothesis),
    }
}

/// Aligns two already-normalised texts character by character, whitespace left out.
pub fn character_error_counts(reference: &str, hypothesis: &str) -> WerCounts {
    let chars = |s: &str| -> Vec<String> {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(String::from)
            .collect()
    };
    let (reference, hypothesis) = (chars(reference), chars(hypothesis));
    let reference: Vec<&str> = reference.iter().map(String::as_str).collect();
    let hypothesis: Vec<&str> = hypothesis.iter().map(String::as_str).collect();
    WerCounts {
        reference_words: reference.len(),
        ..align(&reference, &hypothesis)
    }
}

/// The error counts of rapidfuzz's alignment; `reference_words` is left at zero.
fn align(reference: &[&str], hypothesis: &[&str]) -> WerCounts {
    // rapidfuzz sets the common affixes aside first, which decides where ties land.
    let prefix = reference
        .iter()
        .zip(hypothesis)
        .take_while(|(r, h)| r == h)
        .count();
    let (reference, hypothesis) = (&reference[prefix..], &hypothesis[prefix..]);
    let pairs = reference.iter().rev().zip(hypothesis.iter().rev());
    let suffix = pairs.take_while(|(r, h)| r == h).count();
    let reference = &reference[..reference.len() - suffix];
    let hypothesis = &hypothesis[..hypothesis.len() - suffix];

    let deltas = VerticalDeltas::new(reference, hypothesis);
    let mut counts = WerCounts::default();
    let (mut col, mut row) = (reference.len(), hypothesis.len());
    // Hyyrö's backtrace as rapidfuzz runs it: deletion first, then insertion, then the diagonal.
    while row != 0 && col != 0 {
        if deltas.get(col, row) == 1 {
            counts.deletions += 1;
            col -= 1;
            continue;
        }
        row -= 1;
        if row != 0 && deltas.get(col, row) == -1 {
            counts.insertions += 1;
        } else {
            col -= 1;
            counts.substitutions += usize::from(reference[col] != hypothesis[row]);
        }
    }
    counts.deletions += col;
    counts.insertions += row;
    counts
}

/// `D[i][j] - D[i-1][j]` of the edit-distance matrix (i over the reference, j over the
/// hypothesis, both from 1): the bit-parallel algorithm's vertical deltas, which its backtrace reads.
struct VerticalDeltas {
    columns: usize,
    deltas: Vec<i8>,
}

impl VerticalDeltas {
    fn new(reference: &[&str], hypothesis: &[&str]) -> Self {
        let columns = reference.len();
        let mut deltas = Vec::with_capacity(columns * hypothesis.len());
        let mut previous: Vec<usize> = (0..=columns).collect();
        let mut current = vec![0; columns + 1];
        for (j, word) in hypothesis.iter().enumerate() {
            current[0] = j + 1;
            for i in 1..=columns {
                let diagonal = previous[i - 1] + usize::from(reference[i - 1] != *word);
                current[i] = diagonal.min(previous[i] + 1).min(current[i - 1] + 1);
                // Neighbouring cells differ by at most one, so the ordering is the delta.
                deltas.push(current[i].cmp(&current[i - 1]) as i8);
            }
            std::mem::swap(&mut previous, &mut current);
        }
        Self { columns, deltas }
    }

    /// The delta at reference position `col` and hypothesis position `row`, both at least 1.
    fn get(&self, col: usize, row: usize) -> i8 {
        self.deltas[(row - 1) * self.columns + (col - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: usize, d: usize, i: usize, n: usize) -> WerCounts {
        WerCounts {
            substitutions: s,
            deletions: d,
            insertions: i,
            reference_words: n,
        }
    }

    #[test]
    fn counts_each_kind_of_error() {
        assert_eq!(word_error_counts("a b c", "a b c"), counts(0, 0, 0, 3));
        assert_eq!(word_error_counts("a b c", "a x c"), counts(1, 0, 0, 3));
        assert_eq!(word_error_counts("a b c", "a c"), counts(0, 1, 0, 3));
        assert_eq!(word_error_counts("a b c", "a b b c"), counts(0, 0, 1, 3));
        assert_eq!(word_error_counts("", "a"), counts(0, 0, 1, 0));
        assert_eq!(word_error_counts("a b", ""), counts(0, 2, 0, 2));
    }

    #[test]
    fn sums_over_a_corpus() {
        let total: WerCounts = [counts(1, 0, 0, 4), counts(0, 1, 1, 6)].into_iter().sum();
        assert_eq!(total, counts(1, 1, 1, 10));
        assert!((total.wer() - 0.3).abs() < 1e-12);
        assert_eq!(total.hits(), 8);
        assert_eq!(counts(0, 0, 2, 0).wer(), 2.0);
    }

    #[test]
    fn each_language_is_scored_by_its_metric() {
        // Japanese by characters: one wrong kanji of eleven, punctuation and spaces ignored.
        let ja = score("ja", "客観的実在の判断的知識。", "客観的実在 の判段的知識");
        assert_eq!(ja, counts(1, 0, 0, 11));
        // Korean by characters too, whatever the spacing.
        assert_eq!(
            score("ko", "그는 이리저리", "그는이리 저리"),
            counts(0, 0, 0, 6)
        );
        // French by words, accents kept: "foret" is not "forêt".
        let fr = score("fr", "Les eaux et forêts.", "les eaux et foret");
        assert_eq!(fr, counts(1, 0, 0, 4));
        // English through the English normaliser: "Mr." is "mister".
        assert_eq!(score("en", "Mr. Smith", "mister smith"), counts(0, 0, 0, 2));
        assert_eq!(Metric::for_language("ko").name(), "CER");
        assert_eq!(Metric::for_language("de"), Metric::Wer);
    }
}
