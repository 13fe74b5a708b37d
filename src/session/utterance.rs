//! One utterance's transcript state: its commit buffer, the request in flight, where its
//! buffer may be cut, and the [`TranscriptUpdate`]s it reports.
//!
//! The audio itself lives in the policy; this type only sees times, so trimming decisions are
//! plain functions of committed words and segment ends, tested on their own.

use super::commit::{CommitBuffer, join_text};
use super::{Hypothesis, StreamingPolicy, TimedWord, TranscriptUpdate, seconds};

/// The request an utterance is waiting on; its audio is `start_sample..end_sample`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct InFlight {
    pub(crate) request_id: u64,
    pub(crate) start_sample: u64,
    pub(crate) end_sample: u64,
    pub(crate) is_final: bool,
}

impl InFlight {
    pub(crate) fn start_seconds(&self) -> f64 {
        seconds(self.start_sample)
    }

    pub(crate) fn end_seconds(&self) -> f64 {
        seconds(self.end_sample)
    }
}

#[derive(Debug)]
pub(crate) struct Utterance {
    pub(crate) id: u64,
    pub(crate) commits: CommitBuffer,
    pub(crate) in_flight: Option<InFlight>,
    /// Stream sample where the last request's audio ended (interim requests are spaced by it).
    pub(crate) requested_until: u64,
    start_sample: u64,
    start_seconds: f64,
    revision: u64,
    reported_committed: usize,
    reported_tentative: String,
    /// Some of its audio was dropped untranscribed (see [`TranscriptUpdate::audio_dropped`]).
    pub(crate) audio_dropped: bool,
}

impl Utterance {
    pub(crate) fn new(id: u64, start_sample: u64) -> Self {
        Self {
            id,
            commits: CommitBuffer::new(seconds(start_sample)),
            in_flight: None,
            requested_until: start_sample,
            start_sample,
            start_seconds: seconds(start_sample),
            revision: 0,
            reported_committed: 0,
            reported_tentative: String::new(),
            audio_dropped: false,
        }
    }

    /// No request of it was made yet.
    pub(crate) fn awaits_first_request(&self) -> bool {
        self.requested_until == self.start_sample
    }

    /// Feeds a result for `request` to the commit buffer under `policy`; a final one commits
    /// everything.
    pub(crate) fn accept(
        &mut self,
        request: InFlight,
        hypothesis: &Hypothesis,
        policy: StreamingPolicy,
    ) {
        let words = absolute(&hypothesis.words, request);
        match policy {
            StreamingPolicy::LocalAgreement => self.commits.insert(words),
            StreamingPolicy::AlignAtt { margin_seconds } => self
                .commits
                .insert_aligned(words, request.end_seconds() - margin_seconds),
        };
        if request.is_final {
            self.commits.commit_all();
        }
    }

    /// Where the buffer may be cut after committed text: the latest segment end (absolute) at
    /// or before the last committed word's end, else that end; never inside the first
    /// tentative word.
    pub(crate) fn trim_point(&self, segment_ends: &[f64]) -> Option<f64> {
        let committed_end = self.commits.committed_end()?;
        let segment_end = segment_ends
            .iter()
            .copied()
            .filter(|&e| e <= committed_end && e > self.start_seconds)
            .reduce(f64::max);
        Some(
            segment_end
                .unwrap_or(committed_end)
                .min(self.next_tentative_start()),
        )
    }

    /// Forces progress when commits stall: commits the tentative words that end by `guard`
    /// and returns the cut point after them (or `guard` itself when no word is near it).
    pub(crate) fn force_commit(&mut self, guard: f64) -> f64 {
        self.commits.commit_until(guard);
        let committed_end = self.commits.committed_end().unwrap_or(f64::NEG_INFINITY);
        committed_end.max(guard).min(self.next_tentative_start())
    }

    fn next_tentative_start(&self) -> f64 {
        self.commits
            .tentative()
            .first()
            .map_or(f64::INFINITY, |w| w.start)
    }

    /// The update after a result covering audio up to `end_seconds`, or `None` when an interim
    /// result changed nothing.
    pub(crate) fn update(&mut self, end_seconds: f64, is_final: bool) -> Option<TranscriptUpdate> {
        let committed_words = self.commits.committed();
        let words: Vec<TimedWord> = committed_words
            .iter()
            .chain(self.commits.tentative())
            .cloned()
            .collect();
        let committed = join_text(committed_words).trim_start().to_string();
        // Utterance text is trimmed as a whole, so the split stays exact: committed + tentative.
        let full = join_text(&words);
        let tentative = full.trim_start()[committed.len()..].to_string();
        let committed_delta = committed[self.reported_committed..].to_string();
        if !is_final && committed_delta.is_empty() && tentative == self.reported_tentative {
            return None;
        }
        self.revision += 1;
        self.reported_committed = committed.len();
        self.reported_tentative.clone_from(&tentative);
        let stability = match words.len() {
            0 if is_final => 1.0,
            0 => 0.0,
            n => committed_words.len() as f32 / n as f32,
        };
        Some(TranscriptUpdate {
            utterance_id: self.id,
            revision: self.revision,
            committed_delta,
            committed,
            tentative,
            is_final,
            stability,
            start_seconds: words.first().map_or(self.start_seconds, |w| w.start),
            end_seconds,
            committed_words: committed_words.len(),
            words,
            audio_dropped: self.audio_dropped,
        })
    }
}

