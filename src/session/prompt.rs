//! The prompt: committed text whose audio has left the buffer, across the session's utterances.
//!
//! Whisper conditions on the text before its window (`initial_prompt`), which keeps spelling,
//! casing and names consistent when the buffer is cut mid-sentence. Only text whose audio is no
//! longer sent goes in: committed words still in the buffer would ask the model to skip what it
//! hears (whisper_streaming keeps the same split between "prompt" and "context").

use super::TimedWord;

/// Committed words that left the buffer, in stream order, kept to about twice the prompt size.
#[derive(Debug, Clone)]
pub(crate) struct PromptContext {
    max_chars: usize,
    words: Vec<TimedWord>,
}

impl PromptContext {
    pub(crate) fn new(max_chars: usize) -> Self {
        Self {
            max_chars,
            words: Vec::new(),
        }
    }

    /// Adds words; they are placed by start time, since a closed utterance's final words can
    /// arrive after the next utterance's first ones.
    pub(crate) fn extend(&mut self, words: &[TimedWord]) {
        for w in words {
            let at = self.words.partition_point(|x| x.start <= w.start);
            self.words.insert(at, w.clone());
        }
        let mut chars: usize = self.words.iter().map(|w| w.text.chars().count()).sum();
        let mut drop = 0;
        while chars > 2 * self.max_chars && drop < self.words.len() {
            chars -= self.words[drop].text.chars().count();
            drop += 1;
        }
        self.words.drain(..drop);
    }

    /// The last whole words that fit in `max_chars`, without the leading space.
    pub(crate) fn prompt(&self) -> String {
        let mut chars = 0;
        let mut from = self.words.len();
        while from > 0 {
            let n = self.words[from - 1].text.chars().count();
            if chars + n > self.max_chars {
                break;
            }
            chars += n;
            from -= 1;
        }
        super::commit::join_text(&self.words[from..])
            .trim_start()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start: f64) -> TimedWord {
        TimedWord::new(text, start, start + 0.1)
    }

    #[test]
    fn prompt_is_the_tail_that_fits_in_whole_words() {
        let mut p = PromptContext::new(12);
        assert_eq!(p.prompt(), "");
        p.extend(&[word(" one", 0.0), word(" two", 1.0), word(" three", 2.0)]);
        assert_eq!(p.prompt(), "two three");
        let mut none = PromptContext::new(0);
        none.extend(&[word(" one", 0.0)]);
        assert_eq!(none.prompt(), "");
    }

    #[test]
    fn late_words_are_placed_in_time_order_and_old_ones_dropped() {
        let mut p = PromptContext::new(8);
        p.extend(&[word(" c", 5.0), word(" d", 6.0)]);
        p.extend(&[word(" a", 1.0), word(" b", 2.0)]);
        assert_eq!(p.prompt(), "a b c d");
        p.extend(&[
            word(" e", 7.0),
            word(" f", 8.0),
            word(" g", 9.0),
            word(" h", 10.0),
        ]);
        assert_eq!(p.prompt(), "e f g h");
        assert_eq!(p.words.len(), 8);
        p.extend(&[word(" i", 11.0)]);
        assert_eq!(p.words.len(), 8);
        assert_eq!(p.words[0].text, " b");
    }
}
