//! Latency targets (`--slo final_p95=2s,commit_p90=4s`) and the search for the largest
//! concurrency that meets them.

use anyhow::{Context, bail};

use super::stats::{Aggregate, Percentiles};

/// A latency the targets can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Latency {
    FirstInterim,
    FirstWords,
    Commit,
    Final,
}

impl Latency {
    const ALL: [(&'static str, Latency); 4] = [
        ("first_interim", Latency::FirstInterim),
        ("first_words", Latency::FirstWords),
        ("commit", Latency::Commit),
        ("final", Latency::Final),
    ];

    fn of(self, a: &Aggregate) -> &Percentiles {
        match self {
            Latency::FirstInterim => &a.first_interim_s,
            Latency::FirstWords => &a.first_words_s,
            Latency::Commit => &a.commit_lag_s,
            Latency::Final => &a.final_latency_s,
        }
    }
}

/// One target.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    /// A percentile of a latency at most this many seconds.
    Latency {
        name: String,
        latency: Latency,
        quantile: u8,
        limit_s: f64,
    },
    /// Word error rate at most this fraction.
    Wer(f64),
    /// At most this fraction of sessions refused.
    Refused(f64),
}

/// What a round must meet. Failed sessions (errors other than a retryable refusal) always
/// miss; refusals miss unless `refused=` allows some.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Slo(Vec<Term>);

impl Slo {
    /// Parses `name=value,...`: `<latency>_p<50|90|95|99>=<seconds>s` (latency `first_interim`,
    /// `first_words`, `commit`, `final`; `ms` also taken), `wer=<percent>%` and
    /// `refused=<percent>%`.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let terms = spec
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(parse_term)
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!terms.is_empty(), "--slo names no target");
        Ok(Self(terms))
    }

    /// What `round` misses, in words; empty when it meets every target.
    pub fn misses(&self, round: &Aggregate) -> Vec<String> {
        let mut misses = Vec::new();
        if round.failed > 0 {
            misses.push(format!("{} sessions failed", round.failed));
        }
        if round.completed == 0 {
            misses.push("no session completed".into());
        }
        let refused = round.refused as f64 / round.sessions.max(1) as f64;
        let allowed = self
            .0
            .iter()
            .find_map(|t| match t {
                Term::Refused(limit) => Some(*limit),
                _ => None,
            })
            .unwrap_or(0.0);
        if refused > allowed {
            misses.push(format!("{:.0} % refused", 100.0 * refused));
        }
        for term in &self.0 {
            match term {
                Term::Latency {
                    name,
                    latency,
                    quantile,
                    limit_s,
                } => match latency.of(round).get(*quantile) {
                    Some(v) if v <= *limit_s => {}
                    Some(v) => misses.push(format!("{name} {v:.2} s > {limit_s} s")),
                    None => misses.push(format!("{name} not measured")),
                },
                Term::Wer(limit) => match round.wer {
                    Some(w) if w <= *limit => {}
                    Some(w) => {
                        misses.push(format!("WER {:.2} % > {:.2} %", 100.0 * w, 100.0 * limit))
                    }
                    None => misses.push("WER not measured (no references)".into()),
                },
                Term::Refused(_) => {}
            }
        }
        misses
    }
}

