//! Workloads: how many sessions run at once and which clip each plays.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use super::clips::Clip;
use super::drivers::run_session;
use super::record::{Outcome, Pace, SessionRecord};
use super::target::{Protocol, Target};

/// How sessions arrive.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// This many sessions at once, each starting the next clip when its last ends.
    Concurrency(usize),
    /// Sessions opened at random (Poisson) times, this many per second on average, however
    /// many are still running.
    Arrivals(f64),
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workload::Concurrency(n) => write!(f, "{n} concurrent"),
            Workload::Arrivals(rate) => write!(f, "{rate}/s arrivals"),
        }
    }
}

/// What every round of a run shares.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How the audio is paced.
    pub pace: Pace,
    /// Open sessions until this much time has passed (sessions under way finish). `None`:
    /// concurrency rounds play every clip once, shared among the sessions; arrival rounds need
    /// a duration.
    pub duration: Option<Duration>,
    /// With a concurrency and no duration: each session plays this many clips in turn
    /// (cycling through the clips) instead of sharing them.
    pub clips_per_session: Option<usize>,
    /// Seeds the arrival times, so that two runs see the same arrivals.
    pub seed: u64,
}

/// The sessions of one round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    /// How they arrived.
    pub workload: Workload,
    /// From the first session's opening to the last one's end.
    pub wall_s: f64,
    /// One per session, in the order they opened.
    pub sessions: Vec<SessionRecord>,
}

/// Counts shared by the sessions of a round, for the live progress line.
#[derive(Debug, Default)]
pub struct Progress {
    opened: AtomicUsize,
    completed: AtomicUsize,
    refused: AtomicUsize,
    failed: AtomicUsize,
}

impl Progress {
    /// Plays `clip` through one session, counted as it opens and ends.
    async fn play(
        &self,
        target: &Target,
        clip: &Clip,
        pace: Pace,
        run_started: Instant,
    ) -> SessionRecord {
        self.opened.fetch_add(1, Ordering::Relaxed);
        let record = run_session(target, clip, pace, run_started).await;
        let counter = match record.outcome {
            Outcome::Completed => &self.completed,
            Outcome::Refused => &self.refused,
            Outcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        record
    }

    fn line(&self, label: &str, elapsed: Duration) -> String {
        let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        let ended = load(&self.completed) + load(&self.refused) + load(&self.failed);
        format!(
            "{label}: {:>6.1} s, {} live, {} completed, {} refused, {} failed",
            elapsed.as_secs_f64(),
            load(&self.opened).saturating_sub(ended),
            load(&self.completed),
            load(&self.refused),
            load(&self.failed),
        )
    }
}

/// Runs one round of `workload` against `target`; a progress line is kept on stderr when it
/// is a terminal.
pub async fn run_round(
    target: &Arc<Target>,
    clips: &Arc<Vec<Clip>>,
    workload: Workload,
    options: &RunOptions,
) -> anyhow::Result<Round> {
    anyhow::ensure!(!clips.is_empty(), "no clips to play");
    if target.protocol == Protocol::Realtime {
        // Resampled once per clip, on the blocking pool, not by every session on a worker.
        let clips = Arc::clone(clips);
        tokio::task::spawn_blocking(move || {
            clips.iter().try_for_each(|c| c.realtime_frames().map(drop))
        })
        .await
        .context("preparing the clips")??;
    }
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let printer = std::io::stderr().is_terminal().then(|| {
        let (progress, label) = (Arc::clone(&progress), workload.to_string());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                eprint!("\r{}\x1b[K", progress.line(&label, started.elapsed()));
            }
        })
    });
    let mut sessions = match workload {
        Workload::Concurrency(n) => concurrent(target, clips, n, options, &progress).await?,
        Workload::Arrivals(rate) => arrivals(target, clips, rate, options, &progress).await?,
    };
    if let Some(printer) = printer {
        printer.abort();
        eprint!("\r\x1b[K");
    }
    sessions.sort_by(|a, b| a.started_s.total_cmp(&b.started_s));
    Ok(Round {
        workload,
        wall_s: started.elapsed().as_secs_f64(),
        sessions,
    })
}

/// Which clip a concurrent session plays next.
#[derive(Debug)]
enum Playlist {
    /// Every clip once, whoever is free takes the next.
    Shared(AtomicUsize),
    /// Session `s` plays clips `s, s + n, s + 2n, ...` (cyclically), this many.
    PerSession(usize),
    /// The next clip cyclically, until the deadline.
    Until(Instant, AtomicUsize),
}

