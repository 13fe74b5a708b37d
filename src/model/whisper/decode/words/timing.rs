//! openai-whisper's duration heuristics from `add_word_timestamps`, which correct what the
//! attention path gets wrong at pauses: a word before a sentence end or a long silence tends to
//! absorb the silence. Plus the guarantee hearken adds: times in order and inside the window.

use super::{Word, WordTiming};

/// Cap on the typical word duration, seconds.
const MAX_MEDIAN_DURATION: f64 = 0.7;
/// A word after one of these may not reach back into the pause before it.
const SENTENCE_END_MARKS: &str = ".。!！?？";
/// Seconds a segment timestamp may disagree with its edge word before the timestamp wins.
const SEGMENT_EDGE_SLACK: f64 = 0.5;

/// How long words of this window typically last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct DurationLimits {
    /// Median of the non-zero word durations, at most [`MAX_MEDIAN_DURATION`]; 0 when none.
    pub(super) median: f64,
    /// Twice the median: longer words next to pauses are cut to this.
    pub(super) max: f64,
}

impl DurationLimits {
    pub(super) fn of(words: &[WordTiming]) -> Self {
        let mut durations: Vec<f64> = words
            .iter()
            .map(|w| w.end - w.start)
            .filter(|&d| d != 0.0)
            .collect();
        durations.sort_unstable_by(f64::total_cmp);
        let n = durations.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => durations[n / 2],
            _ => (durations[n / 2 - 1] + durations[n / 2]) / 2.0,
        };
        let median = median.min(MAX_MEDIAN_DURATION);
        Self {
            median,
            max: 2.0 * median,
        }
    }
}

/// Words longer than `max` at a sentence boundary: a final mark ends `max` after it starts, a
/// word after a final mark starts `max` before it ends.
pub(super) fn clamp_at_sentence_ends(words: &mut [WordTiming], limits: DurationLimits) {
    if limits.median <= 0.0 {
        return;
    }
    for i in 1..words.len() {
        if words[i].end - words[i].start <= limits.max {
            continue;
        }
        if SENTENCE_END_MARKS.contains(words[i].text.word.as_str()) {
            words[i].end = words[i].start + limits.max;
        } else if SENTENCE_END_MARKS.contains(words[i - 1].text.word.as_str()) {
            words[i].start = words[i].end - limits.max;
        }
    }
}

/// A segment of the window as word placement sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SegmentSpan {
    /// Text tokens in the segment: the next words holding this many tokens are its words.
    pub(super) text_tokens: usize,
    /// The segment's start timestamp, absolute seconds, when it has one.
    pub(super) start: Option<f64>,
    /// The segment's end timestamp, absolute seconds, when it has one.
    pub(super) end: Option<f64>,
}

/// Deals the window's words out to its segments by token count, in absolute seconds rounded to
/// 10 ms, dropping the words that punctuation merging emptied, and applies the segment-edge
/// heuristics. `last_speech_end` (absolute) is where speech last ended; it is moved on.
pub(super) fn place_words(
    words: Vec<WordTiming>,
    segments: &[SegmentSpan],
    offset: f64,
    limits: DurationLimits,
    last_speech_end: &mut f64,
) -> Vec<Vec<Word>> {
    let mut words = words.into_iter();
    let mut placed_all = Vec::with_capacity(segments.len());
    for span in segments {
        let mut placed = Vec::new();
        let mut taken = 0;
        while taken < span.text_tokens {
            let Some(w) = words.next() else { break };
            taken += w.text.tokens.len();
            if !w.text.word.is_empty() {
                placed.push(Word {
                    word: w.text.word,
                    start: round_to_10ms(offset + w.start),
                    end: round_to_10ms(offset + w.end),
                    probability: w.probability,
                });
            }
        }
        if !placed.is_empty() {
            shorten_after_pause(&mut placed, limits, *last_speech_end);
            *last_speech_end = fit_segment_edges(&mut placed, span, limits);
        }
        placed_all.push(placed);
    }
    placed_all
}

