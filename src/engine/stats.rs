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
    jobs_done: AtomicU64,
    jobs_cancelled: AtomicU64,
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
            jobs_done: zero(),
            jobs_cancelled: zero(),
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

    pub(super) fn record_cancelled(&self) {
        self.metrics.cancelled();
        self.jobs_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// `jobs` jobs failed with their batch.
    pub(super) fn record_failed(&self, jobs: usize) {
        self.metrics.failed(jobs);
    }

    /// A submission was refused.
    pub(super) fn record_rejected(&self, error: &EngineError) {
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
            jobs_done: load(&self.jobs_done),
            jobs_cancelled: load(&self.jobs_cancelled),
            jobs_admitted: load(&self.admitted),
            queue_wait: Duration::from_micros(load(&self.queue_wait_us)),
            model_time: Duration::from_micros(load(&self.model_us)),
        }
    }
}

/// A snapshot of the scheduler's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Batched model calls (one window step of every admitted job).
    pub batches: u64,
    /// Windows decoded, summed over batches.
    pub rows: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
    /// Jobs that finished.
    pub jobs_done: u64,
    /// Jobs cancelled by their caller.
    pub jobs_cancelled: u64,
    /// Jobs admitted from the queue.
    pub jobs_admitted: u64,
    /// Time admitted jobs spent queued, summed.
    pub queue_wait: Duration,
    /// Time in model calls, summed.
    pub model_time: Duration,
}

impl EngineStats {
    /// Mean windows per batch.
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.rows as f64 / self.batches as f64
        }
    }
}
