//! Whisper's `EnglishNumberNormalizer`: spelled-out numbers, currencies and percentages to digits.
//!
//! This is the step that lets "six times ten equals sixty" and "6 × 10 = 60" score as the same
//! words. It keeps Whisper's three stages: a regex pre-pass ("and a half", splitting "3rd" style
//! suffixes off letters), the word state machine in [`state`], and a regex post-pass that merges
//! dollars and cents and writes "1" back as "one".

mod state;
mod value;
mod vocab;

use regex::Regex;

use super::pyre::{Bounded, SPACE_CLASS, split_words};

/// Converts spelled-out numbers into Arabic numerals the way Whisper's English normaliser does.
///
/// Expects lower-case input with punctuation already blanked (as [`super::EnglishTextNormalizer`]
/// prepares it); it keeps suffixes (`1960s`, `32nd`), moves currency words in front
/// (`twenty dollars` → `$20`) and reads runs of single digits as digit strings (`one oh one` →
/// `101`).
#[derive(Debug)]
pub struct EnglishNumberNormalizer {
    and_a_half: Bounded,
    letter_digit: Regex,
    digit_letter: Regex,
    spaced_suffix: Bounded,
    dollars_and_cents: Bounded,
    only_cents: Bounded,
    one: Bounded,
}

impl Default for EnglishNumberNormalizer {
    fn default() -> Self {
        Self::new()
    }
}

impl EnglishNumberNormalizer {
    /// Compiles the normaliser's patterns.
    pub fn new() -> Self {
        let s = SPACE_CLASS;
        let regex = |pattern: &str| Regex::new(pattern).expect("normaliser patterns are valid");
        Self {
            and_a_half: Bounded::new(&format!("and{s}+a{s}+half"), true, true),
            letter_digit: regex("([a-z])([0-9])"),
            digit_letter: regex("([0-9])([a-z])"),
            spaced_suffix: Bounded::new(&format!("([0-9]){s}+(st|nd|rd|th|s)"), false, true),
            dollars_and_cents: Bounded::new("([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})", false, true),
            only_cents: Bounded::new("[€£$]0.([0-9]{1,2})", false, true),
            one: Bounded::new("1(s?)", true, true),
        }
    }

    /// Normalises the numbers in `s`; words are re-joined with single spaces.
    pub fn normalize(&self, s: &str) -> String {
        let s = self.preprocess(s);
        let words: Vec<&str> = split_words(&s).collect();
        self.postprocess(&state::process_words(&words).join(" "))
    }

    /// "<number> and a half" becomes "<number> point five"; digits part from letters, except
    /// ordinal and plural suffixes.
    fn preprocess(&self, s: &str) -> String {
        let segments = self.and_a_half.split(s);
        let last = segments.len() - 1;
        let mut results = Vec::with_capacity(segments.len() * 2);
        for (i, segment) in segments.into_iter().enumerate() {
            // Python skips blank segments, and with them the "and a half" that followed.
            let Some(last_word) = split_words(segment).next_back() else {
                continue;
            };
            results.push(segment);
            if i != last {
                let word = vocab::lookup(last_word);
                let numeric = vocab::is_decimal_word(word)
                    || matches!(word, Some(vocab::Word::Multiplier(_)));
                results.push(if numeric { "point five" } else { "and a half" });
            }
        }
        let s = results.join(" ");
        let s = self.letter_digit.replace_all(&s, "${1} ${2}");
        let s = self.digit_letter.replace_all(&s, "${1} ${2}");
        self.spaced_suffix
            .replace_all(&s, |c| format!("{}{}", &c[1], &c[2]))
    }

    /// "$2 and ¢7" → "$2.07", "$0.07" → "¢7", and "1(s)" → "one(s)" for readability.
    fn postprocess(&self, s: &str) -> String {
        let s = self
            .dollars_and_cents
            .replace_all(s, |c| match c[3].parse::<u32>() {
                Ok(cents) => format!("{}{}.{cents:02}", &c[1], &c[2]),
                Err(_) => c[0].to_owned(),
            });
        let s = self
            .only_cents
            .replace_all(&s, |c| match c[1].parse::<u32>() {
                Ok(cents) => format!("¢{cents}"),
                Err(_) => c[0].to_owned(),
            });
        self.one.replace_all(&s, |c| format!("one{}", &c[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_numbers_become_digits() {
        let numbers = EnglishNumberNormalizer::new();
        let cases = [
            ("twenty five", "25"),
            ("one hundred and one", "101"),
            ("two thousand and twenty", "2020"),
            ("one oh one", "101"),
            ("twenty dollars and seven cents", "$20.07"),
            ("two and a half", "2.5"),
            ("ten per cent", "10%"),
            ("the twenty first", "the 21st"),
            ("double five", "55"),
            ("one", "one"),
        ];
        for (input, expected) in cases {
            assert_eq!(numbers.normalize(input), expected, "{input}");
        }
    }
}