/// Moves a hypothesis' words to stream time, clamped to the request's audio.
fn absolute(words: &[TimedWord], request: InFlight) -> Vec<TimedWord> {
    let (from, to) = (request.start_seconds(), request.end_seconds());
    words
        .iter()
        .map(|w| TimedWord {
            start: (w.start + from).clamp(from, to),
            end: (w.end + from).clamp(from, to),
            ..w.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::test_support::hyp_every;

    const LA: StreamingPolicy = StreamingPolicy::LocalAgreement;

    fn hyp(text: &str) -> Hypothesis {
        hyp_every(text, 0.5)
    }

    fn request(id: u64, start: f64, end: f64, is_final: bool) -> InFlight {
        InFlight {
            request_id: id,
            start_sample: (start * 16_000.0) as u64,
            end_sample: (end * 16_000.0) as u64,
            is_final,
        }
    }

    #[test]
    fn updates_split_committed_and_tentative_and_skip_no_change() {
        let mut u = Utterance::new(7, 16_000);
        u.accept(request(1, 1.0, 3.0, false), &hyp("hello there world"), LA);
        let first = u.update(3.0, false).unwrap();
        assert_eq!((first.revision, first.committed.as_str()), (1, ""));
        assert_eq!(first.tentative, "hello there world");
        assert_eq!(first.words[0].start, 1.0, "times are absolute");
        assert_eq!(first.stability, 0.0);

        u.accept(
            request(2, 1.0, 4.0, false),
            &hyp("hello there word again"),
            LA,
        );
        let second = u.update(4.0, false).unwrap();
        assert_eq!(second.committed, "hello there");
        assert_eq!(second.committed_delta, "hello there");
        assert_eq!(second.tentative, " word again");
        assert_eq!(second.text(), "hello there word again");
        assert_eq!(second.stability, 0.5);
        assert_eq!(second.committed_words, 2);

        // Same hypothesis again: "word again" agrees and is committed.
        u.accept(
            request(3, 1.0, 4.0, false),
            &hyp("hello there word again"),
            LA,
        );
        let third = u.update(4.0, false).unwrap();
        assert_eq!(third.committed_delta, " word again");
        assert_eq!((third.revision, third.tentative.as_str()), (3, ""));
        // Nothing new at all: no update.
        u.accept(
            request(4, 1.0, 4.0, false),
            &hyp("hello there word again"),
            LA,
        );
        assert!(u.update(4.0, false).is_none());
    }

    #[test]
    fn final_commits_everything_and_always_reports() {
        let mut u = Utterance::new(1, 0);
        u.accept(request(1, 0.0, 2.0, false), &hyp("a b c"), LA);
        u.accept(request(2, 0.0, 2.0, true), &hyp("a b d"), LA);
        let fin = u.update(2.0, true).unwrap();
        assert!(fin.is_final);
        assert_eq!(
            (fin.committed.as_str(), fin.tentative.as_str()),
            ("a b d", "")
        );
        assert_eq!(fin.stability, 1.0);

        let mut empty = Utterance::new(2, 0);
        empty.accept(request(3, 0.0, 1.0, true), &Hypothesis::default(), LA);
        let fin = empty.update(1.0, true).unwrap();
        assert_eq!((fin.text().as_str(), fin.revision), ("", 1));
    }

    #[test]
    fn trim_point_prefers_segment_ends_within_committed_text() {
        let mut u = Utterance::new(1, 0);
        assert_eq!(u.trim_point(&[]), None, "nothing committed, nothing to cut");
        u.accept(request(1, 0.0, 3.0, false), &hyp("a b c d e"), LA);
        u.accept(request(2, 0.0, 3.0, false), &hyp("a b c d f"), LA);
        // Committed "a b c d" ends at 1.9; tentative "f" starts at 2.0.
        assert_eq!(u.trim_point(&[]), Some(1.9));
        assert_eq!(u.trim_point(&[0.95, 1.45, 2.4]), Some(1.45));
        // A tentative word starting inside the committed end bounds the cut.
        let mut v = Utterance::new(1, 0);
        let overlap = |w: &str| {
            Hypothesis::from_words(vec![
                TimedWord::new(" a", 0.0, 1.0),
                TimedWord::new(w, 0.8, 1.5),
            ])
        };
        v.accept(request(1, 0.0, 2.0, false), &overlap(" x"), LA);
        v.accept(request(2, 0.0, 2.0, false), &overlap(" y"), LA);
        assert_eq!(v.trim_point(&[]), Some(0.8));
    }

    #[test]
    fn force_commit_takes_words_clear_of_the_guard() {
        let mut u = Utterance::new(1, 0);
        u.accept(request(1, 0.0, 3.0, false), &hyp("a b c d e f"), LA);
        // Words end at 0.4, 0.9, ..., 2.9; guard 2.0 commits four, cuts before "e" (2.0).
        assert_eq!(u.force_commit(2.0), 2.0);
        assert_eq!(u.commits.committed().len(), 4);
        let mut empty = Utterance::new(2, 0);
        empty.accept(request(2, 0.0, 20.0, false), &Hypothesis::default(), LA);
        assert_eq!(empty.force_commit(19.0), 19.0);
    }
}
