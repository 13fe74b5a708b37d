//! Logit rules applied before each token is chosen: suppressed tokens, no blank at the start,
//! and Whisper's timestamp grammar (openai-whisper `ApplyTimestampRules`).
//!
//! They run on one row of f32 logits on the CPU; a row is ~52k floats, far cheaper than the
//! decoder step that produced it.

use crate::model::whisper::tokens::SpecialTokens;

/// The fixed part of the rules, shared by every row of a batch.
#[derive(Debug, Clone)]
pub struct LogitRules {
    /// Tokens never sampled.
    pub suppress: Vec<u32>,
    /// Tokens banned at the first sampled position (blank, end of text).
    pub suppress_at_begin: Vec<u32>,
    /// Special token ids.
    pub special: SpecialTokens,
    /// Largest timestamp index allowed as the first token (50 = 1.0 s), if limited.
    pub max_initial_timestamp_index: Option<u32>,
}

impl LogitRules {
    /// Applies every rule to `logits` for a row whose sampled tokens so far are `sampled`; the
    /// timestamp grammar only for a row decoding with `timestamps` (without, the row runs with
    /// `<|notimestamps|>`).
    pub fn apply(&self, logits: &mut [f32], sampled: &[u32], timestamps: bool) {
        if sampled.is_empty() {
            suppress(logits, &self.suppress_at_begin);
        }
        suppress(logits, &self.suppress);
        if timestamps {
            self.apply_timestamp_rules(logits, sampled);
        }
    }

    fn apply_timestamp_rules(&self, logits: &mut [f32], sampled: &[u32]) {
        let ts_begin = self.special.timestamp_begin as usize;
        let eot = self.special.eot as usize;
        logits[self.special.no_timestamps as usize] = f32::NEG_INFINITY;

        let is_ts = |t: &u32| *t as usize >= ts_begin;
        let last_was_ts = sampled.last().is_some_and(is_ts);
        let penultimate_was_ts = sampled.len() < 2 || is_ts(&sampled[sampled.len() - 2]);
        if last_was_ts {
            if penultimate_was_ts {
                // A pair of timestamps closed a segment: text must follow.
                fill(&mut logits[ts_begin..]);
            } else {
                // A lone timestamp ends a segment: another timestamp or end of text must follow.
                fill(&mut logits[..eot]);
            }
        }
        if let Some(&last_ts) = sampled.iter().rev().find(|t| is_ts(t)) {
            // Timestamps never go backwards; after a closing timestamp they must advance.
            let floor = if last_was_ts && !penultimate_was_ts {
                last_ts
            } else {
                last_ts + 1
            };
            let end = (floor as usize).min(logits.len());
            fill(&mut logits[ts_begin..end]);
        }
        if sampled.is_empty() {
            // The first token is a timestamp, and not too far into the window.
            fill(&mut logits[..ts_begin]);
            if let Some(max) = self.max_initial_timestamp_index {
                let last_allowed = ts_begin + max as usize;
                if last_allowed + 1 < logits.len() {
                    fill(&mut logits[last_allowed + 1..]);
                }
            }
        }
        // If timestamps together are likelier than any single text token, force a timestamp.
        let log_probs = log_softmax(logits);
        let ts_logprob = log_sum_exp(&log_probs[ts_begin..]);
        let max_text = log_probs[..ts_begin]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if ts_logprob > max_text {
            fill(&mut logits[..ts_begin]);
        }
    }
}

fn suppress(logits: &mut [f32], tokens: &[u32]) {
    for &t in tokens {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

fn fill(slice: &mut [f32]) {
    slice.fill(f32::NEG_INFINITY);
}

pub(super) use crate::model::whisper::ops::log_sum_exp;

/// Log-probabilities of a row of logits.
pub(super) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&x| x - lse).collect()
}

/// Special tokens of a toy vocabulary for tests: text 0–4, end of text 5, the other
/// specials 6–12, timestamps from 13.
#[cfg(test)]
pub(super) fn toy_special_tokens() -> SpecialTokens {
    SpecialTokens {
        eot: 5,
        sot: 6,
        translate: 7,
        transcribe: 8,
        sot_lm: 9,
        sot_prev: 10,
        no_speech: 11,
        no_timestamps: 12,
        timestamp_begin: 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> LogitRules {
        LogitRules {
            suppress: vec![3],
            suppress_at_begin: vec![1, 5],
            special: toy_special_tokens(),
            max_initial_timestamp_index: Some(2),
        }
    }

    fn allowed(logits: &[f32]) -> Vec<usize> {
        (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect()
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        let mut logits = vec![0.0; 20];
        rules().apply(&mut logits, &[], true);
        assert_eq!(allowed(&logits), vec![13, 14, 15]);
    }

    #[test]
    fn text_follows_a_timestamp_pair_and_timestamps_never_go_back() {
        let mut logits = vec![0.0; 20];
        rules().apply(&mut logits, &[13, 0, 15, 15], true);
        assert_eq!(allowed(&logits), vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]);
        let mut logits = vec![0.0; 20];
        logits[0] = 10.0; // text is far likelier than any timestamp
        rules().apply(&mut logits, &[13, 0, 2], true);
        assert!(!allowed(&logits).contains(&13), "{:?}", allowed(&logits));
    }

    #[test]
    fn lone_timestamp_is_followed_by_timestamp_or_end() {
        let mut logits = vec![0.0; 20];
        logits[5] = 5.0; // end of text is likely, so timestamps are not forced
        rules().apply(&mut logits, &[13, 0, 16], true);
        assert_eq!(
            allowed(&logits),
            vec![5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19]
        );
    }

    #[test]
    fn likely_timestamps_beat_text() {
        let mut logits = vec![0.0; 20];
        for l in &mut logits[13..] {
            *l = 1.0;
        }
        rules().apply(&mut logits, &[13, 0], true);
        assert!(allowed(&logits).iter().all(|&t| t >= 13));
    }

    #[test]
    fn log_softmax_normalises() {
        let lp = log_softmax(&[1.0, 2.0, 3.0]);
        let total: f32 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
