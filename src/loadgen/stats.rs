//! A round's sessions summed up: percentiles of each latency, WER, throughput, refusals.

use std::collections::BTreeMap;

use super::record::{CommitTiming, Outcome, SessionRecord};
use super::run::{Round, Workload};

/// The percentiles every latency is reported at.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Samples measured.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (any order).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            (!values.is_empty()).then(|| values[((values.len() - 1) as f64 * q).round() as usize])
        };
        Self {
            count: values.len(),
            p50: at(0.5),
            p90: at(0.9),
            p95: at(0.95),
            p99: at(0.99),
        }
    }

    /// The percentile named by `q` (50, 90, 95 or 99).
    pub fn get(&self, q: u8) -> Option<f64> {
        match q {
            50 => self.p50,
            90 => self.p90,
            95 => self.p95,
            99 => self.p99,
            _ => None,
        }
    }
}

/// A round's figures, as printed and as `--json` writes them. Latencies are seconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Aggregate {
    /// How the sessions arrived.
    pub workload: Workload,
    /// Sessions opened.
    pub sessions: usize,
    /// Sessions that got every final.
    pub completed: usize,
    /// Sessions turned away with a retryable code.
    pub refused: usize,
    /// Sessions that failed otherwise.
    pub failed: usize,
    /// Refusals and failures by code.
    pub errors_by_code: BTreeMap<String, usize>,
    /// From opening a session to its first partial text.
    pub first_interim_s: Percentiles,
    /// From sending the speech onset to the first partial text.
    pub first_words_s: Percentiles,
    /// Per committed word: arrival minus when the end of its audio was sent.
    pub commit_lag_s: Percentiles,
    /// How commit lags were measured (word timings, or spread over an item's speech).
    pub commit_timing: Option<CommitTiming>,
    /// From the end of the audio to the last final.
    pub final_latency_s: Percentiles,
    /// Word (or character) error rate of the completed sessions with references.
    pub wer: Option<f64>,
    /// Audio seconds of the completed sessions.
    pub audio_seconds: f64,
    /// The round's wall time.
    pub wall_seconds: f64,
    /// Audio seconds completed per wall second: how much speech the server keeps up with.
    pub audio_per_wall: f64,
}

impl Aggregate {
    /// Sums up `round`.
    pub fn of(round: &Round) -> Self {
        let sessions = &round.sessions;
        let completed: Vec<&SessionRecord> = sessions
            .iter()
            .filter(|s| s.outcome == Outcome::Completed)
            .collect();
        let count = |outcome| sessions.iter().filter(|s| s.outcome == outcome).count();
        let mut errors_by_code = BTreeMap::new();
        for code in sessions.iter().filter_map(|s| s.code.clone()) {
            *errors_by_code.entry(code).or_default() += 1;
        }
        let each = |f: fn(&SessionRecord) -> Option<f64>| {
            Percentiles::of(completed.iter().filter_map(|s| f(s)).collect())
        };
        let (errors, words) = completed
            .iter()
            .filter_map(|s| s.errors.zip(s.reference_words))
            .fold((0, 0), |(e, w), (se, sw)| (e + se, w + sw));
        let audio_seconds: f64 = completed.iter().map(|s| s.audio_seconds).sum();
        Self {
            workload: round.workload,
            sessions: sessions.len(),
            completed: completed.len(),
            refused: count(Outcome::Refused),
            failed: count(Outcome::Failed),
            errors_by_code,
            first_interim_s: each(|s| s.first_interim_s),
            first_words_s: each(|s| s.first_words_s),
            commit_lag_s: Percentiles::of(
                completed
                    .iter()
                    .flat_map(|s| s.commit_lags_s.iter().copied())
                    .collect(),
            ),
            commit_timing: completed.iter().find_map(|s| s.commit_timing),
            final_latency_s: each(|s| s.final_latency_s),
            wer: (words > 0).then(|| errors as f64 / words as f64),
            audio_seconds,
            wall_seconds: round.wall_s,
            audio_per_wall: if round.wall_s > 0.0 {
                audio_seconds / round.wall_s
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome, lags: &[f64], errors: usize) -> SessionRecord {
        SessionRecord {
            clip: "c".into(),
            started_s: 0.0,
            audio_seconds: 10.0,
            outcome,
            code: (outcome != Outcome::Completed).then(|| "RESOURCE_EXHAUSTED".into()),
            message: None,
            first_interim_s: Some(1.0),
            first_words_s: Some(0.5),
            commit_lags_s: lags.to_vec(),
            commit_timing: Some(CommitTiming::WordTimings),
            final_latency_s: Some(0.8),
            wall_s: 11.0,
            hypothesis: String::new(),
            errors: Some(errors),
            reference_words: Some(10),
        }
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let p = Percentiles::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99), (Some(51.0), Some(90.0), Some(99.0)));
        assert_eq!(p.count, 100);
        assert_eq!(Percentiles::of(vec![]).p50, None);
    }

    #[test]
    fn a_round_sums_its_completed_sessions_and_counts_the_rest() {
        let round = Round {
            workload: Workload::Concurrency(3),
            wall_s: 10.0,
            sessions: vec![
                record(Outcome::Completed, &[1.0, 2.0], 1),
                record(Outcome::Completed, &[3.0], 2),
                record(Outcome::Refused, &[], 0),
            ],
        };
        let a = Aggregate::of(&round);
        assert_eq!((a.sessions, a.completed, a.refused, a.failed), (3, 2, 1, 0));
        assert_eq!(a.errors_by_code["RESOURCE_EXHAUSTED"], 1);
        assert_eq!(a.commit_lag_s.count, 3);
        assert_eq!(a.commit_lag_s.p50, Some(2.0));
        // 3 errors in 20 reference words: the refused session's reference does not count.
        assert_eq!(a.wer, Some(0.15));
        assert_eq!(a.audio_per_wall, 2.0);
    }
}
