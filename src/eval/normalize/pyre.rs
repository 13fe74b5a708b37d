//! Python `re` and `str` semantics that the normaliser's patterns depend on and `regex` lacks.
//!
//! Python's `\s` and `str.split()` also treat the separators U+001C..U+001F as whitespace, and
//! Python's `\w` (hence `\b`) means "letter, number or underscore": `²` is a word character and a
//! combining mark is not — the opposite of Unicode's `\w` that the `regex` crate implements. Each
//! Python pattern with `\b` is therefore compiled without it, and the boundary is checked here with
//! Python's definition, so that odd input splits words exactly where the reference does.

use regex::{Captures, Regex};
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Python's `\s` as a `regex` character class.
pub(super) const SPACE_CLASS: &str = r"[\s\x1C-\x1F]";

/// Python's `str.isspace()`, which is also what its `\s` matches.
pub(super) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` without arguments: runs of whitespace separate, ends are trimmed.
pub(super) fn split_words(s: &str) -> impl DoubleEndedIterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty())
}

/// Python's `\w` for `str` patterns: `str.isalnum()` or `_`.
fn is_word(c: char) -> bool {
    let group = c.general_category_group();
    c == '_'
        || matches!(
            group,
            GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number
        )
}

/// Python's `\b` at byte offset `at` of `s`.
fn is_boundary(s: &str, at: usize) -> bool {
    let before = s[..at].chars().next_back().is_some_and(is_word);
    let after = s[at..].chars().next().is_some_and(is_word);
    before != after
}

/// The byte offset just after the character that starts at `at`.
fn next_char(s: &str, at: usize) -> usize {
    at + s[at..].chars().next().map_or(1, char::len_utf8)
}

/// A Python literal pattern such as `\b(hmm|mm|mhm)\b` or `n't\b`: alternatives tried in order at
/// each position, the first whose boundaries hold wins (as Python's backtracking would).
#[derive(Debug)]
pub(super) struct Literals {
    alternatives: Vec<&'static str>,
    lead: bool,
    trail: bool,
}

impl Literals {
    /// Alternatives with a `\b` required before (`lead`) and/or after (`trail`) them.
    pub(super) fn new(alternatives: &[&'static str], lead: bool, trail: bool) -> Self {
        Self {
            alternatives: alternatives.to_vec(),
            lead,
            trail,
        }
    }

    /// Parses one of Whisper's replacer keys, e.g. `\bwon't\b` or `'s been\b`.
    pub(super) fn from_pattern(pattern: &'static str) -> Self {
        let (lead, rest) = pattern
            .strip_prefix(r"\b")
            .map_or((false, pattern), |r| (true, r));
        let (trail, body) = rest
            .strip_suffix(r"\b")
            .map_or((false, rest), |b| (true, b));
        Self::new(&[body], lead, trail)
    }

    /// Python's `re.sub(pattern, with, s)`.
    pub(super) fn replace_all(&self, s: &str, with: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let (mut copied, mut at) = (0, 0);
        while at < s.len() {
            match self.match_len(s, at) {
                Some(len) => {
                    out.push_str(&s[copied..at]);
                    out.push_str(with);
                    at += len;
                    copied = at;
                }
                None => at = next_char(s, at),
            }
        }
        out.push_str(&s[copied..]);
        out
    }

    fn match_len(&self, s: &str, at: usize) -> Option<usize> {
        if self.lead && !is_boundary(s, at) {
            return None;
        }
        let fits = |alt: &&str| {
            s[at..].starts_with(alt) && (!self.trail || is_boundary(s, at + alt.len()))
        };
        self.alternatives.iter().copied().find(fits).map(str::len)
    }
}

/// A Python regex whose leading and/or trailing `\b` is checked outside `regex`.
///
/// Only sound for patterns that admit at most one match end at any start position, or whose
/// shorter ends fail the boundary whenever the longest one does (true of every pattern used
/// here): then "longest match, boundary rejected, try the next start" is what Python does.
#[derive(Debug)]
pub(super) struct Bounded {
    re: Regex,
    lead: bool,
    trail: bool,
}

impl Bounded {
    /// `pattern` is the Python pattern with its `\b` assertions removed.
    pub(super) fn new(pattern: &str, lead: bool, trail: bool) -> Self {
        let re = Regex::new(pattern).expect("normaliser patterns are valid");
        Self { re, lead, trail }
    }

    /// Every accepted match, leftmost first and non-overlapping.
    fn matches<'h>(&self, s: &'h str) -> Vec<Captures<'h>> {
        let (mut found, mut from) = (Vec::new(), 0);
        while from <= s.len() {
            let Some(caps) = self.re.captures_at(s, from) else {
                break;
            };
            let whole = caps.get(0).expect("group 0 always participates");
            let accepted = (!self.lead || is_boundary(s, whole.start()))
                && (!self.trail || is_boundary(s, whole.end()));
            from = if accepted && whole.end() > whole.start() {
                whole.end()
            } else {
                next_char(s, whole.start())
            };
            if accepted {
                found.push(caps);
            }
        }
        found
    }

    /// Python's `re.sub(pattern, replace, s)` with a function as the replacement.
    pub(super) fn replace_all(&self, s: &str, replace: impl Fn(&Captures<'_>) -> String) -> String {
        let mut out = String::with_capacity(s.len());
        let mut copied = 0;
        for caps in self.matches(s) {
            let whole = caps.get(0).expect("group 0 always participates");
            out.push_str(&s[copied..whole.start()]);
            out.push_str(&replace(&caps));
            copied = whole.end();
        }
        out.push_str(&s[copied..]);
        out
    }

    /// Python's `re.split(pattern, s)` for a pattern without capture groups.
    pub(super) fn split<'h>(&self, s: &'h str) -> Vec<&'h str> {
        let mut pieces = Vec::new();
        let mut copied = 0;
        for caps in self.matches(s) {
            let whole = caps.get(0).expect("group 0 always participates");
            pieces.push(&s[copied..whole.start()]);
            copied = whole.end();
        }
        pieces.push(&s[copied..]);
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_word_characters_decide_boundaries() {
        let fillers = Literals::new(&["hmm", "mm", "mhm", "mmm", "uh", "um"], true, true);
        assert_eq!(fillers.replace_all("mmm yes um, hmm", ""), " yes , ");
        // `²` is a word character to Python, a combining accent is not.
        assert_eq!(fillers.replace_all("um² um\u{301}", ""), "um² \u{301}");
    }

    #[test]
    fn bounded_retries_after_a_rejected_boundary() {
        let one = Bounded::new("1(s?)", true, true);
        assert_eq!(
            one.replace_all("11 1 1s 1x", |c| format!("one{}", &c[1])),
            "11 one ones 1x"
        );
        let half = Bounded::new(r"and\s+a\s+half", true, true);
        assert_eq!(
            half.split("two and a half hours, sand a halfpenny"),
            ["two ", " hours, sand a halfpenny"]
        );
    }

    #[test]
    fn python_whitespace_includes_ascii_separators() {
        assert_eq!(
            split_words(" a\u{1c}b\u{a0}c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
