//! The word-by-word state machine of Whisper's `EnglishNumberNormalizer.process_words`.
//!
//! A branch-for-branch port: which words glue into digit strings and which add up, when a pending
//! number is flushed, and which words are silently eaten ("and" after "hundred", a "point" before
//! a non-decimal) all change the words WER counts, so the Python's order and its int/str
//! distinction are kept as they are, each branch named after the dict it tests.

mod digits;

use super::value::{self, Value};
use super::vocab::{self, Word};

/// Python's `re.match(r"^\d+(\.\d+)?$", word)`, Unicode digits included.
pub(super) fn is_arabic(word: &str) -> bool {
    let digits = |part: &str| !part.is_empty() && part.chars().all(value::is_decimal_digit);
    match word.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(word),
    }
}

/// Runs the state machine over whitespace-separated words and returns the output words.
pub(super) fn process_words(words: &[&str]) -> Vec<String> {
    let mut parser = Parser::default();
    let mut skip = false;
    for (i, &current) in words.iter().enumerate() {
        if std::mem::take(&mut skip) {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| words[p]);
        skip = parser.step(prev, current, words.get(i + 1).copied());
    }
    parser.flush();
    parser.out
}

/// The generator's local state: output so far, a pending sign or currency, the number in progress.
#[derive(Default)]
struct Parser {
    out: Vec<String>,
    prefix: Option<char>,
    value: Option<Value>,
}

/// The neighbours of the current word, looked up once.
struct Context<'w> {
    prev: Option<Word>,
    next: Option<&'w str>,
    next_word: Option<Word>,
    next_is_numeric: bool,
}

impl Context<'_> {
    /// Python's `next in self.words or next_is_numeric`: could a number follow?
    fn number_follows(&self) -> bool {
        self.next_word.is_some() || self.next_is_numeric
    }
}

impl Parser {
    /// Python's `output()`: emit with the pending prefix, then forget both value and prefix.
    fn output(&mut self, result: &str) {
        let text = match self.prefix.take() {
            Some(prefix) => format!("{prefix}{result}"),
            None => result.to_owned(),
        };
        self.value = None;
        self.out.push(text);
    }

    /// `if value is not None: yield output(value)`.
    fn flush(&mut self) {
        if let Some(value) = self.value.take() {
            self.output(value.as_str());
        }
    }

    /// `str(value or "")`.
    fn value_or_empty(&self) -> String {
        self.value
            .as_ref()
            .filter(|v| v.is_truthy())
            .map_or_else(String::new, |v| v.as_str().into())
    }

    /// One iteration of the Python loop; returns whether to skip the next word.
    fn step(&mut self, prev: Option<&str>, current: &str, next: Option<&str>) -> bool {
        let symbol = current
            .chars()
            .next()
            .filter(|&c| vocab::is_prefix_symbol(c));
        let bare = symbol.map_or(current, |c| &current[c.len_utf8()..]);
        if is_arabic(bare) {
            self.arabic(current, symbol, bare);
            return false;
        }
        let Some(word) = vocab::lookup(current) else {
            self.flush();
            self.output(current);
            return false;
        };
        let next_word = next.and_then(vocab::lookup);
        let next_is_numeric = next.is_some_and(is_arabic);
        let cx = Context {
            prev: prev.and_then(vocab::lookup),
            next,
            next_word,
            next_is_numeric,
        };
        self.word(word, current, &cx)
    }

    /// A word from the number vocabulary; returns whether to skip the next word.
    fn word(&mut self, word: Word, current: &str, cx: &Context<'_>) -> bool {
        match word {
            Word::Zero => self.value = Some(Value::Text(self.value_or_empty() + "0")),
            Word::One(ones) => self.value = Some(self.with_ones(cx.prev, ones)),
            Word::OneSuffixed(ones, suffix) => {
                let value = self.with_ones(cx.prev, ones);
                self.output(&format!("{}{suffix}", value.as_str()));
            }
            Word::Ten(tens) => self.value = Some(self.with_tens(tens)),
            Word::TenSuffixed(tens, suffix) => {
                let value = self.with_tens(tens);
                self.output(&format!("{}{suffix}", value.as_str()));
            }
            Word::Multiplier(power) => self.multiplier(power),
            Word::MultiplierSuffixed(power, suffix) => self.multiplier_suffixed(power, suffix),
            Word::PrecedingPrefixer(sign) => {
                self.flush();
                if cx.number_follows() {
                    self.prefix = Some(sign);
                } else {
                    self.output(current);
                }
            }
            Word::FollowingPrefixer(symbol) => match self.value.take() {
                Some(value) => {
                    self.prefix = Some(symbol);
                    self.output(value.as_str());
                }
                None => self.output(current),
            },
            Word::Per => return self.per(current, cx.next),
            Word::Percent => match self.value.take() {
                Some(value) => self.output(&format!("{}%", value.as_str())),
                None => self.output(current),
            },
            Word::And | Word::Double | Word::Triple | Word::Point => {
                return self.special(word, current, cx);
            }
        }
        false
    }

    /// Digits written as digits, possibly after a sign or currency symbol.
    fn arabic(&mut self, current: &str, symbol: Option<char>, bare: &str) {
        if let Some(value) = self.value.take() {
            if let Value::Text(text) = &value
                && text.ends_with('.')
            {
                // Concatenate decimals / ip address components.
                self.value = Some(Value::Text(format!("{text}{current}")));
                return;
            }
            self.output(value.as_str());
        }
        if symbol.is_some() {
            self.prefix = symbol;
        }
        self.value = Some(match value::scaled_integer(bare, 0) {
            Some(integer) => Value::Int(integer),
            None => Value::Text(bare.to_owned()),
        });
    }

    /// "per": a percent sign when "cent" follows a number.
    fn per(&mut self, current: &str, next: Option<&str>) -> bool {
        match self.value.take() {
            Some(value) if next == Some("cent") => {
                self.output(&format!("{}%", value.as_str()));
                true
            }
            Some(value) => {
                self.output(value.as_str());
                self.output(current);
                false
            }
            None => {
                self.output(current);
                false
            }
        }
    }

    /// "and", "double", "triple", "point": only special when the next word can be numeric.
    fn special(&mut self, word: Word, current: &str, cx: &Context<'_>) -> bool {
        if !cx.number_follows() {
            self.flush();
            self.output(current);
            return false;
        }
        match word {
            Word::And if !matches!(cx.prev, Some(Word::Multiplier(_))) => {
                self.flush();
                self.output(current);
            }
            Word::Double | Word::Triple => {
                let digit = match cx.next_word {
                    Some(Word::One(ones)) => Some(ones),
                    Some(Word::Zero) => Some(0),
                    _ => None,
                };
                let Some(digit) = digit else {
                    self.flush();
                    self.output(current);
                    return false;
                };
                let repeats = if word == Word::Double { 2 } else { 3 };
                let digits = digit.to_string().repeat(repeats);
                self.value = Some(Value::Text(self.value_or_empty() + &digits));
                return true;
            }
            Word::Point if vocab::is_decimal_word(cx.next_word) || cx.next_is_numeric => {
                self.value = Some(Value::Text(self.value_or_empty() + "."));
            }
            // "and" after a multiplier, or "point" before a non-decimal: dropped.
            _ => {}
        }
        false
    }
}
