//! The number being built, as Python's normaliser holds it: an `int` or a `str` of digits.
//!
//! The distinction is observable ("twenty five" adds to 25, "two five" glues to "25" and then
//! treats a following "hundred" differently), and Python's ints never overflow, so integers are
//! kept as canonical decimal strings with the little arithmetic the state machine needs, and
//! `Fraction(s)` is reproduced for the decimal strings it is ever applied to.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A number under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// A Python `int`: canonical decimal digits (no leading zeros, "0" for zero).
    Int(String),
    /// A Python `str`: digits glued together, a decimal, or an ip-address-like string.
    Text(String),
}

impl Value {
    /// An `int` from a small number.
    pub(super) fn int(n: u32) -> Self {
        Self::Int(n.to_string())
    }

    /// Python's `str(value)`.
    pub(super) fn as_str(&self) -> &str {
        match self {
            Self::Int(s) | Self::Text(s) => s,
        }
    }

    /// Python's truthiness, for `str(value or "")`: the int `0` and `""` are false, `"0"` is not.
    pub(super) fn is_truthy(&self) -> bool {
        match self {
            Self::Int(digits) => digits != "0",
            Self::Text(text) => !text.is_empty(),
        }
    }
}

/// Whether `c` matches Python's `\d`, i.e. is any Unicode decimal digit.
pub(super) fn is_decimal_digit(c: char) -> bool {
    c.is_ascii_digit() || c.general_category() == GeneralCategory::DecimalNumber
}

/// The ASCII digit for a Unicode decimal digit, as Python's `int()` reads it.
///
/// Unicode encodes every decimal digit set as a contiguous run 0..9, so a digit's value is its
/// distance from the start of its run; adjacent runs (the mathematical digits) just continue the
/// count modulo ten.
fn ascii_digit(c: char) -> Option<char> {
    if c.is_ascii_digit() {
        return Some(c);
    }
    if !is_decimal_digit(c) {
        return None;
    }
    let preceding = (1..=c as u32)
        .map(|back| char::from_u32(c as u32 - back))
        .take_while(|before| before.is_some_and(is_decimal_digit))
        .count();
    char::from_digit((preceding % 10) as u32, 10)
}

/// Strips leading zeros, as `str(int(s))` does.
fn canonical(digits: &str) -> String {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `10 ** power`.
pub(super) fn power_of_ten(power: usize) -> String {
    format!("1{}", "0".repeat(power))
}

/// The sum of two canonical non-negative integers.
pub(super) fn add(a: &str, b: &str) -> String {
    let (mut a, mut b) = (a.bytes().rev(), b.bytes().rev());
    let (mut digits, mut carry) = (Vec::new(), 0u8);
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() && carry == 0 {
            break;
        }
        let sum = x.map_or(0, |d| d - b'0') + y.map_or(0, |d| d - b'0') + carry;
        digits.push(b'0' + sum % 10);
        carry = sum / 10;
    }
    digits.reverse();
    canonical(&String::from_utf8(digits).expect("ASCII digits"))
}

/// Python's `value % 10**power == 0` for a canonical integer.
pub(super) fn is_multiple_of_power_of_ten(n: &str, power: usize) -> bool {
    n == "0" || (n.len() > power && n.bytes().rev().take(power).all(|d| d == b'0'))
}

/// Python's `value // 1000 * 1000 + value % 1000 * 10**power`: a multiplier scales only the last
/// three digits, so "two thousand five hundred" reads as 2500, not 250000.
pub(super) fn apply_multiplier(n: &str, power: usize) -> String {
    let (thousands, residual) = n.split_at(n.len().saturating_sub(3));
    let before = if thousands.is_empty() {
        "0".to_owned()
    } else {
        format!("{thousands}000")
    };
    let residual = canonical(residual);
    let scaled = if residual == "0" {
        residual
    } else {
        format!("{residual}{}", "0".repeat(power))
    };
    add(&before, &scaled)
}

/// `Fraction(s)` for the strings the state machine builds: `(all digits, digits after the point)`.
fn parse_decimal(s: &str) -> Option<(String, usize)> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits: Option<String> = whole
        .chars()
        .chain(fraction.chars())
        .map(ascii_digit)
        .collect();
    Some((digits?, fraction.chars().count()))
}

/// `Fraction(s) * 10**power` when that is an integer (canonical), else `None`; `None` also for
/// strings `Fraction` rejects.
pub(super) fn scaled_integer(s: &str, power: usize) -> Option<String> {
    let (digits, scale) = parse_decimal(s)?;
    if power >= scale {
        return Some(canonical(&format!("{digits}{}", "0".repeat(power - scale))));
    }
    let (kept, dropped) = digits.split_at(digits.len() - (scale - power));
    dropped.bytes().all(|d| d == b'0').then(|| canonical(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_arithmetic_is_unbounded() {
        assert_eq!(add("999", "1"), "1000");
        assert_eq!(add("0", "15"), "15");
        assert_eq!(apply_multiplier("2500", 3), "502000");
        assert_eq!(apply_multiplier("7", 33), format!("7{}", "0".repeat(33)));
        assert!(is_multiple_of_power_of_ten("100", 2) && !is_multiple_of_power_of_ten("10", 2));
    }

    #[test]
    fn fractions_read_like_python() {
        assert_eq!(scaled_integer("007", 0).as_deref(), Some("7"));
        assert_eq!(scaled_integer("1.50", 0), None);
        assert_eq!(scaled_integer("1.50", 1).as_deref(), Some("15"));
        assert_eq!(scaled_integer("5.", 2).as_deref(), Some("500"));
        assert_eq!(scaled_integer(".", 2), None);
        assert_eq!(scaled_integer("1.2.3", 2), None);
        assert_eq!(scaled_integer("١٢", 0).as_deref(), Some("12"));
        assert_eq!(scaled_integer("𝟗𝟘", 0).as_deref(), Some("90"));
    }
}
