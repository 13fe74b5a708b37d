//! Whisper's `remove_symbols_and_diacritics`: NFKD, then drop accents and blank out symbols.
//!
//! It runs before number parsing so that `½`, `café` and `“quoted”` reach the number and
//! spelling steps as plain ASCII-ish words. Categories come from `unicode-properties` (a newer
//! Unicode than the reference's Python 3.11 `unicodedata`, Unicode 14), which only differs for
//! characters assigned since, none of which a transcript is likely to contain.

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

#[cfg(test)]
mod tests {
    use super::*;

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
