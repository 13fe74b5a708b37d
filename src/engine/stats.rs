//! Scheduler counters: how full batches are, how long jobs wait, how long the model runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Running totals, updated by the worker after every batch.
#[derive(Debug, Default)]
pub(super) struct Counters {
    batches: AtomicU64,
    rows: AtomicU64,
    largest_batch: AtomicU64,
    jobs_done: AtomicU64,
    jobs_cancelled: AtomicU64,
    queue_wait_us: AtomicU64,
    admitted: AtomicU64,
    model_us: AtomicU64,
}

impl Counters {
    pub(super) fn record_batch(&self, rows: usize, model_time: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.largest_batch.fetch_max(rows as u64, Ordering::Relaxed);
        self.model_us
            .fetch_add(model_time.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn record_admitted(&self, waited: Duration) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
        self.queue_wait_us
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn record_done(&self) {
        self.jobs_done.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_cancelled(&self) {
        self.jobs_cancelled.fetch_add(1, Ordering::Relaxed);
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
