//! Which words of successive Whisper hypotheses are stable enough to commit, under either
//! streaming policy ([`StreamingPolicy`](super::StreamingPolicy)).
//!
//! Whisper re-transcribes the whole utterance buffer each time audio grows, and the tail of its
//! answer flickers while the speaker is mid-word. Two rules decide what is stable:
//!
//! - **LocalAgreement-2** ([`CommitBuffer::insert`]), following whisper_streaming's
//!   `HypothesisBuffer`: a word is committed once two consecutive hypotheses agree on it, the
//!   longest common prefix (compared case- and punctuation-insensitively) of the previous
//!   uncommitted tail and the new one.
//! - **AlignAtt** ([`CommitBuffer::insert_aligned`]), following SimulStreaming: one hypothesis
//!   suffices for the words the decoder's alignment heads placed clear of the end of the audio
//!   it heard (their cross-attention moved on to later frames); a word reaching into the last
//!   `margin` seconds may still be cut mid-word and waits for more audio, or for a second
//!   hypothesis that agrees on it.
//!
//! Either way, words of a new hypothesis that start before the last committed end are audio we
//! already committed, and a 1–5 word n-gram repeating the committed tail right at the boundary
//! is dropped, because Whisper re-reads committed audio still in the buffer. Committed words
//! are never taken back. All times here are absolute stream seconds.

/// One word of a Whisper hypothesis and where it lies in the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedWord {
    /// The word as Whisper writes it, usually with its leading space (`" hello,"`).
    pub text: String,
    /// Start, in seconds.
    pub start: f64,
    /// End, in seconds.
    pub end: f64,
    /// The model's probability for the word (1.0 where the decoder gives none).
    pub probability: f32,
}

impl TimedWord {
    /// A word with probability 1.0.
    pub fn new(text: impl Into<String>, start: f64, end: f64) -> Self {
        Self {
            text: text.into(),
            start,
            end,
            probability: 1.0,
        }
    }
}

/// Joins words into text the way Whisper spells it: word texts carry their own leading space
/// (and CJK words none), so they are concatenated as they are.
pub(crate) fn join_text(words: &[TimedWord]) -> String {
    words.iter().map(|w| w.text.as_str()).collect()
}

/// Words starting this long before the last committed end still count as new (timing jitter).
const OVERLAP_TOLERANCE_S: f64 = 0.1;
/// The n-gram de-duplication only applies when the new words start this close to the commit.
const DEDUP_WINDOW_S: f64 = 1.0;
/// Longest repeated n-gram removed at the committed boundary.
const MAX_NGRAM: usize = 5;
/// A word shorter than this has no audio behind it (the alignment gave it no frame).
const MIN_VOICED_WORD_S: f64 = 0.01;

/// Which words of one utterance are committed and which are tentative.
#[derive(Debug, Clone)]
pub struct CommitBuffer {
    committed: Vec<TimedWord>,
    /// `committed[released..]` is the committed text whose audio is still in the buffer: the
    /// n-gram window, and what has not yet been handed over to the prompt.
    released: usize,
    tentative: Vec<TimedWord>,
    last_committed_end: f64,
}

impl CommitBuffer {
    /// An empty state for an utterance whose audio starts at `start` seconds.
    pub fn new(start: f64) -> Self {
        Self {
            committed: Vec::new(),
            released: 0,
            tentative: Vec::new(),
            last_committed_end: start,
        }
    }

    /// LocalAgreement-2: takes a new hypothesis of the utterance buffer and commits the prefix
    /// it shares with the previous one. Returns how many words were committed.
    pub fn insert(&mut self, hypothesis: Vec<TimedWord>) -> usize {
        let new = self.uncommitted(hypothesis);
        let agreed = self.agreed_prefix(&new);
        // The newer spelling wins: it saw more context (punctuation, casing).
        self.settle(new, agreed)
    }

    /// How many of `new`'s first words the previous tentative tail has too.
    fn agreed_prefix(&self, new: &[TimedWord]) -> usize {
        self.tentative
            .iter()
            .zip(new)
            .take_while(|(old, new)| same_word(old, new))
            .count()
    }

    /// AlignAtt: takes a new hypothesis and commits its words up to the last that ends by
    /// `frontier` (the end of the audio the model heard, less the margin), or up to the last
    /// the previous hypothesis agrees on, whichever reaches further: a word both hypotheses
    /// agree on is as stable as under LocalAgreement-2 however close to the end it lies.
    /// Returns how many words were committed.
    pub fn insert_aligned(&mut self, hypothesis: Vec<TimedWord>, frontier: f64) -> usize {
        let new = self.uncommitted(hypothesis);
        // Cleaned times are monotonic, so the first word past the frontier ends the run.
        let heard_whole = new.iter().take_while(|w| w.end <= frontier).count();
        let stable = heard_whole.max(self.agreed_prefix(&new));
        self.settle(new, stable)
    }