/// The first word after a long pause tends to start inside the pause: keep it (and the word
/// after it) within `max`.
fn shorten_after_pause(words: &mut [Word], limits: DurationLimits, last_speech_end: f64) {
    let DurationLimits { median, max } = limits;
    let first = &words[0];
    let long_first = first.end - first.start > max;
    let long_pair = words.len() > 1 && words[1].end - first.start > 2.0 * max;
    if first.end - last_speech_end <= 4.0 * median || !(long_first || long_pair) {
        return;
    }
    if words.len() > 1 && words[1].end - words[1].start > max {
        // openai-whisper halves the absolute end here; kept for identical results.
        let boundary = (words[1].end / 2.0).max(words[1].end - max);
        words[0].end = boundary;
        words[1].start = boundary;
    }
    words[0].start = (words[0].end - max).max(0.0);
}

/// Prefers the segment's own timestamps over an edge word that runs more than half a second
/// past them. Returns where the segment's speech ends.
fn fit_segment_edges(words: &mut [Word], span: &SegmentSpan, limits: DurationLimits) -> f64 {
    if let Some(start) = span.start {
        let first = &mut words[0];
        if start < first.end && start - SEGMENT_EDGE_SLACK > first.start {
            first.start = (first.end - limits.median).min(start).max(0.0);
        }
    }
    let last = words.last_mut().expect("non-empty");
    match span.end {
        Some(end) if end > last.start && end + SEGMENT_EDGE_SLACK < last.end => {
            last.end = (last.start + limits.median).max(end);
            end
        }
        _ => last.end,
    }
}

/// Makes every word start no earlier than the previous one ends and keeps all times inside
/// `[window_start, window_end]`: the heuristics above can push an edge word past a neighbour
/// or past the audio.
pub(super) fn keep_in_order(segments: &mut [Vec<Word>], window_start: f64, window_end: f64) {
    let window_end = window_end.max(window_start);
    let mut floor = window_start;
    for w in segments.iter_mut().flatten() {
        w.start = w.start.clamp(floor, window_end);
        w.end = w.end.clamp(w.start, window_end);
        floor = w.end;
    }
}

fn round_to_10ms(seconds: f64) -> f64 {
    (seconds * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::super::split::WordTokens;
    use super::*;

    fn timing(word: &str, start: f64, end: f64) -> WordTiming {
        WordTiming {
            text: WordTokens {
                word: word.into(),
                tokens: vec![0],
            },
            start,
            end,
            probability: 0.9,
        }
    }

    fn word(start: f64, end: f64) -> Word {
        Word {
            word: " w".into(),
            start,
            end,
            probability: 0.9,
        }
    }

    #[test]
    fn median_ignores_zero_durations_and_is_capped() {
        let words = [
            timing(" a", 0.0, 0.2),
            timing(" b", 0.2, 0.2),
            timing(" c", 0.2, 0.6),
        ];
        let limits = DurationLimits::of(&words);
        assert!((limits.median - 0.3).abs() < 1e-12 && (limits.max - 0.6).abs() < 1e-12);
        let slow = [timing(" a", 0.0, 3.0)];
        assert_eq!(DurationLimits::of(&slow).median, MAX_MEDIAN_DURATION);
    }

    #[test]
    fn a_word_after_a_full_stop_does_not_reach_back_into_the_pause() {
        let mut words = [
            timing(" end", 0.0, 0.3),
            timing(".", 0.3, 2.0),
            timing(" Next", 2.0, 4.0),
        ];
        let limits = DurationLimits {
            median: 0.3,
            max: 0.6,
        };
        clamp_at_sentence_ends(&mut words, limits);
        assert!((words[1].end - 0.9).abs() < 1e-12, "the mark is cut");
        assert!(
            (words[2].start - 3.4).abs() < 1e-12,
            "the next word starts late"
        );
    }

    #[test]
    fn the_first_word_after_a_long_pause_is_shortened() {
        let mut words = [word(1.0, 5.0), word(5.0, 5.3)];
        let limits = DurationLimits {
            median: 0.3,
            max: 0.6,
        };
        shorten_after_pause(&mut words, limits, 0.5);
        assert!((words[0].start - 4.4).abs() < 1e-12);
        assert_eq!(words[0].end, 5.0);
    }

    #[test]
    fn order_and_window_bounds_are_enforced() {
        let mut segments = vec![vec![word(0.5, 2.4)], vec![word(2.0, 2.6), word(2.6, 9.0)]];
        keep_in_order(&mut segments, 1.0, 3.0);
        let times: Vec<(f64, f64)> = segments
            .iter()
            .flatten()
            .map(|w| (w.start, w.end))
            .collect();
        assert_eq!(times, [(1.0, 2.4), (2.4, 2.6), (2.6, 3.0)]);
    }
}
