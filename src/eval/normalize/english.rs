//! Whisper's `EnglishTextNormalizer`: the pipeline that both sides of an English WER go through.
//!
//! The steps and their order are Whisper's (paper appendix C): drop bracketed and parenthesised
//! asides and filler words, expand contractions and titles, blank out symbols and accents, then
//! standardise numbers and spelling. Its output is what published Whisper WERs, and our peer
//! baselines, were computed on — including the leading or trailing space it sometimes leaves.

use std::sync::LazyLock;

use regex::Regex;

use super::basic::remove_symbols_and_diacritics;
use super::numbers::EnglishNumberNormalizer;
use super::pyre::{Literals, SPACE_CLASS};
use super::spelling::EnglishSpellingNormalizer;

/// Filler words removed outright (Python's `ignore_patterns`).
const FILLERS: [&str; 6] = ["hmm", "mm", "mhm", "mmm", "uh", "um"];

/// Python's `replacers`, applied in this order, patterns spelled exactly as in the Python.
const REPLACERS: [(&str, &str); 53] = [
    // common contractions
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\blet's\b", "let us"),
    (r"\bain't\b", "aint"),
    (r"\by'all\b", "you all"),
    (r"\bwanna\b", "want to"),
    (r"\bkinda\b", "kind of"),
    (r"\bsorta\b", "sort of"),
    (r"\bdunno\b", "do not know"),
    (r"\bgotta\b", "got to"),
    (r"\bgonna\b", "going to"),
    (r"\bi'ma\b", "i am going to"),
    (r"\bimma\b", "i am going to"),
    (r"\bwoulda\b", "would have"),
    (r"\bcoulda\b", "could have"),
    (r"\bshoulda\b", "should have"),
    (r"\bcause\b", "because"),
    (r"\bma'am\b", "madam"),
    // contractions in titles/prefixes
    (r"\bmr\b", "mister "),
    (r"\bmrs\b", "missus "),
    (r"\bst\b", "saint "),
    (r"\bdr\b", "doctor "),
    (r"\bprof\b", "professor "),
    (r"\bcapt\b", "captain "),
    (r"\bgov\b", "governor "),
    (r"\bald\b", "alderman "),
    (r"\bgen\b", "general "),
    (r"\bsen\b", "senator "),
    (r"\brep\b", "representative "),
    (r"\bpres\b", "president "),
    (r"\brev\b", "reverend "),
    (r"\bhon\b", "honorable "),
    (r"\basst\b", "assistant "),
    (r"\bassoc\b", "associate "),
    (r"\blt\b", "lieutenant "),
    (r"\bcol\b", "colonel "),
    (r"\bjr\b", "junior "),
    (r"\bsr\b", "senior "),
    (r"\besq\b", "esquire "),
    // perfect tenses; ideally any past participle, but that is harder
    (r"'d been\b", " had been"),
    (r"'s been\b", " has been"),
    (r"'d gone\b", " had gone"),
    (r"'s gone\b", " has gone"),
    (r"'d done\b", " had done"), // "'s done" is ambiguous
    (r"'s got\b", " has got"),
    // general contractions
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'s\b", " is"),
    (r"'d\b", " would"),
    (r"'ll\b", " will"),
    (r"'t\b", " not"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
];

/// Whisper's English text normaliser; build once and reuse (it compiles a dozen patterns).
#[derive(Debug)]
pub struct EnglishTextNormalizer {
    brackets: Regex,
    parentheses: Regex,
    fillers: Literals,
    space_before_apostrophe: Regex,
    replacers: Vec<(Literals, &'static str)>,
    digit_comma: Regex,
    period: Regex,
    numbers: EnglishNumberNormalizer,
    spelling: EnglishSpellingNormalizer,
    lone_symbol: Regex,
    lone_percent: Regex,
    spaces: Regex,
}

impl Default for EnglishTextNormalizer {
    fn default() -> Self {
        Self::new()
    }
}

impl EnglishTextNormalizer {
    /// Compiles the normaliser's patterns.
    pub fn new() -> Self {
        let regex = |pattern: &str| Regex::new(pattern).expect("normaliser patterns are valid");
        Self {
            brackets: regex(r"[<\[][^>\]]*[>\]]"),
            parentheses: regex(r"\(([^)]+?)\)"),
            fillers: Literals::new(&FILLERS, true, true),
            space_before_apostrophe: regex(&format!("{SPACE_CLASS}+'")),
            replacers: REPLACERS
                .map(|(p, with)| (Literals::from_pattern(p), with))
                .into(),
            digit_comma: regex(r"(\d),(\d)"),
            period: regex(r"\.([^0-9]|$)"),
            numbers: EnglishNumberNormalizer::new(),
            spelling: EnglishSpellingNormalizer::new(),
            lone_symbol: regex(r"[.$¢€£]([^0-9])"),
            lone_percent: regex(r"([^0-9])%"),
            spaces: regex(&format!("{SPACE_CLASS}+")),
        }
    }

    /// Normalises `s` exactly as Whisper's Python `EnglishTextNormalizer()(s)` would.
    pub fn normalize(&self, s: &str) -> String {
        let s = s.to_lowercase();
        let s = self.brackets.replace_all(&s, "");
        let s = self.parentheses.replace_all(&s, "");
        let s = self.fillers.replace_all(&s, "");
        let mut s = self
            .space_before_apostrophe
            .replace_all(&s, "'")
            .into_owned();
        for (pattern, with) in &self.replacers {
            s = pattern.replace_all(&s, with);
        }
        let s = self.digit_comma.replace_all(&s, "${1}${2}");
        // Periods go unless a digit follows: "3.5" stays a decimal, "end." loses its stop.
        let s = self.period.replace_all(&s, " ${1}");
        let s = remove_symbols_and_diacritics(&s, ".%$¢€£");
        let s = self.numbers.normalize(&s);
        let s = self.spelling.normalize(&s);
        // Currency and percent signs that did not end up attached to a number go too.
        let s = self.lone_symbol.replace_all(&s, " ${1}");
        let s = self.lone_percent.replace_all(&s, "${1} ");
        self.spaces.replace_all(&s, " ").into_owned()
    }
}

/// [`EnglishTextNormalizer::normalize`] with a process-wide normaliser.
pub fn normalize_english(s: &str) -> String {
    static NORMALIZER: LazyLock<EnglishTextNormalizer> = LazyLock::new(EnglishTextNormalizer::new);
    NORMALIZER.normalize(s)
}
