//! How digits accumulate: the ones, tens and multiplier branches of `process_words`.
//!
//! Whether a word adds ("twenty" + "five" = 25), glues ("two" "five" = "25") or scales ("five"
//! "hundred" = 500, but only the last three digits: "two thousand five hundred") depends on the
//! pending value's Python type and on the previous word, exactly as in the Python.

use super::Parser;
use crate::eval::normalize::numbers::value::{self, Value};
use crate::eval::normalize::numbers::vocab::Word;

impl Parser {
    /// The value after "one" to "nineteen" (or their suffixed forms).
    pub(super) fn with_ones(&mut self, prev: Option<Word>, ones: u32) -> Value {
        let prev_is_one = matches!(prev, Some(Word::One(_)));
        match self.value.take() {
            None => Value::int(ones),
            Some(Value::Int(n)) if !prev_is_one => {
                let power = if ones < 10 { 1 } else { 2 };
                if value::is_multiple_of_power_of_ten(&n, power) {
                    Value::Int(value::add(&n, &ones.to_string()))
                } else {
                    Value::Text(format!("{n}{ones}"))
                }
            }
            Some(value) if matches!(prev, Some(Word::Ten(_))) && ones < 10 => {
                // Replace the tens' trailing zero with the digit (Python asserts it is a zero).
                let text = value.as_str();
                let cut = text.char_indices().next_back().map_or(0, |(at, _)| at);
                Value::Text(format!("{}{ones}", &text[..cut]))
            }
            Some(value) => Value::Text(format!("{}{ones}", value.as_str())),
        }
    }

    /// The value after "twenty" to "ninety" (or their suffixed forms).
    pub(super) fn with_tens(&mut self, tens: u32) -> Value {
        match self.value.take() {
            None => Value::int(tens),
            Some(Value::Int(n)) if value::is_multiple_of_power_of_ten(&n, 2) => {
                Value::Int(value::add(&n, &tens.to_string()))
            }
            Some(value) => Value::Text(format!("{}{tens}", value.as_str())),
        }
    }

    /// "hundred", "thousand", ...: scale the number, or start a new one.
    pub(super) fn multiplier(&mut self, power: usize) {
        let scaled = match self.value.take() {
            None => Value::Int(value::power_of_ten(power)),
            Some(Value::Int(n)) if n != "0" => Value::Int(value::apply_multiplier(&n, power)),
            Some(value) => match value::scaled_integer(value.as_str(), power) {
                Some(integer) => Value::Int(integer),
                None => {
                    self.output(value.as_str());
                    Value::Int(value::power_of_ten(power))
                }
            },
        };
        self.value = Some(scaled);
    }

    /// "hundreds", "thousandth", ...: scale and emit right away.
    pub(super) fn multiplier_suffixed(&mut self, power: usize, suffix: &str) {
        match self.value.take() {
            None => self.output(&format!("{}{suffix}", value::power_of_ten(power))),
            Some(Value::Text(text)) => match value::scaled_integer(&text, power) {
                Some(integer) => self.output(&format!("{integer}{suffix}")),
                None => {
                    self.output(&text);
                    self.output(&format!("{}{suffix}", value::power_of_ten(power)));
                }
            },
            Some(Value::Int(n)) => {
                let scaled = value::apply_multiplier(&n, power);
                self.output(&format!("{scaled}{suffix}"));
            }
        }
    }
}