    /// The words of `hypothesis` not yet committed: cleaned, past the committed end, and
    /// without an n-gram re-reading the committed tail.
    fn uncommitted(&self, mut hypothesis: Vec<TimedWord>) -> Vec<TimedWord> {
        clean_hypothesis(&mut hypothesis);
        let mut new: Vec<TimedWord> = hypothesis
            .into_iter()
            .filter(|w| w.start > self.last_committed_end - OVERLAP_TOLERANCE_S)
            .collect();
        self.drop_repeated_ngram(&mut new);
        new
    }

    /// Commits the first `stable` of `new` and keeps the rest as the tentative tail.
    fn settle(&mut self, mut new: Vec<TimedWord>, stable: usize) -> usize {
        self.tentative = new.split_off(stable);
        self.commit(new);
        stable
    }

    /// Commits the tentative words that end by `time` (progress when agreement stalls).
    pub fn commit_until(&mut self, time: f64) -> usize {
        let n = self.tentative.iter().take_while(|w| w.end <= time).count();
        let words: Vec<TimedWord> = self.tentative.drain(..n).collect();
        self.commit(words);
        n
    }

    /// Commits everything tentative (end of the utterance).
    pub fn commit_all(&mut self) -> usize {
        let words = std::mem::take(&mut self.tentative);
        let n = words.len();
        self.commit(words);
        n
    }

    /// Hands over the committed words that end by `time`, whose audio is leaving the buffer.
    pub fn release_until(&mut self, time: f64) -> &[TimedWord] {
        let from = self.released;
        while self.released < self.committed.len() && self.committed[self.released].end <= time {
            self.released += 1;
        }
        &self.committed[from..self.released]
    }

    /// Hands over every committed word not released yet (the utterance is over).
    pub fn release_all(&mut self) -> &[TimedWord] {
        let from = std::mem::replace(&mut self.released, self.committed.len());
        &self.committed[from..]
    }

    /// All committed words of the utterance, in order.
    pub fn committed(&self) -> &[TimedWord] {
        &self.committed
    }

    /// The uncommitted tail of the latest hypothesis.
    pub fn tentative(&self) -> &[TimedWord] {
        &self.tentative
    }

    /// End of the last committed word, if any.
    pub fn committed_end(&self) -> Option<f64> {
        self.committed.last().map(|_| self.last_committed_end)
    }

    fn commit(&mut self, words: Vec<TimedWord>) {
        for w in &words {
            self.last_committed_end = self.last_committed_end.max(w.end);
        }
        self.committed.extend(words);
    }

    /// whisper_streaming's boundary de-duplication: the shortest n-gram (1..=5) at the head of
    /// `new` that repeats the tail of the committed words still in the buffer is removed.
    fn drop_repeated_ngram(&self, new: &mut Vec<TimedWord>) {
        let Some(first) = new.first() else { return };
        if (first.start - self.last_committed_end).abs() >= DEDUP_WINDOW_S {
            return;
        }
        let window = &self.committed[self.released..];
        let longest = window.len().min(new.len()).min(MAX_NGRAM);
        for n in 1..=longest {
            let tail = &window[window.len() - n..];
            if tail.iter().zip(&new[..n]).all(|(a, b)| same_word(a, b)) {
                new.drain(..n);
                return;
            }
        }
    }
}

/// Repairs what word alignment gets wrong at the edges of Whisper's segments, before any
/// word is compared or committed:
/// - a trailing run of zero-length words is text with no audio behind it: Whisper looping on
///   the end of a trimmed buffer ("some mother, some mother") or hallucinating into silence;
/// - times are made monotonic from the end backwards (a segment's last word can be stretched
///   to the model's segment end, past the next segment's first words), so a stretched end
///   cannot push the commit boundary past words not yet committed.
pub(crate) fn clean_hypothesis(words: &mut Vec<TimedWord>) {
    while words
        .last()
        .is_some_and(|w| w.end - w.start < MIN_VOICED_WORD_S)
    {
        words.pop();
    }
    let mut next_start = f64::INFINITY;
    for w in words.iter_mut().rev() {
        w.end = w.end.min(next_start);
        w.start = w.start.min(w.end);
        next_start = w.start;
    }
}

