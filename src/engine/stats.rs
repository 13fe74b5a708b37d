//! Scheduler counters: how full batches are, how long jobs wait, how long the model runs.
//!
//! Each event updates both the in-process totals ([`EngineStats`]) and the OpenTelemetry
//! instruments ([`EngineMetrics`]), in one call, so the two views cannot drift apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::EngineError;
use crate::telemetry::EngineMetrics;

/// Running totals, updated by the worker after every batch.
#[derive(Debug)]
pub(super) struct Counters {
    batches: AtomicU64,
    rows: AtomicU64,
    largest_batch: AtomicU64,
    jobs_submitted: AtomicU64,
    jobs_rejected: AtomicU64,
    jobs_done: AtomicU64,
    jobs_failed: AtomicU64,
    jobs_cancelled_queued: AtomicU64,
    jobs_cancelled_running: AtomicU64,
    queue_wait_us: AtomicU64,
    admitted: AtomicU64,
    model_us: AtomicU64,
    metrics: EngineMetrics,
}

impl Counters {
    pub(super) fn new(metrics: EngineMetrics) -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            batches: zero(),
            rows: zero(),
            largest_batch: zero(),
            jobs_submitted: zero(),
            jobs_rejected: zero(),
            jobs_done: zero(),
            jobs_failed: zero(),
            jobs_cancelled_queued: zero(),
            jobs_cancelled_running: zero(),
            queue_wait_us: zero(),
            admitted: zero(),
            model_us: zero(),
            metrics,
        }
    }

    /// The instruments, for observers registered by the engine (queue depth).
    pub(super) fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// One batched model call over `rows` windows that decoded `audio_seconds` of audio.
    pub(super) fn record_batch(&self, rows: usize, model_time: Duration, audio_seconds: f64) {
        self.metrics.batch(rows, model_time, audio_seconds);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.largest_batch.fetch_max(rows as u64, Ordering::Relaxed);
        self.model_us
            .fetch_add(model_time.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn record_admitted(&self, waited: Duration) {
        self.metrics.admitted(waited);
        self.admitted.fetch_add(1, Ordering::Relaxed);
        self.queue_wait_us
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn record_done(&self) {
        self.metrics.completed();
        self.jobs_done.fetch_add(1, Ordering::Relaxed);
    }

    /// A job's caller went away; `running` says whether it had been admitted.
    pub(super) fn record_cancelled(&self, running: bool) {
        self.metrics.cancelled(running);
        let counter = if running {
            &self.jobs_cancelled_running
        } else {
            &self.jobs_cancelled_queued
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `jobs` jobs failed with their batch.
    pub(super) fn record_failed(&self, jobs: usize) {
        self.metrics.failed(jobs);
        self.jobs_failed.fetch_add(jobs as u64, Ordering::Relaxed);
    }

    /// A job was handed to the engine (before it is queued or refused).
    pub(super) fn record_submitted(&self) {
        self.metrics.submitted();
        self.jobs_submitted.fetch_add(1, Ordering::Relaxed);
    }

    /// A submission was refused.
    pub(super) fn record_rejected(&self, error: &EngineError) {
        self.jobs_rejected.fetch_add(1, Ordering::Relaxed);
        self.metrics.rejected(match error {
            EngineError::Rejected(_) => "invalid",
            EngineError::Saturated { .. } => "saturated",
            EngineError::ShuttingDown => "shutting_down",
            EngineError::Model(_) => "model",
        });
    }

    pub(super) fn snapshot(&self) -> EngineStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            batches: load(&self.batches),
            rows: load(&self.rows),
            largest_batch: load(&self.largest_batch),
            jobs_submitted: load(&self.jobs_submitted),
            jobs_rejected: load(&self.jobs_rejected),
            jobs_admitted: load(&self.admitted),
            jobs_done: load(&self.jobs_done),
            jobs_failed: load(&self.jobs_failed),
            jobs_cancelled_queued: load(&self.jobs_cancelled_queued),
            jobs_cancelled_running: load(&self.jobs_cancelled_running),
            queue_wait: Duration::from_micros(load(&self.queue_wait_us)),
            model_time: Duration::from_micros(load(&self.model_us)),
        }
    }
}

/// A snapshot of the scheduler's counters.
///
/// Every job is counted once at each stage, so once the engine is idle
/// `jobs_submitted = jobs_rejected + jobs_admitted + jobs_cancelled_queued` and
/// `jobs_admitted = jobs_done + jobs_failed + jobs_cancelled_running`; while it works, the
/// differences are the jobs queued and running ([`Self::queued_or_lost`],
/// [`Self::running_or_lost`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Batched model calls (one window step of every admitted job).
    pub batches: u64,
    /// Windows decoded, summed over batches.
    pub rows: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
    /// Jobs handed to the engine.
    pub jobs_submitted: u64,
    /// Jobs refused at submission (invalid, queue full, shutting down).
    pub jobs_rejected: u64,
    /// Jobs admitted from the queue.
    pub jobs_admitted: u64,
    /// Jobs that finished.
    pub jobs_done: u64,
    /// Jobs whose batch failed in the model.
    pub jobs_failed: u64,
    /// Jobs whose caller went away while they were queued.
    pub jobs_cancelled_queued: u64,
    /// Jobs whose caller went away while they were running.
    pub jobs_cancelled_running: u64,
    /// Time admitted jobs spent queued, summed.
    pub queue_wait: Duration,
    /// Time in model calls, summed.
    pub model_time: Duration,
}

impl EngineStats {
    /// Jobs cancelled by their caller, queued or running.
    pub fn jobs_cancelled(&self) -> u64 {
        self.jobs_cancelled_queued + self.jobs_cancelled_running
    }

    /// Submitted jobs not yet refused, admitted or cancelled: the queue, when idle 0.
    pub fn queued_or_lost(&self) -> i64 {
        self.jobs_submitted as i64
            - (self.jobs_rejected + self.jobs_admitted + self.jobs_cancelled_queued) as i64
    }

    /// Admitted jobs not yet done, failed or cancelled: the running set, when idle 0.
    pub fn running_or_lost(&self) -> i64 {
        self.jobs_admitted as i64
            - (self.jobs_done + self.jobs_failed + self.jobs_cancelled_running) as i64
    }

    /// Mean windows per batch.
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.rows as f64 / self.batches as f64
        }
    }
}
