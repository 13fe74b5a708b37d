//! Word-level timestamps, computed as openai-whisper's `timing.py` and faster-whisper compute
//! them: one decoder pass over a window's transcript (`sot … <|notimestamps|> text <|eot|>`)
//! that keeps the cross-attention weights of the alignment heads; those weights, normalised and
//! median-filtered, form a token × time matrix; dynamic time warping finds the token ↔ time
//! path; a word starts where the path reaches its first token. Duration heuristics then fix
//! the words that swallowed a pause.
//!
//! Transcription is unchanged by this: it is a second pass over a window already decoded, so
//! callers that do not want words pay nothing.

mod dtw;
mod pass;
mod split;
mod timing;

use self::dtw::{alignment_matrix, dtw_path, jump_times};
use self::pass::{PassInput, RowPass, decoder_pass};
use self::split::{WordTokens, merge_punctuations, split_to_word_tokens};
use self::timing::{
    DurationLimits, SegmentSpan, clamp_at_sentence_ends, keep_in_order, place_words,
};
use super::{DecodeError, TIME_PRECISION};
use crate::model::whisper::mel::HOP_LENGTH;
use crate::model::whisper::model::{EncodedAudio, Whisper};
use crate::model::whisper::tokens::WhisperTokenizer;

/// Seconds per mel frame.
const FRAME_SECONDS: f64 = HOP_LENGTH as f64 / 16_000.0;

/// One word of a transcript with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word as Whisper writes it: leading space included, punctuation attached.
    pub word: String,
    /// Start, seconds from the start of the audio.
    pub start: f64,
    /// End, seconds from the start of the audio.
    pub end: f64,
    /// Mean probability of the word's tokens under the model.
    pub probability: f32,
}

/// One window to align with [`align_windows`].
#[derive(Debug, Clone, Copy)]
pub struct WordWindow<'a> {
    /// The decoder's start sequence for this window (`sot`, language, task; no prompt).
    pub sot_sequence: &'a [u32],
    /// Tokens of each segment decoded from the window. Timestamp tokens may stay: text tokens
    /// are picked out, and a segment that starts (ends) with a timestamp lets that timestamp
    /// correct its first (last) word, as openai-whisper does.
    pub segments: &'a [Vec<u32>],
    /// Mel frames of real audio in the window (at most 3000).
    pub num_frames: usize,
    /// Start of the window, seconds from the start of the audio.
    pub window_offset: f64,
    /// Where speech last ended before this window (the previous window's last word end), in
    /// seconds: a first word far after it is checked for having swallowed the pause.
    pub last_speech_end: f64,
}

/// A word while it is being timed, in seconds from the window start.
#[derive(Debug, Clone)]
struct WordTiming {
    text: WordTokens,
    start: f64,
    end: f64,
    probability: f32,
}

/// Words of each segment of one window. `audio` is the window encoded; the other arguments
/// are [`WordWindow`]'s fields, with the previous speech taken to end at the window start.
pub fn align_words(
    model: &Whisper,
    tokenizer: &WhisperTokenizer,
    audio: &EncodedAudio,
    sot_sequence: &[u32],
    segments: &[Vec<u32>],
    num_frames: usize,
    window_offset: f64,
) -> Result<Vec<Vec<Word>>, DecodeError> {
    let window = WordWindow {
        sot_sequence,
        segments,
        num_frames,
        window_offset,
        last_speech_end: window_offset,
    };
    let mut words = align_windows(model, tokenizer, audio, &[window])?;
    Ok(words.pop().unwrap_or_default())
}

