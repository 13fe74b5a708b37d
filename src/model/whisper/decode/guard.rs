//! The last check before a decoded segment is kept: text Whisper is known to invent.
//!
//! The speech detector keeps most silence and noise away from the model. Then, on every path
//! (whole files and live streams alike, all decoded by [`super::Transcriber`]):
//!
//! - **Loops**: a phrase of one to four words said four times or more in a row, making up at
//!   least half the segment ("I'm sorry. I'm sorry. I'm sorry. I'm sorry."), or the same text
//!   as each of the two segments before it.
//! - **Stock phrases on quiet audio**: "you", "Thank you.", "Thanks for watching!" and their
//!   like, from subtitled videos in Whisper's training data, on audio under −45 dBFS or that the
//!   model gave a no-speech probability over 0.4.
//! - **No speech, low confidence**: a window Whisper gives a no-speech probability over 0.6
//!   with average log-probability under −1.0 is dropped whole, text and all (Whisper's own
//!   rule, applied by the decoder; counted here when the window had text).
//!
//! Suppressed segments are counted per reason (process-wide, read by the metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a segment was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// A repetition loop.
    Loop,
    /// A stock phrase on quiet or speechless audio.
    StockPhrase,
    /// Whisper's own no-speech signal with low confidence.
    NoSpeech,
}

impl Suppressed {
    /// Every reason, in the order [`suppressed_counts`] reports them.
    pub const ALL: [Self; 3] = [Self::Loop, Self::StockPhrase, Self::NoSpeech];

    /// The metric label: `loop`, `stock_phrase`, `no_speech`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Loop => "loop",
            Self::StockPhrase => "stock_phrase",
            Self::NoSpeech => "no_speech",
        }
    }
}

/// What the guard looks at for one segment.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The segment's text.
    pub text: &'a str,
    /// Level of the audio under the segment, dBFS.
    pub level_dbfs: f32,
    /// The window's no-speech probability.
    pub no_speech_prob: f32,
    /// The texts of the two segments before it, most recent last (fewer at the start).
    pub previous: [Option<&'a str>; 2],
}

/// Phrases Whisper produces from silence and noise (normalised: lower case, letters, digits
/// and single spaces).
const STOCK_PHRASES: &[&str] = &[
    "you",
    "thank you",
    "thank you very much",
    "thank you so much",
    "thanks",
    "thanks for watching",
    "thank you for watching",
    "thank you so much for watching",
    "thanks for listening",
    "thank you for listening",
    "please subscribe",
    "like and subscribe",
    "bye",
    "bye bye",
    "subtitles by the amara org community",
    "so",
    "okay",
    "oh",
    "hmm",
];
const QUIET_DBFS: f32 = -45.0;
const STOCK_NO_SPEECH: f32 = 0.4;

static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// The verdict on one segment: `Some(reason)` drops it (and counts it).
pub fn check(candidate: &Candidate<'_>) -> Option<Suppressed> {
    let verdict = judge(candidate);
    if let Some(reason) = verdict {
        count(reason);
    }
    verdict
}

/// Counts one segment dropped for `reason` elsewhere (a window judged silent).
pub fn count(reason: Suppressed) {
    COUNTS[reason as usize].fetch_add(1, Ordering::Relaxed);
}

/// Segments suppressed since the process started, per reason in [`Suppressed::ALL`] order.
pub fn suppressed_counts() -> [u64; 3] {
    std::array::from_fn(|i| COUNTS[i].load(Ordering::Relaxed))
}

fn judge(c: &Candidate<'_>) -> Option<Suppressed> {
    let text = normalise(c.text);
    let quiet = c.level_dbfs < QUIET_DBFS || c.no_speech_prob > STOCK_NO_SPEECH;
    if quiet && STOCK_PHRASES.contains(&text.as_str()) {
        return Some(Suppressed::StockPhrase);
    }
    let repeats_previous = !text.is_empty()
        && c.previous
            .iter()
            .all(|p| p.is_some_and(|p| normalise(p) == text));
    if repeats_previous || is_loop(&text) {
        return Some(Suppressed::Loop);
    }
    None
}

/// Whether some 1- to 4-word phrase repeats 4+ times in a row over half the words or more.
fn is_loop(text: &str) -> bool {
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    (1..=4).any(|n| {
        let mut start = 0;
        while start + n <= words.len() {
            let phrase = &words[start..start + n];
            let mut reps = 1;
            while start + (reps + 1) * n <= words.len()
                && &words[start + reps * n..start + (reps + 1) * n] == phrase
            {
                reps += 1;
            }
            if reps >= 4 && 2 * reps * n >= words.len() {
                return true;
            }
            start += 1;
        }
        false
    })
}

/// Lower case, letters and digits only, words separated by single spaces.
fn normalise(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else if c == '\'' {
                '\0'
            } else {
                ' '
            }
        })
        .filter(|&c| c != '\0')
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(text: &str) -> Candidate<'_> {
        Candidate {
            text,
            level_dbfs: -20.0,
            no_speech_prob: 0.05,
            previous: [None, None],
        }
    }

    #[test]
    fn speech_passes() {
        for text in [
            " And so, my fellow Americans, ask not what your country can do for you.",
            " Thank you.",
            " No, no, no.",
            " It's very, very, very good.",
        ] {
            assert_eq!(judge(&candidate(text)), None, "{text}");
        }
    }

    #[test]
    fn loops_are_caught_and_so_is_a_thrice_repeated_segment() {
        assert_eq!(
            judge(&candidate(" I'm sorry. I'm sorry. I'm sorry. I'm sorry.")),
            Some(Suppressed::Loop)
        );
        assert_eq!(
            judge(&candidate(" the the the the the the")),
            Some(Suppressed::Loop)
        );
        // Four repeats inside a long sentence are not most of it.
        assert_eq!(
            judge(&candidate(
                " He said go go go go and then he walked all the way home through the rain"
            )),
            None
        );
        let mut third = candidate(" We'll be right back.");
        third.previous = [Some(" We'll be right back."), Some(" we'll be right back")];
        assert_eq!(judge(&third), Some(Suppressed::Loop));
        third.previous[0] = None;
        assert_eq!(judge(&third), None);
    }

    #[test]
    fn stock_phrases_are_dropped_only_on_quiet_or_speechless_audio() {
        let mut quiet = candidate(" Thank you.");
        quiet.level_dbfs = -60.0;
        assert_eq!(judge(&quiet), Some(Suppressed::StockPhrase));
        let mut doubtful = candidate(" Thanks for watching!");
        doubtful.no_speech_prob = 0.5;
        assert_eq!(judge(&doubtful), Some(Suppressed::StockPhrase));
        let mut quiet_speech = candidate(" Thank you for coming tonight.");
        quiet_speech.level_dbfs = -60.0;
        assert_eq!(judge(&quiet_speech), None);
    }
}
