//! The batching scheduler's instruments: how full batches are, how long jobs queue, how long
//! the model runs, and what becomes of each job.
//!
//! The engine calls these at the same points where it updates
//! [`crate::engine::EngineStats`], so the two always agree.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, NoopMeterProvider};

use super::metrics::{BATCH_ROWS, MODEL_SECONDS, QUEUE_SECONDS, hearken_meter};

/// Why the engine refuses a job: invalid options, a full queue, shutdown, or a model error.
const REJECTIONS: &[&str] = &["invalid", "saturated", "shutting_down", "model"];

/// Instruments of one engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    meter: Meter,
    batch_size: Histogram<u64>,
    queue_wait: Histogram<f64>,
    model_time: Histogram<f64>,
    audio: Counter<f64>,
    submitted: Counter<u64>,
    admitted: Counter<u64>,
    completed: Counter<u64>,
    cancelled: Counter<u64>,
    failed: Counter<u64>,
    rejected: Counter<u64>,
}

impl EngineMetrics {
    /// Creates the instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let jobs = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit("{job}")
                .with_description(description)
                .build()
        };
        Self {
            meter: meter.clone(),
            batch_size: meter
                .u64_histogram("hearken.engine.batch.size")
                .with_unit("{row}")
                .with_description("Rows (30 s windows) in one batched model call.")
                .with_boundaries(BATCH_ROWS.to_vec())
                .build(),
            queue_wait: seconds_histogram(
                meter,
                "hearken.engine.queue.wait",
                "Time a job waited in the queue before joining a batch.",
                QUEUE_SECONDS,
            ),
            model_time: seconds_histogram(
                meter,
                "hearken.engine.model.duration",
                "Time of one batched model call (encoder and decode of every row).",
                MODEL_SECONDS,
            ),
            audio: meter
                .f64_counter("hearken.engine.audio.processed")
                .with_unit("s")
                .with_description("Seconds of audio decoded by the model.")
                .build(),
            submitted: jobs(
                "hearken.engine.jobs.submitted",
                "Jobs handed to the engine: rejected + admitted + cancelled{stage=queued} + queued.",
            ),
            admitted: jobs(
                "hearken.engine.jobs.admitted",
                "Jobs taken from the queue into the running batch.",
            ),
            completed: jobs(
                "hearken.engine.jobs.completed",
                "Jobs whose every window was decoded.",
            ),
            cancelled: jobs(
                "hearken.engine.jobs.cancelled",
                "Jobs dropped by their caller before finishing, by stage (queued, running).",
            ),
            failed: jobs(
                "hearken.engine.jobs.failed",
                "Jobs whose batch failed in the model.",
            ),
            rejected: jobs(
                "hearken.engine.jobs.rejected",
                "Jobs refused at submission, by reason.",
            ),
        }
        .with_zeroes()
    }

    /// Starts every job counter at zero, so dashboards and alerts see the series (and their
    /// rates) before the first event of each kind.
    fn with_zeroes(self) -> Self {
        for counter in [
            &self.submitted,
            &self.admitted,
            &self.completed,
            &self.failed,
        ] {
            counter.add(0, &[]);
        }
        for stage in ["queued", "running"] {
            self.cancelled.add(0, &[KeyValue::new("stage", stage)]);
        }
        for reason in REJECTIONS {
            self.rejected.add(0, &[KeyValue::new("reason", *reason)]);
        }
        self
    }

    /// Instruments that record nothing, for an engine nobody observes.
    pub fn noop() -> Self {
        Self::new(&hearken_meter(&NoopMeterProvider::new()))
    }

    /// One batched model call over `rows` windows, which advanced the jobs by `audio_seconds`.
    pub fn batch(&self, rows: usize, model_time: Duration, audio_seconds: f64) {
        self.batch_size.record(rows as u64, &[]);
        self.model_time.record(model_time.as_secs_f64(), &[]);
        if audio_seconds > 0.0 {
            self.audio.add(audio_seconds, &[]);
        }
    }

    /// A job left the queue for the running batch after waiting `waited`.
    pub fn admitted(&self, waited: Duration) {
        self.admitted.add(1, &[]);
        self.queue_wait.record(waited.as_secs_f64(), &[]);
    }

    /// A job finished.
    pub fn completed(&self) {
        self.completed.add(1, &[]);
    }

    /// A job was handed to the engine.
    pub fn submitted(&self) {
        self.submitted.add(1, &[]);
    }

    /// A job was cancelled by its caller, before admission or while running.
    pub fn cancelled(&self, running: bool) {
        let stage = if running { "running" } else { "queued" };
        self.cancelled.add(1, &[KeyValue::new("stage", stage)]);
    }

    /// `jobs` jobs failed with their batch.
    pub fn failed(&self, jobs: usize) {
        self.failed.add(jobs as u64, &[]);
    }

    /// A job was refused at submission; `reason` is `invalid`, `saturated`, `shutting_down` or
    /// `model`.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.add(1, &[KeyValue::new("reason", reason)]);
    }

    /// Reports the segments the hallucination guard dropped, per reason, at each collection
    /// (process-wide counts: one engine per process serves).
    pub fn observe_suppressed_segments(&self) {
        use crate::model::whisper::decode::guard::{Suppressed, suppressed_counts};
        self.meter
            .u64_observable_counter("hearken.decode.suppressed")
            .with_unit("{segment}")
            .with_description(
                "Decoded segments dropped as invented text: reason loop, stock_phrase or \
                 no_speech.",
            )
            .with_callback(|observer| {
                for (reason, count) in Suppressed::ALL.iter().zip(suppressed_counts()) {
                    observer.observe(count, &[KeyValue::new("reason", reason.label())]);
                }
            })
            .build();
    }

    /// Reports the queue depth at each collection; `depth` returns `None` once the engine is
    /// gone (callbacks cannot be unregistered, so it must not keep the engine alive).
    pub fn observe_queue_depth(&self, depth: impl Fn() -> Option<u64> + Send + Sync + 'static) {
        self.meter
            .u64_observable_gauge("hearken.engine.queue.depth")
            .with_unit("{job}")
            .with_description("Jobs waiting in the queue.")
            .with_callback(move |observer| {
                if let Some(depth) = depth() {
                    observer.observe(depth, &[]);
                }
            })
            .build();
    }
}

/// A histogram in seconds with explicit bounds (the SDK's defaults suit milliseconds).
pub(super) fn seconds_histogram(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
    bounds: &[f64],
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(bounds.to_vec())
        .build()
}