/// Words of each segment of several windows at once, one decoder pass for all of them.
/// `audio` holds the windows encoded, row `b` for `windows[b]`.
pub fn align_windows(
    model: &Whisper,
    tokenizer: &WhisperTokenizer,
    audio: &EncodedAudio,
    windows: &[WordWindow<'_>],
) -> Result<Vec<Vec<Vec<Word>>>, DecodeError> {
    if audio.rows() != windows.len() {
        let msg = format!("{} audio rows for {} windows", audio.rows(), windows.len());
        return Err(candle_core::Error::Msg(msg).into());
    }
    let eot = tokenizer.special().eot;
    let texts: Vec<Vec<u32>> = windows
        .iter()
        .map(|w| {
            w.segments
                .iter()
                .flatten()
                .copied()
                .filter(|&t| t < eot)
                .collect()
        })
        .collect();
    let mut words: Vec<Vec<Vec<Word>>> = windows
        .iter()
        .map(|w| vec![Vec::new(); w.segments.len()])
        .collect();
    let rows: Vec<usize> = (0..windows.len())
        .filter(|&i| !texts[i].is_empty())
        .collect();
    if rows.is_empty() {
        return Ok(words);
    }
    let inputs: Vec<PassInput<'_>> = rows
        .iter()
        .map(|&i| PassInput {
            sot_sequence: windows[i].sot_sequence,
            text: &texts[i],
            audio_positions: windows[i].num_frames / 2,
        })
        .collect();
    let audio = audio.select(&rows)?;
    let passes = decoder_pass(model, tokenizer, &audio, &inputs)?;
    for (&i, pass) in rows.iter().zip(&passes) {
        words[i] = window_words(tokenizer, &windows[i], &texts[i], pass)?;
    }
    Ok(words)
}

/// Times the words of one window and deals them out to its segments.
fn window_words(
    tokenizer: &WhisperTokenizer,
    window: &WordWindow<'_>,
    text: &[u32],
    pass: &RowPass,
) -> Result<Vec<Vec<Word>>, DecodeError> {
    let language = language_of(tokenizer, window.sot_sequence);
    let mut timings = find_alignment(tokenizer, text, pass, language)?;
    let limits = DurationLimits::of(&timings);
    clamp_at_sentence_ends(&mut timings, limits);
    merge_punctuations(&mut timings);
    let spans = segment_spans(tokenizer, window);
    let mut last_speech_end = window.last_speech_end;
    let offset = window.window_offset;
    let mut words = place_words(timings, &spans, offset, limits, &mut last_speech_end);
    let window_end = offset + window.num_frames as f64 * FRAME_SECONDS;
    keep_in_order(&mut words, offset, window_end);
    Ok(words)
}

/// Words with their times relative to the window, before any heuristic.
fn find_alignment(
    tokenizer: &WhisperTokenizer,
    text: &[u32],
    pass: &RowPass,
    language: &str,
) -> Result<Vec<WordTiming>, DecodeError> {
    let (tokens, frames) = (pass.tokens, pass.frames);
    let heads = pass.weights.len() / (tokens * frames);
    let matrix = alignment_matrix(&pass.weights, heads, tokens, frames);
    // From <|notimestamps|> (whose position predicts the first text token) to the last text
    // token; the eot position predicts nothing and is left out.
    let rows = text.len() + 1;
    let start = pass.sot_len * frames;
    let cost: Vec<f32> = matrix[start..start + rows * frames]
        .iter()
        .map(|&x| -x)
        .collect();
    let starts = jump_times(&dtw_path(&cost, rows, frames), TIME_PRECISION);
    let time_at = |i: usize| starts.get(i).or(starts.last()).copied().unwrap_or(0.0);
    let mut first = 0;
    Ok(split_to_word_tokens(tokenizer, text, language)?
        .into_iter()
        .map(|word| {
            let end = first + word.tokens.len();
            let probs = &pass.text_probs[first..end];
            let timing = WordTiming {
                start: time_at(first),
                end: time_at(end),
                probability: probs.iter().sum::<f32>() / probs.len().max(1) as f32,
                text: word,
            };
            first = end;
            timing
        })
        .collect())
}

/// The language code of a start sequence; English when it names none (English-only models).
fn language_of(tokenizer: &WhisperTokenizer, sot_sequence: &[u32]) -> &'static str {
    tokenizer
        .language_tokens()
        .iter()
        .find(|(_, token)| sot_sequence.contains(token))
        .map_or("en", |(code, _)| code)
}

/// Each segment's text-token count and, from its edge timestamp tokens, its absolute times.
fn segment_spans(tokenizer: &WhisperTokenizer, window: &WordWindow<'_>) -> Vec<SegmentSpan> {
    let special = tokenizer.special();
    let time = |t: Option<&u32>| {
        t.filter(|&&t| t >= special.timestamp_begin)
            .map(|&t| window.window_offset + (t - special.timestamp_begin) as f64 * TIME_PRECISION)
    };
    window
        .segments
        .iter()
        .map(|tokens| SegmentSpan {
            text_tokens: tokens.iter().filter(|&&t| t < special.eot).count(),
            start: time(tokens.first()),
            end: time(tokens.last()),
        })
        .collect()
}