impl Playlist {
    fn next(&self, session: usize, turn: usize, sessions: usize, clips: usize) -> Option<usize> {
        match self {
            Playlist::Shared(next) => {
                Some(next.fetch_add(1, Ordering::Relaxed)).filter(|&i| i < clips)
            }
            Playlist::PerSession(turns) => {
                (turn < *turns).then_some((session + turn * sessions) % clips)
            }
            Playlist::Until(deadline, next) => {
                (Instant::now() < *deadline).then(|| next.fetch_add(1, Ordering::Relaxed) % clips)
            }
        }
    }
}

async fn concurrent(
    target: &Arc<Target>,
    clips: &Arc<Vec<Clip>>,
    n: usize,
    options: &RunOptions,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<SessionRecord>> {
    anyhow::ensure!(n > 0, "a round needs at least one session");
    let run_started = Instant::now();
    let playlist = Arc::new(match (options.duration, options.clips_per_session) {
        (Some(duration), _) => Playlist::Until(run_started + duration, AtomicUsize::new(0)),
        (None, Some(turns)) => Playlist::PerSession(turns.max(1)),
        (None, None) => Playlist::Shared(AtomicUsize::new(0)),
    });
    let mut tasks = JoinSet::new();
    for session in 0..n {
        let (target, clips, playlist) =
            (Arc::clone(target), Arc::clone(clips), Arc::clone(&playlist));
        let (progress, pace) = (Arc::clone(progress), options.pace);
        tasks.spawn(async move {
            let mut records = Vec::new();
            for turn in 0.. {
                let Some(index) = playlist.next(session, turn, n, clips.len()) else {
                    break;
                };
                records.push(
                    progress
                        .play(&target, &clips[index], pace, run_started)
                        .await,
                );
            }
            records
        });
    }
    let mut records = Vec::new();
    while let Some(done) = tasks.join_next().await {
        records.extend(done.context("a session task panicked")?);
    }
    Ok(records)
}

async fn arrivals(
    target: &Arc<Target>,
    clips: &Arc<Vec<Clip>>,
    rate: f64,
    options: &RunOptions,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<SessionRecord>> {
    anyhow::ensure!(
        rate > 0.0,
        "the arrival rate must be above 0 sessions per second"
    );
    let duration = options
        .duration
        .context("an arrival rate needs a --duration to open sessions for")?;
    let run_started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut gaps = ExponentialGaps::new(rate, options.seed);
    let mut next_at = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0.. {
        next_at += gaps.next();
        if next_at >= deadline {
            break;
        }
        tokio::time::sleep_until(next_at).await;
        let (target, clips, progress) =
            (Arc::clone(target), Arc::clone(clips), Arc::clone(progress));
        let pace = options.pace;
        tasks.spawn(async move {
            let clip = &clips[index % clips.len()];
            progress.play(&target, clip, pace, run_started).await
        });
    }
    let mut records = Vec::new();
    while let Some(done) = tasks.join_next().await {
        records.push(done.context("a session task panicked")?);
    }
    Ok(records)
}

/// Times between Poisson arrivals: exponential with mean `1 / rate`, from a seeded
/// xorshift64* generator (a load test wants the same arrivals on every run, not secrecy).
struct ExponentialGaps {
    rate: f64,
    state: u64,
}

impl ExponentialGaps {
    fn new(rate: f64, seed: u64) -> Self {
        Self {
            rate,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> Duration {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let bits = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        // Uniform in (0, 1]: never ln(0).
        let uniform = (bits as f64 + 1.0) / (1u64 << 53) as f64;
        Duration::from_secs_f64(-uniform.ln() / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_gaps_average_the_inverse_rate_and_repeat_with_the_seed() {
        let mut gaps = ExponentialGaps::new(4.0, 7);
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| gaps.next().as_secs_f64()).sum::<f64>() / n as f64;
        assert!((mean - 0.25).abs() < 0.01, "mean gap {mean}");
        let a: Vec<Duration> = (0..5)
            .map({
                let mut g = ExponentialGaps::new(4.0, 7);
                move |_| g.next()
            })
            .collect();
        let b: Vec<Duration> = (0..5)
            .map({
                let mut g = ExponentialGaps::new(4.0, 7);
                move |_| g.next()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], ExponentialGaps::new(4.0, 8).next());
    }

    #[test]
    fn playlists_share_or_split_the_clips() {
        let shared = Playlist::Shared(AtomicUsize::new(0));
        let taken: Vec<_> = (0..5).map(|s| shared.next(s % 2, 0, 2, 3)).collect();
        assert_eq!(taken, [Some(0), Some(1), Some(2), None, None]);
        let split = Playlist::PerSession(2);
        assert_eq!(split.next(1, 0, 2, 3), Some(1));
        assert_eq!(split.next(1, 1, 2, 3), Some(0));
        assert_eq!(split.next(1, 2, 2, 3), None);
        let over = Playlist::Until(Instant::now(), AtomicUsize::new(0));
        assert_eq!(over.next(0, 0, 1, 3), None);
    }
}
