//! The batching scheduler: one worker thread per loaded model owns its [`Backend`] and runs
//! every transcription job of every session through shared batched model calls.
//!
//! Sessions (gRPC streams, HTTP requests) [`Engine::submit`] jobs: some audio to transcribe
//! with its own language, task and prompt. The worker admits queued jobs oldest first, waits
//! at most `max_wait` after the oldest one for a fuller batch, then steps every admitted job
//! by one 30 s window in one encoder call and one decode loop. Long jobs stay admitted window
//! after window while short ones join and leave between steps (continuous batching at window
//! granularity). Dropping a [`JobHandle`] cancels its job: a queued job leaves the queue at
//! once, a running one after the current step.
//!
//! The rules of that decision are a pure type ([`batcher`]); the worker carries them out on a
//! [`Backend`] ([`backend`]: Whisper on candle in production, a scripted model in tests), so
//! nothing here depends on model weights.

pub mod backend;
mod batcher;
mod chunked;
mod job;
mod stats;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use backend::{Backend, JobStream, ModelInfo, ScriptedBackend, WhisperBackend};
pub use job::{JobEvent, JobHandle, JobOptions, WindowUpdate, unsplice};
pub use stats::EngineStats;

use crate::model::whisper::decode::{DecodeError, DecodeOptions, EncoderFrames};
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
    /// Decoding policy shared by all jobs (temperatures, thresholds, timestamp rules; a job's own
    /// options override its language, task, prompt, temperatures and timestamps).
    pub policy: DecodeOptions,
    /// Run live streams' requests ahead of whole files (see [`batcher`]); off, every job is
    /// first come, first served (for comparison in `hearken bench stream`).
    pub live_priority: bool,
    /// Workers: threads that each admit and run their own batches on the one shared model (1).
    /// On a CPU one call's products gain little from a second core, so two single-threaded
    /// workers serve more streams than one using both cores.
    pub workers: usize,
    /// Threads for each worker's model math; `None`: the process-wide pool (every core).
    pub threads_per_worker: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 8,
            max_wait: Duration::from_millis(20),
            max_queued: 256,
            policy: DecodeOptions::default(),
            live_priority: true,
            workers: 1,
            threads_per_worker: None,
        }
    }
}

/// A multilingual model's files keep padded windows: on the trimmed encoding of a short
/// window Whisper hears English in German speech (see `streaming::jobs`), and trimming was
/// measured on tiny.en only.
fn padded_files_if_multilingual(mut config: EngineConfig, info: &ModelInfo) -> EngineConfig {
    if info.multilingual && config.policy.encoder_frames == EncoderFrames::AudioOnly {
        config.policy.encoder_frames = EncoderFrames::FullFirstWindow;
    }
    config
}

/// A model backend and the worker thread that serves it.
pub struct Engine {
    core: Arc<dyn Core>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", self.config())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the worker thread for `backend`, recording into no metrics beyond
    /// [`Self::stats`].
    pub fn start(backend: impl Backend, config: EngineConfig) -> Self {
        Self::start_with_metrics(backend, config, EngineMetrics::noop())
    }

    /// Starts the worker thread for `backend`, recording every scheduling event into
    /// `metrics` as well as [`Self::stats`].
    pub fn start_with_metrics<B: Backend>(
        backend: B,
        config: EngineConfig,
        metrics: EngineMetrics,
    ) -> Self {
        let config = padded_files_if_multilingual(config, backend.info());
        let backend = Arc::new(backend);
        let shared = Arc::new(Shared::<B::Stream>::new(config, metrics));
        let observed = Arc::downgrade(&shared);
        shared
            .stats
            .metrics()
            .observe_queue_depth(move || Some(observed.upgrade()?.queued() as u64));
        shared.stats.metrics().observe_suppressed_segments();
        let workers = (0..shared.config.workers.max(1))
            .map(|i| {
                let worker = Worker::new(Arc::clone(&backend), Arc::clone(&shared));
                let pool = shared.config.threads_per_worker.map(worker_pool);
                std::thread::Builder::new()
                    .name(format!("hearken-engine-{i}"))
                    .spawn(move || match pool {
                        Some(pool) => pool.install(|| worker.run()),
                        None => worker.run(),
                    })
                    .expect("spawning an engine thread")
            })
            .collect();
        Self {
            core: Arc::new(Scheduler { backend, shared }),
            workers,
        }
    }

    /// What the served model can do.
    pub fn model(&self) -> &ModelInfo {
        self.core.info()
    }

