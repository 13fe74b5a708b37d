//! Whisper's `remove_symbols_and_diacritics`: NFKD, then drop accents and blank out symbols.
//!
//! It runs before number parsing so that `½`, `café` and `“quoted”` reach the number and
//! spelling steps as plain ASCII-ish words. Categories come from `unicode-properties` (a newer
//! Unicode than the reference's Python 3.11 `unicodedata`, Unicode 14), which only differs for
//! characters assigned since, none of which a transcript is likely to contain.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Letters NFKD does not split into base + mark, spelled the way Whisper's table spells them.
fn additional_diacritic(c: char) -> Option<&'static str> {
    Some(match c {
        'œ' => "oe",
        'Œ' => "OE",
        'ø' => "o",
        'Ø' => "O",
        'æ' => "ae",
        'Æ' => "AE",
        'ß' => "ss",
        'ẞ' => "SS",
        'đ' | 'ð' => "d",
        'Đ' | 'Ð' => "D",
        'þ' | 'Þ' => "th",
        'ł' => "l",
        'Ł' => "L",
        _ => return None,
    })
}

/// Replaces marks, symbols and punctuation with a space and drops nonspacing marks (accents),
/// except for the characters in `keep`, after NFKD normalisation.
///
/// Dropping rather than blanking `Mn` is what turns `café` into `cafe` instead of `cafe ` + `e`.
pub fn remove_symbols_and_diacritics(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        if keep.contains(c) {
            out.push(c);
        } else if let Some(spelled) = additional_diacritic(c) {
            out.push_str(spelled);
        } else {
            if c.general_category() == GeneralCategory::NonspacingMark {
                continue;
            }
            let group = c.general_category_group();
            let blank = matches!(
                group,
                GeneralCategoryGroup::Mark
                    | GeneralCategoryGroup::Symbol
                    | GeneralCategoryGroup::Punctuation
            );
            out.push(if blank { ' ' } else { c });
        }
    }
    out
}

/// Whisper's `BasicTextNormalizer()` (diacritics kept), the normaliser its papers score every
/// language but English with: lower case, bracketed and parenthesised words gone, marks,
/// symbols and punctuation blanked after NFKC, runs of whitespace made one space.
pub fn normalize_basic(s: &str) -> String {
    static BRACKETS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[<\[][^>\]]*[>\]]").unwrap());
    static PARENTHESES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\(([^)]+?)\)").unwrap());
    let s = s.to_lowercase();
    let s = BRACKETS.replace_all(&s, "");
    let s = PARENTHESES.replace_all(&s, "");
    let blanked: String = s
        .nfkc()
        .map(|c| {
            let blank = matches!(
                c.general_category_group(),
                GeneralCategoryGroup::Mark
                    | GeneralCategoryGroup::Symbol
                    | GeneralCategoryGroup::Punctuation
            );
            if blank { ' ' } else { c }
        })
        .collect();
    blanked
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_keeps_accents_and_drops_punctuation_and_brackets() {
        assert_eq!(
            normalize_basic("Sous le Consulat, il devient « conservateur » [musique] (rires)."),
            "sous le consulat il devient conservateur"
        );
        assert_eq!(normalize_basic("客観的実在の、判断。"), "客観的実在の 判断");
        assert_eq!(normalize_basic("Ｆｕｌｌ　ｗｉｄｔｈ"), "full width");
    }

    #[test]
    fn accents_drop_and_symbols_blank() {
        assert_eq!(
            remove_symbols_and_diacritics("café «½» Œuvre", ""),
            "cafe  1 2  OEuvre"
        );
        assert_eq!(
            remove_symbols_and_diacritics("$5.50, 10%!", ".%$"),
            "$5.50  10% "
        );
    }
}
