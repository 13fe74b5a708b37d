//! Grouping a window's text tokens into words and gluing punctuation to its neighbours, as
//! openai-whisper's `split_to_word_tokens` and `merge_punctuations` do.

use super::WordTiming;
use crate::model::whisper::tokens::{TokenizerError, WhisperTokenizer};

/// Languages written without spaces between words: there a "word" is every run of tokens that
/// decodes to whole characters, because splitting on morphemes would need a dictionary.
const UNSPACED_LANGUAGES: &[&str] = &["zh", "ja", "th", "lo", "my", "yue"];
/// Python's `string.punctuation`; a piece whose trimmed text is a substring of it stands alone.
const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Marks that belong to the word after them (openai-whisper's default).
pub(super) const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// Marks that belong to the word before them (openai-whisper's default).
pub(super) const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
/// What byte-level BPE decodes a partial UTF-8 sequence to.
const REPLACEMENT: char = '\u{FFFD}';

/// A word (with Whisper's leading space) and the tokens that spell it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct WordTokens {
    pub(super) word: String,
    pub(super) tokens: Vec<u32>,
}

/// Splits text tokens into words: at spaces and punctuation, or at character boundaries for
/// [`UNSPACED_LANGUAGES`].
pub(super) fn split_to_word_tokens(
    tokenizer: &WhisperTokenizer,
    tokens: &[u32],
    language: &str,
) -> Result<Vec<WordTokens>, TokenizerError> {
    let pieces = split_on_unicode(tokenizer, tokens)?;
    if UNSPACED_LANGUAGES.contains(&language) {
        return Ok(pieces);
    }
    let eot = tokenizer.special().eot;
    let mut words: Vec<WordTokens> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let starts_word = piece.tokens[0] >= eot
            || piece.word.starts_with(' ')
            || ASCII_PUNCTUATION.contains(piece.word.trim());
        match words.last_mut() {
            Some(last) if !starts_word => {
                last.word.push_str(&piece.word);
                last.tokens.extend(piece.tokens);
            }
            _ => words.push(piece),
        }
    }
    Ok(words)
}

/// Cuts wherever the tokens so far decode to whole characters: a multi-byte character split
/// across tokens shows up as U+FFFD until its last byte arrives (unless the full text has a
/// genuine U+FFFD at that place).
fn split_on_unicode(
    tokenizer: &WhisperTokenizer,
    tokens: &[u32],
) -> Result<Vec<WordTokens>, TokenizerError> {
    let full: Vec<char> = tokenizer.decode(tokens)?.chars().collect();
    let mut pieces = Vec::new();
    let mut current = Vec::new();
    let mut offset = 0;
    for &token in tokens {
        current.push(token);
        let decoded = tokenizer.decode(&current)?;
        let complete = match decoded.chars().position(|c| c == REPLACEMENT) {
            None => true,
            Some(i) => full.get(i + offset) == Some(&REPLACEMENT),
        };
        if complete {
            offset += decoded.chars().count();
            pieces.push(WordTokens {
                word: decoded,
                tokens: std::mem::take(&mut current),
            });
        }
    }
    Ok(pieces)
}

/// Moves opening marks (`"¿([{-`) into the following word and closing marks (`.,!?:)]}`…)
/// into the preceding one, leaving empty words behind: callers drop those but still count
/// their (now moved) tokens, as openai-whisper does.
pub(super) fn merge_punctuations(words: &mut [WordTiming]) {
    // Right to left, so that several opening marks in a row all reach the word.
    let mut j = words.len().saturating_sub(1);
    for i in (0..words.len().saturating_sub(1)).rev() {
        let previous = &words[i].text.word;
        if previous.starts_with(' ') && PREPEND_PUNCTUATIONS.contains(previous.trim()) {
            let previous = std::mem::take(&mut words[i].text);
            let following = &mut words[j].text;
            following.word.insert_str(0, &previous.word);
            following.tokens.splice(0..0, previous.tokens);
        } else {
            j = i;
        }
    }
    // Left to right, so that several closing marks in a row all reach the word.
    let mut i = 0;
    for j in 1..words.len() {
        if !words[i].text.word.ends_with(' ')
            && APPEND_PUNCTUATIONS.contains(words[j].text.word.as_str())
        {
            let following = std::mem::take(&mut words[j].text);
            let previous = &mut words[i].text;
            previous.word.push_str(&following.word);
            previous.tokens.extend(following.tokens);
        } else {
            i = j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<WordTiming> {
        list.iter()
            .enumerate()
            .map(|(i, w)| WordTiming {
                text: WordTokens {
                    word: (*w).to_string(),
                    tokens: vec![i as u32],
                },
                start: 0.0,
                end: 0.0,
                probability: 1.0,
            })
            .collect()
    }

    fn texts(list: &[WordTiming]) -> Vec<&str> {
        list.iter().map(|w| w.text.word.as_str()).collect()
    }

    #[test]
    fn punctuation_joins_its_word_and_keeps_every_token() {
        let mut w = words(&[
            " He", " said", " \"", "(", " wait", ")", ".", "\"", " Now", "!",
        ]);
        merge_punctuations(&mut w);
        // "(" has no leading space, so it stays a word of its own and takes the quote.
        assert_eq!(
            texts(&w),
            [
                " He",
                " said",
                "",
                " \"(",
                " wait).\"",
                "",
                "",
                "",
                " Now!",
                ""
            ]
        );
        let mut all: Vec<u32> = w.iter().flat_map(|w| w.text.tokens.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<u32>>());
        assert_eq!(w[4].text.tokens, [4, 5, 6, 7]);
    }

    #[test]
    fn a_word_ending_in_a_space_takes_no_closing_mark() {
        let mut w = words(&[" so ", ",", " then"]);
        merge_punctuations(&mut w);
        assert_eq!(texts(&w), [" so ", ",", " then"]);
    }
}
