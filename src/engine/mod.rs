//! The batching scheduler: one worker thread per loaded model owns the network and runs
//! every transcription job of every session through shared batched model calls.
//!
//! Sessions (gRPC streams, HTTP requests) [`Engine::submit`] jobs: some audio to transcribe
//! with its own language, task and prompt. The worker admits queued jobs oldest first, waits
//! at most `max_wait` after the oldest one for a fuller batch, then steps every admitted job
//! by one 30 s window in one encoder call and one decode loop. Long jobs stay admitted window
//! after window while short ones join and leave between steps (continuous batching at window
//! granularity). Dropping a [`JobHandle`] cancels its job: a queued job leaves the queue at
//! once, a running one after the current step.

mod job;
mod session_jobs;
mod stats;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use job::{JobEvent, JobHandle, JobOptions, WindowUpdate};
pub use session_jobs::{hypothesis, streaming_job_options};
pub use stats::EngineStats;

use crate::model::whisper::WhisperModel;
use crate::model::whisper::decode::{DecodeError, DecodeOptions, LongFormStream};
use crate::telemetry::EngineMetrics;
use worker::{Shared, Worker};

/// Errors of the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The job asks for something the model cannot do (unknown language, translate on an
    /// English-only model).
    #[error(transparent)]
    Rejected(DecodeError),
    /// The queue is full: the server is saturated.
    #[error("the transcription queue is full ({queued} jobs waiting); retry shortly")]
    Saturated {
        /// Jobs waiting.
        queued: usize,
    },
    /// The model failed while running this job's batch.
    #[error("transcription failed: {0}")]
    Model(String),
    /// The engine is shutting down and takes no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl EngineError {
    /// How long a client should wait before retrying, when retrying can help (a full queue
    /// drains in about a second; a restart takes longer). Both front ends send this as their
    /// protocol's retry hint.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Saturated { .. } => Some(Duration::from_secs(1)),
            Self::ShuttingDown => Some(Duration::from_secs(5)),
            Self::Rejected(_) | Self::Model(_) => None,
        }
    }
}

/// Scheduler limits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most windows in one model call.
    pub max_batch: usize,
    /// Longest wait after the oldest queued job before running a partial batch.
    pub max_wait: Duration,
    /// Most jobs waiting in the queue; more are refused with [`EngineError::Saturated`].
    pub max_queued: usize,
    /// Decoding policy shared by all jobs (temperatures, thresholds, timestamps rules).
    pub policy: DecodeOptions,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 8,
            max_wait: Duration::from_millis(20),
            max_queued: 256,
            policy: DecodeOptions::default(),
        }
    }
}

/// A loaded model and the worker thread that serves it.
pub struct Engine {
    shared: Arc<Shared>,
    model: Arc<WhisperModel>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the worker thread for `model`, recording into no metrics beyond [`Self::stats`].
    pub fn start(model: WhisperModel, config: EngineConfig) -> Self {
        Self::start_with_metrics(model, config, EngineMetrics::noop())
    }

    /// Starts the worker thread for `model`, recording every scheduling event into `metrics`
    /// as well as [`Self::stats`].
    pub fn start_with_metrics(
        model: WhisperModel,
        config: EngineConfig,
        metrics: EngineMetrics,
    ) -> Self {
        let model = Arc::new(model);
        let shared = Arc::new(Shared::new(config, metrics));
        let observed = Arc::downgrade(&shared);
        shared
            .stats
            .metrics()
            .observe_queue_depth(move || Some(observed.upgrade()?.queued() as u64));
        let worker = Worker::new(Arc::clone(&model), Arc::clone(&shared));
        let handle = std::thread::Builder::new()
            .name("hearken-engine".into())
            .spawn(move || worker.run())
            .expect("spawning the engine thread");
        Self {
            shared,
            model,
            worker: Some(handle),
        }
    }

    /// The model this engine serves.
    pub fn model(&self) -> &WhisperModel {
        &self.model
    }

    /// Queues a job for `samples` (16 kHz mono). Fails at once when the options are invalid
    /// for this model or the queue is full.
    pub fn submit(
        &self,
        samples: Arc<[f32]>,
        options: &JobOptions,
    ) -> Result<JobHandle, EngineError> {
        let submitted = self
            .start_stream(samples, options)
            .and_then(|stream| self.shared.enqueue(stream));
        if let Err(e) = &submitted {
            self.shared.stats.record_rejected(e);
        }
        submitted
    }

    /// Checks `options` against the model (language, task) without queuing anything.
    pub fn validate(&self, options: &JobOptions) -> Result<(), EngineError> {
        self.start_stream(Arc::from(Vec::new()), options).map(drop)
    }

    fn start_stream(
        &self,
        samples: Arc<[f32]>,
        options: &JobOptions,
    ) -> Result<LongFormStream, EngineError> {
        let decode_options = options.decode_options(&self.shared.config.policy);
        self.model
            .transcriber(1)
            .start_stream(samples, &decode_options)
            .map_err(EngineError::Rejected)
    }

    /// Jobs waiting for the worker (not yet admitted to a batch).
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        self.shared.stats.snapshot()
    }

    /// Scheduler limits in force.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Refuses new jobs from now on; jobs already queued or running still finish.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.close();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