/// Two words agree when their lower-cased letters and digits do; punctuation-only words compare
/// by their trimmed text.
fn same_word(a: &TimedWord, b: &TimedWord) -> bool {
    word_key(&a.text) == word_key(&b.text)
}

fn word_key(text: &str) -> String {
    let key: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if key.is_empty() {
        text.trim().to_string()
    } else {
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words spaced 0.5 s apart from `start`, each 0.4 s long.
    fn words(text: &str, start: f64) -> Vec<TimedWord> {
        text.split(' ')
            .enumerate()
            .map(|(i, t)| {
                let s = start + 0.5 * i as f64;
                TimedWord::new(format!(" {t}"), s, s + 0.4)
            })
            .collect()
    }

    fn texts(words: &[TimedWord]) -> String {
        join_text(words)
    }

    #[test]
    fn first_hypothesis_commits_nothing() {
        let mut buf = CommitBuffer::new(0.0);
        assert_eq!(buf.insert(words("the quick brown", 0.0)), 0);
        assert!(buf.committed().is_empty());
        assert_eq!(texts(buf.tentative()), " the quick brown");
    }

    #[test]
    fn two_hypotheses_commit_their_common_prefix() {
        let mut buf = CommitBuffer::new(0.0);
        buf.insert(words("the quick brown fax", 0.0));
        assert_eq!(buf.insert(words("the quick brown fox jumps", 0.0)), 3);
        assert_eq!(texts(buf.committed()), " the quick brown");
        assert_eq!(texts(buf.tentative()), " fox jumps");
        assert_eq!(buf.committed_end(), Some(1.4));
    }

    #[test]
    fn comparison_ignores_case_and_punctuation_and_keeps_the_newer_spelling() {
        let mut buf = CommitBuffer::new(0.0);
        buf.insert(words("hello world", 0.0));
        buf.insert(words("Hello, world.", 0.0));
        assert_eq!(texts(buf.committed()), " Hello, world.");
    }

    #[test]
    fn changed_tail_stays_tentative() {
        let mut buf = CommitBuffer::new(0.0);
        buf.insert(words("a b c d", 0.0));
        buf.insert(words("a b x y", 0.0));
        assert_eq!(texts(buf.committed()), " a b");
        // The next hypothesis re-reads committed audio; only the disagreeing tail remains.
        buf.insert(words("a b x z w", 0.0));
        assert_eq!(texts(buf.committed()), " a b x");
        assert_eq!(texts(buf.tentative()), " z w");
    }

    #[test]
    fn words_before_the_commit_are_dropped_and_timings_come_from_the_new_hypothesis() {
        let mut buf = CommitBuffer::new(0.0);
        buf.insert(words("one two three", 0.0));
        buf.insert(words("one two three four", 0.0));
        assert_eq!(buf.committed().len(), 3);
        // Re-transcription shifted by 0.05 s: old words filtered, "four five" agreed on.
        buf.insert(words("one two three four five", 0.05));
        assert_eq!(texts(buf.committed()), " one two three four");
        assert_eq!(buf.committed()[3].start, 1.55);
    }

    #[test]
    fn repeated_ngram_at_the_boundary_is_removed() {
        let mut buf = CommitBuffer::new(0.0);
        buf.insert(words("see you", 0.0));
        buf.insert(words("see you", 0.0));
        assert_eq!(texts(buf.committed()), " see you");
        // Whisper re-emits "see you" with timings after the committed end (a shifted buffer).
        buf.insert(words("see you later", 1.0));
        assert_eq!(texts(buf.tentative()), " later");
        // Far from the boundary, a repetition is real speech and stays.
        buf.insert(words("see you later", 3.0));
        assert_eq!(texts(buf.tentative()), " see you later");
    }

    #[test]
    fn a_trailing_run_of_zero_length_words_is_dropped() {
        let mut hypothesis = words("unblest some mother", 0.0);
        hypothesis.push(TimedWord::new(" some", 1.5, 1.5));
        hypothesis.push(TimedWord::new(" mother,", 1.5, 1.5));
        clean_hypothesis(&mut hypothesis);
        assert_eq!(texts(&hypothesis), " unblest some mother");
        // Inside the hypothesis a zero-length word stays: speech follows it.
        let mut inner = vec![
            TimedWord::new(" of", 1.0, 1.0),
            TimedWord::new(" it", 1.0, 1.3),
        ];
        clean_hypothesis(&mut inner);
        assert_eq!(inner.len(), 2);
    }

    #[test]
    fn a_stretched_segment_end_does_not_hide_the_next_words() {
        // As aligned at a segment boundary: "as" stretched to 11.38, "the" placed there.
        let hypothesis = vec![
            TimedWord::new(" But", 9.26, 9.44),
            TimedWord::new(" as", 9.44, 11.38),
            TimedWord::new(" the", 11.38, 11.38),
            TimedWord::new(" writer", 9.68, 10.06),
            TimedWord::new(" should", 10.06, 10.44),
        ];
        let mut buf = CommitBuffer::new(9.0);
        buf.insert(hypothesis.clone());
        buf.insert(hypothesis);
        assert_eq!(buf.committed_end(), Some(10.44));
        let times: Vec<(f64, f64)> = buf.committed().iter().map(|w| (w.start, w.end)).collect();
        assert!(times.windows(2).all(|p| p[0].1 <= p[1].0), "{times:?}");
        // The next words after the boundary are not taken for re-read audio.
        let mut next = words("But as the writer should by time", 9.0);
        next[5] = TimedWord::new(" by", 10.44, 10.74);
        next[6] = TimedWord::new(" time", 10.74, 11.04);
        buf.insert(next.clone());
        buf.insert(next);
        assert_eq!(texts(buf.committed()), " But as the writer should by time");
    }

    #[test]
    fn aligned_words_clear_of_the_frontier_commit_from_one_hypothesis() {
        let mut buf = CommitBuffer::new(0.0);
        // Words end at 0.4, 0.9, 1.4, 1.9; audio heard up to 2.0, margin 0.5: frontier 1.5.
        assert_eq!(
            buf.insert_aligned(words("the quick brown fox", 0.0), 1.5),
            3
        );
        assert_eq!(texts(buf.committed()), " the quick brown");
        assert_eq!(texts(buf.tentative()), " fox");
        // The next hypothesis re-reads the committed words; only what follows them counts,
        // and a word changed before the frontier is committed as the newer hypothesis has it.
        assert_eq!(
            buf.insert_aligned(words("the quick brown box jumps over", 0.0), 2.5),
            2
        );
        assert_eq!(texts(buf.committed()), " the quick brown box jumps");
        assert_eq!(texts(buf.tentative()), " over");
    }

    #[test]
    fn aligned_commit_stops_at_the_first_word_past_the_frontier() {
        let mut buf = CommitBuffer::new(0.0);
        // "b" stretched to 1.6 by the aligner: "c" (ending earlier) may not jump past it.
        let hypothesis = vec![
            TimedWord::new(" a", 0.0, 0.4),
            TimedWord::new(" b", 0.5, 1.6),
            TimedWord::new(" c", 1.6, 1.6),
            TimedWord::new(" d", 1.6, 1.9),
        ];
        assert_eq!(buf.insert_aligned(hypothesis, 1.5), 1);
        assert_eq!(texts(buf.tentative()), " b c d");
        // Nothing heard clear of the margin: nothing committed, all tentative.
        let mut early = CommitBuffer::new(0.0);
        assert_eq!(early.insert_aligned(words("hi", 0.0), 0.2), 0);
        assert_eq!(texts(early.tentative()), " hi");
    }

    #[test]
    fn aligned_commit_also_takes_what_two_hypotheses_agree_on() {
        let mut buf = CommitBuffer::new(0.0);
        assert_eq!(buf.insert_aligned(words("a b c", 0.0), 0.5), 1);
        // "b c" are still within the margin, but the second hypothesis agrees on "b".
        assert_eq!(buf.insert_aligned(words("a b d e", 0.0), 0.5), 1);
        assert_eq!(texts(buf.committed()), " a b");
        assert_eq!(texts(buf.tentative()), " d e");
    }

    #[test]
    fn commit_until_and_commit_all() {
        let mut buf = CommitBuffer::new(0.0);
        buf.insert(words("a b c", 0.0));
        assert_eq!(buf.commit_until(0.95), 2);
        assert_eq!(texts(buf.tentative()), " c");
        assert_eq!(buf.commit_all(), 1);
        assert_eq!(texts(buf.committed()), " a b c");
        assert!(buf.tentative().is_empty());
    }

    #[test]
    fn release_hands_over_each_committed_word_once() {
        let mut buf = CommitBuffer::new(0.0);
        buf.insert(words("a b c", 0.0));
        buf.commit_all();
        assert_eq!(texts(buf.release_until(0.9)), " a b");
        assert_eq!(texts(buf.release_until(0.9)), "");
        assert_eq!(texts(buf.release_all()), " c");
        assert!(buf.release_all().is_empty());
    }
}
