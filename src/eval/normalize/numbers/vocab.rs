//! The number words of Whisper's `EnglishNumberNormalizer.__init__`, as one lookup table.
//!
//! Python keeps a dozen dicts and asks them in a fixed order; each word belongs to exactly one, so
//! a single map from word to [`Word`] answers every `x in self.something` question the state
//! machine asks. The lists are generated the way the Python generates them, quirks included
//! ("nineth" is an ordinal, "ninth" is not).

use std::collections::HashMap;
use std::sync::LazyLock;

/// What a number word means to the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Word {
    /// "o", "oh", "zero".
    Zero,
    /// "one" to "nineteen".
    One(u32),
    /// "ones", "sixes", "first", "nineteenth": value and suffix ("s", "st", "th", ...).
    OneSuffixed(u32, &'static str),
    /// "twenty" to "ninety".
    Ten(u32),
    /// "twenties", "twentieth".
    TenSuffixed(u32, &'static str),
    /// "hundred" to "decillion", as a power of ten.
    Multiplier(usize),
    /// "hundreds", "thousandth".
    MultiplierSuffixed(usize, &'static str),
    /// "minus", "plus": a sign, applied only when a number follows.
    PrecedingPrefixer(char),
    /// "dollars", "cents": a currency symbol, applied only after a number.
    FollowingPrefixer(char),
    /// "per" (as in "per cent").
    Per,
    /// "percent".
    Percent,
    /// "and", glue inside "one hundred and one".
    And,
    /// "double", as in "double five".
    Double,
    /// "triple".
    Triple,
    /// "point", the decimal separator.
    Point,
}

const ONES: [&str; 19] = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

const TENS: [(&str, u32); 8] = [
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];

const MULTIPLIERS: [(&str, usize); 12] = [
    ("hundred", 2),
    ("thousand", 3),
    ("million", 6),
    ("billion", 9),
    ("trillion", 12),
    ("quadrillion", 15),
    ("quintillion", 18),
    ("sextillion", 21),
    ("septillion", 24),
    ("octillion", 27),
    ("nonillion", 30),
    ("decillion", 33),
];

const SYMBOL_WORDS: [(&str, Word); 18] = [
    ("minus", Word::PrecedingPrefixer('-')),
    ("negative", Word::PrecedingPrefixer('-')),
    ("plus", Word::PrecedingPrefixer('+')),
    ("positive", Word::PrecedingPrefixer('+')),
    ("pound", Word::FollowingPrefixer('£')),
    ("pounds", Word::FollowingPrefixer('£')),
    ("euro", Word::FollowingPrefixer('€')),
    ("euros", Word::FollowingPrefixer('€')),
    ("dollar", Word::FollowingPrefixer('$')),
    ("dollars", Word::FollowingPrefixer('$')),
    ("cent", Word::FollowingPrefixer('¢')),
    ("cents", Word::FollowingPrefixer('¢')),
    ("per", Word::Per),
    ("percent", Word::Percent),
    ("and", Word::And),
    ("double", Word::Double),
    ("triple", Word::Triple),
    ("point", Word::Point),
];

static WORDS: LazyLock<HashMap<String, Word>> = LazyLock::new(build);

/// The Python's `ones_ordinal` rule: "eight" + "h", "nine" + "th" (sic), except the irregulars.
fn ones_ordinal(name: &str, value: u32) -> Option<(String, &'static str)> {
    let irregular = [(0, "zeroth", "th"), (1, "first", "st"), (2, "second", "nd")];
    let irregular = irregular
        .into_iter()
        .chain([(3, "third", "rd"), (5, "fifth", "th")]);
    let mut irregular = irregular.chain([(12, "twelfth", "th")]);
    if let Some((_, word, suffix)) = irregular.find(|(v, _, _)| *v == value) {
        return Some((word.to_owned(), suffix));
    }
    let ending = if name.ends_with('t') { "h" } else { "th" };
    (value > 3).then(|| (format!("{name}{ending}"), "th"))
}

fn build() -> HashMap<String, Word> {
    let mut words = HashMap::new();
    // Python asks its dicts in this order, so the first group to claim a word wins.
    let mut add = |name: String, word: Word| {
        words.entry(name).or_insert(word);
    };
    for zero in ["o", "oh", "zero"] {
        add(zero.to_owned(), Word::Zero);
    }
    for (value, name) in (1..).zip(ONES) {
        add(name.to_owned(), Word::One(value));
    }
    add("zeroth".to_owned(), Word::OneSuffixed(0, "th"));
    for (value, name) in (1..).zip(ONES) {
        let plural = if name == "six" {
            "sixes".to_owned()
        } else {
            format!("{name}s")
        };
        add(plural, Word::OneSuffixed(value, "s"));
        if let Some((ordinal, suffix)) = ones_ordinal(name, value) {
            add(ordinal, Word::OneSuffixed(value, suffix));
        }
    }
    for (name, value) in TENS {
        add(name.to_owned(), Word::Ten(value));
        add(name.replace('y', "ies"), Word::TenSuffixed(value, "s"));
        add(name.replace('y', "ieth"), Word::TenSuffixed(value, "th"));
    }
    for (name, power) in MULTIPLIERS {
        add(name.to_owned(), Word::Multiplier(power));
        add(format!("{name}s"), Word::MultiplierSuffixed(power, "s"));
        add(format!("{name}th"), Word::MultiplierSuffixed(power, "th"));
    }
    for (name, word) in SYMBOL_WORDS {
        add(name.to_owned(), word);
    }
    words
}

/// The meaning of `word`, or `None` for a word outside Python's `self.words`.
pub(super) fn lookup(word: &str) -> Option<Word> {
    WORDS.get(word).copied()
}

/// Python's `self.prefixes`: the symbols a number token may start with.
pub(super) fn is_prefix_symbol(c: char) -> bool {
    matches!(c, '-' | '+' | '£' | '€' | '$' | '¢')
}

/// Python's `self.decimals`: words that may follow "point".
pub(super) fn is_decimal_word(word: Option<Word>) -> bool {
    matches!(word, Some(Word::Zero | Word::One(_) | Word::Ten(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_words_match_the_python_tables() {
        assert_eq!(lookup("nineth"), Some(Word::OneSuffixed(9, "th")));
        assert_eq!(lookup("ninth"), None);
        assert_eq!(lookup("eighth"), Some(Word::OneSuffixed(8, "th")));
        assert_eq!(lookup("sixes"), Some(Word::OneSuffixed(6, "s")));
        assert_eq!(lookup("seventies"), Some(Word::TenSuffixed(70, "s")));
        assert_eq!(lookup("millionth"), Some(Word::MultiplierSuffixed(6, "th")));
        // zeros + ones + 19 plurals + 19 ordinals (+ zeroth) + 3×8 tens + 3×12 multipliers + 18.
        assert_eq!(WORDS.len(), 3 + 19 + 19 + 19 + 1 + 24 + 36 + 18);
    }
}