fn parse_term(term: &str) -> anyhow::Result<Term> {
    let (name, value) = term
        .split_once('=')
        .with_context(|| format!("--slo term {term:?} is not name=value"))?;
    match name {
        "wer" => return Ok(Term::Wer(percent(name, value)?)),
        "refused" => return Ok(Term::Refused(percent(name, value)?)),
        _ => {}
    }
    let known = || {
        Latency::ALL
            .iter()
            .map(|(n, _)| format!("{n}_p95"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((base, quantile)) = name.rsplit_once("_p") else {
        bail!(
            "--slo: unknown target {name:?}; use wer, refused or a latency like {}",
            known()
        );
    };
    let latency = Latency::ALL
        .iter()
        .find(|(n, _)| *n == base)
        .map(|(_, l)| *l)
        .with_context(|| format!("--slo: unknown latency {base:?}; use one of {}", known()))?;
    let quantile: u8 = quantile
        .parse()
        .ok()
        .filter(|q| [50, 90, 95, 99].contains(q))
        .with_context(|| format!("--slo {name}: the percentile must be p50, p90, p95 or p99"))?;
    let limit_s = match value.strip_suffix("ms") {
        Some(ms) => number(name, ms)? / 1000.0,
        None => number(name, value.strip_suffix('s').unwrap_or(value))?,
    };
    Ok(Term::Latency {
        name: name.to_string(),
        latency,
        quantile,
        limit_s,
    })
}

fn number(name: &str, value: &str) -> anyhow::Result<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .with_context(|| format!("--slo {name}={value}: not a non-negative number"))
}

/// `10%` or `0.1`, as a fraction.
fn percent(name: &str, value: &str) -> anyhow::Result<f64> {
    match value.strip_suffix('%') {
        Some(p) => Ok(number(name, p)? / 100.0),
        None => number(name, value),
    }
}

/// The search for the largest concurrency meeting the targets: double from 1 while rounds
/// pass, then bisect between the last pass and the first miss. Sans I/O: the caller runs
/// the round [`next`](Self::next) names and reports it.
#[derive(Debug, Clone)]
pub struct CapacitySearch {
    max: usize,
    /// The largest concurrency that passed.
    passed: Option<usize>,
    /// The smallest that missed.
    missed: Option<usize>,
}

impl CapacitySearch {
    /// A search up to `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            passed: None,
            missed: None,
        }
    }

    /// The concurrency to try next; `None` when the answer is known.
    pub fn next(&self) -> Option<usize> {
        match (self.passed, self.missed) {
            (None, None) => Some(1),
            (Some(p), None) => (p < self.max).then(|| (2 * p).min(self.max)),
            (None, Some(_)) => None,
            (Some(p), Some(m)) => (m > p + 1).then(|| p + (m - p) / 2),
        }
    }

    /// Reports how `sessions` did.
    pub fn report(&mut self, sessions: usize, passed: bool) {
        if passed {
            self.passed = self.passed.max(Some(sessions));
        } else {
            self.missed = Some(self.missed.map_or(sessions, |m| m.min(sessions)));
        }
    }

    /// The largest concurrency that met the targets.
    pub fn largest(&self) -> Option<usize> {
        self.passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::run::{Round, Workload};

    fn round(final_p95: f64, wer: f64, refused: usize) -> Aggregate {
        let mut a = Aggregate::of(&Round {
            workload: Workload::Concurrency(4),
            wall_s: 1.0,
            sessions: vec![],
        });
        a.sessions = 10;
        a.completed = 10 - refused;
        a.refused = refused;
        a.final_latency_s = Percentiles::of(vec![final_p95]);
        a.wer = Some(wer);
        a
    }

    #[test]
    fn targets_parse_and_judge_a_round() {
        let slo = Slo::parse("final_p95=2s, commit_p90=4000ms,wer=10%").unwrap();
        let misses = slo.misses(&round(1.5, 0.05, 0));
        assert_eq!(misses, ["commit_p90 not measured"]);
        let slo = Slo::parse("final_p95=2s,wer=10%").unwrap();
        assert!(slo.misses(&round(1.5, 0.05, 0)).is_empty());
        assert_eq!(slo.misses(&round(2.5, 0.05, 0)), ["final_p95 2.50 s > 2 s"]);
        assert_eq!(slo.misses(&round(1.0, 0.2, 0)), ["WER 20.00 % > 10.00 %"]);
        assert_eq!(slo.misses(&round(1.0, 0.0, 1)), ["10 % refused"]);
        let lenient = Slo::parse("final_p95=2s,refused=20%").unwrap();
        assert!(lenient.misses(&round(1.0, 0.0, 1)).is_empty());
    }

    #[test]
    fn bad_targets_are_named() {
        for (spec, says) in [
            ("final=2s", "unknown target"),
            ("latency_p95=2s", "unknown latency \"latency\""),
            ("final_p42=2s", "p50, p90, p95 or p99"),
            ("final_p95=soon", "not a non-negative number"),
            ("final_p95", "not name=value"),
            ("", "names no target"),
        ] {
            let err = Slo::parse(spec).unwrap_err().to_string();
            assert!(err.contains(says), "{spec:?}: {err}");
        }
    }

    #[test]
    fn the_search_doubles_then_bisects() {
        // Capacity 5 out of at most 64: 1, 2, 4, 8 (miss), 6 (miss), 5.
        let mut search = CapacitySearch::new(64);
        let mut tried = Vec::new();
        while let Some(n) = search.next() {
            tried.push(n);
            search.report(n, n <= 5);
        }
        assert_eq!(tried, [1, 2, 4, 8, 6, 5]);
        assert_eq!(search.largest(), Some(5));
        // Everything passes: stops at the maximum.
        let mut search = CapacitySearch::new(12);
        let mut tried = Vec::new();
        while let Some(n) = search.next() {
            tried.push(n);
            search.report(n, true);
        }
        assert_eq!(tried, [1, 2, 4, 8, 12]);
        // Nothing passes.
        let mut search = CapacitySearch::new(12);
        search.report(search.next().unwrap(), false);
        assert_eq!((search.next(), search.largest()), (None, None));
    }
}