    /// Queues a job for `samples` (16 kHz mono). Fails at once when the options are invalid
    /// for this model or the queue is full.
    pub fn submit(
        &self,
        samples: Arc<[f32]>,
        options: &JobOptions,
    ) -> Result<JobHandle, EngineError> {
        submit_to(&*self.core, samples, options)
    }

    /// Queues a long recording (16 kHz mono) as the chunks of `plan`, transcribed side by side
    /// in shared batches, behind one handle that reports in the recording's order and times
    /// (see [`chunked`]). `plan` must hold a chunk. Fails at once when the options are invalid
    /// for this model or the queue is full.
    pub fn submit_chunked(
        &self,
        samples: Arc<[f32]>,
        plan: crate::audio::ChunkPlan,
        options: &JobOptions,
    ) -> Result<JobHandle, EngineError> {
        // Twice what one step takes, so the next batch is queued while this one runs.
        let in_flight = 2 * self.config().max_batch * self.config().workers.max(1);
        let job =
            chunked::ChunkedJob::start(Arc::clone(&self.core), samples, plan, options, in_flight)?;
        Ok(JobHandle::chunked(job))
    }

    /// Checks `options` against the model (language, task) without queuing anything.
    pub fn validate(&self, options: &JobOptions) -> Result<(), EngineError> {
        let options = options.decode_options(&self.config().policy);
        self.core.validate(&options).map_err(EngineError::Rejected)
    }

    /// Jobs waiting for the worker (not yet admitted to a batch).
    pub fn queued(&self) -> usize {
        self.core.queued()
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        self.core.stats().snapshot()
    }

    /// Scheduler limits in force.
    pub fn config(&self) -> &EngineConfig {
        self.core.config()
    }

    /// Refuses new jobs from now on; jobs already queued or running still finish.
    pub fn close(&self) {
        self.core.close();
    }

    /// From now on, whole-file jobs sit out every step while live requests run: shutdown
    /// calls this so that live streams' finals make the grace period even behind long files.
    pub fn prefer_live(&self) {
        self.core.prefer_live();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.core.close();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Queues one job on `core`, counting it (or its refusal) in the engine's statistics.
fn submit_to(
    core: &dyn Core,
    samples: Arc<[f32]>,
    options: &JobOptions,
) -> Result<JobHandle, EngineError> {
    core.stats().record_submitted();
    let decode = options.decode_options(&core.config().policy);
    let submitted = core.submit(samples, &decode, options.live);
    if let Err(e) = &submitted {
        core.stats().record_rejected(e);
    }
    submitted
}

/// A worker's own thread pool for its model math: kernels run on the pool they are called
/// from, so workers do not queue behind each other's products.
fn worker_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("hearken-math-{i}"))
        .build()
        .expect("building a model worker's thread pool")
}

/// The engine's view of a scheduler over some backend: the backend's stream type stays
/// inside the worker, and the rest of the server holds a plain [`Engine`].
trait Core: Send + Sync {
    fn info(&self) -> &ModelInfo;
    fn validate(&self, options: &DecodeOptions) -> Result<(), DecodeError>;
    fn submit(
        &self,
        samples: Arc<[f32]>,
        options: &DecodeOptions,
        live: bool,
    ) -> Result<JobHandle, EngineError>;
    fn queued(&self) -> usize;
    fn stats(&self) -> &stats::Counters;
    fn config(&self) -> &EngineConfig;
    fn close(&self);
    fn prefer_live(&self);
}

struct Scheduler<B: Backend> {
    backend: Arc<B>,
    shared: Arc<Shared<B::Stream>>,
}

impl<B: Backend> Core for Scheduler<B> {
    fn info(&self) -> &ModelInfo {
        self.backend.info()
    }

    fn validate(&self, options: &DecodeOptions) -> Result<(), DecodeError> {
        self.backend.start(Arc::from(Vec::new()), options).map(drop)
    }

    fn submit(
        &self,
        samples: Arc<[f32]>,
        options: &DecodeOptions,
        live: bool,
    ) -> Result<JobHandle, EngineError> {
        let stream = self
            .backend
            .start(samples, options)
            .map_err(EngineError::Rejected)?;
        self.shared.enqueue(stream, live)
    }

    fn queued(&self) -> usize {
        self.shared.queued()
    }

    fn stats(&self) -> &stats::Counters {
        &self.shared.stats
    }

    fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    fn close(&self) {
        self.shared.close();
    }

    fn prefer_live(&self) {
        self.shared.prefer_live();
    }
}

#[cfg(test)]
mod tests;
