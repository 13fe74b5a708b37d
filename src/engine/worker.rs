//! The worker thread: admits queued jobs, forms batches, runs the model, reports back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::job::{JobEvent, JobHandle, WindowUpdate};
use super::stats::Counters;
use super::{EngineConfig, EngineError};
use crate::model::whisper::WhisperModel;
use crate::model::whisper::decode::LongFormStream;
use crate::telemetry::EngineMetrics;

/// A job in the queue or in the running set.
struct Job {
    id: u64,
    stream: LongFormStream,
    events: mpsc::UnboundedSender<JobEvent>,
    enqueued: Instant,
    /// Whether it has run at least one window (it then needs no batching wait).
    started: bool,
    /// The submitter's span (its RPC): every batch the job runs in links to it.
    span: tracing::Span,
}

impl Job {
    fn is_cancelled(&self) -> bool {
        self.events.is_closed()
    }
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    closed: bool,
}

/// State shared by the engine handle, job handles and the worker.
pub(crate) struct Shared {
    pub(super) config: EngineConfig,
    pub(super) stats: Counters,
    queue: Mutex<Queue>,
    wake: Condvar,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queued", &self.queued())
            .finish()
    }
}

impl Shared {
    pub(super) fn new(config: EngineConfig, metrics: EngineMetrics) -> Self {
        Self {
            config,
            stats: Counters::new(metrics),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue itself consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn enqueue(
        self: &Arc<Self>,
        stream: LongFormStream,
    ) -> Result<JobHandle, EngineError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut queue = self.lock();
            if queue.closed {
                return Err(EngineError::ShuttingDown);
            }
            if queue.waiting.len() >= self.config.max_queued {
                return Err(EngineError::Saturated {
                    queued: queue.waiting.len(),
                });
            }
            queue.waiting.push_back(Job {
                id,
                stream,
                events: tx,
                enqueued: Instant::now(),
                started: false,
                span: tracing::Span::current(),
            });
        }
        self.wake.notify_one();
        Ok(JobHandle {
            id,
            events: rx,
            shared: Arc::clone(self),
        })
    }

    /// Removes a queued job at once; a running one notices its closed channel next step.
    pub(super) fn cancel(&self, id: u64) {
        let mut queue = self.lock();
        let before = queue.waiting.len();
        queue.waiting.retain(|j| j.id != id);
        if queue.waiting.len() < before {
            self.stats.record_cancelled();
        }
    }

    pub(super) fn queued(&self) -> usize {
        self.lock().waiting.len()
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

/// Owns the model for the lifetime of the engine thread.
pub(super) struct Worker {
    model: Arc<WhisperModel>,
    shared: Arc<Shared>,
    running: Vec<Job>,
}

impl Worker {
    pub(super) fn new(model: Arc<WhisperModel>, shared: Arc<Shared>) -> Self {
        Self {
            model,
            shared,
            running: Vec::new(),
        }
    }

    /// Serves until the engine is closed and all admitted and queued work is done.
    pub(super) fn run(mut self) {
        while self.admit() {
            self.drop_cancelled();
            if !self.running.is_empty() {
                self.step();
            }
        }
    }

    /// Fills the running set from the queue; returns false when there is nothing left to do
    /// and the engine is closed.
    fn admit(&mut self) -> bool {
        let max_batch = self.shared.config.max_batch.max(1);
        let shared = Arc::clone(&self.shared);
        let mut queue = shared.lock();
        loop {
            self.take_from(&mut queue, max_batch);
            if self.running.len() >= max_batch || queue.closed {
                return !self.running.is_empty() || !queue.waiting.is_empty();
            }
            let now = Instant::now();
            let deadline = match self.batching_deadline() {
                Some(d) if d > now => d,
                Some(_) => return true,
                None if !self.running.is_empty() => return true,
                None => now + Duration::from_secs(3600),
            };
            queue = shared
                .wake
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn take_from(&mut self, queue: &mut Queue, max_batch: usize) {
        while self.running.len() < max_batch {
            let Some(job) = queue.waiting.pop_front() else {
                break;
            };
            self.shared.stats.record_admitted(job.enqueued.elapsed());
            self.running.push(job);
        }
    }

    /// When a partial batch must run: `max_wait` after the oldest job not yet started.
    /// `None` when every running job has started already (they never wait again).
    fn batching_deadline(&self) -> Option<Instant> {
        self.running
            .iter()
            .filter(|j| !j.started)
            .map(|j| j.enqueued + self.shared.config.max_wait)
            .min()
    }

    fn drop_cancelled(&mut self) {
        let before = self.running.len();
        self.running.retain(|j| !j.is_cancelled());
        for _ in self.running.len()..before {
            self.shared.stats.record_cancelled();
        }
    }

    /// One window of every running job, in one batched model call.
    fn step(&mut self) {
        let span = self.batch_span();
        let _entered = span.enter();
        let decoded_before = self.decoded_seconds();
        let started = Instant::now();
        let transcriber = self.model.transcriber(self.running.len());
        let policy = &self.shared.config.policy;
        let result = {
            let mut rows: Vec<&mut LongFormStream> =
                self.running.iter_mut().map(|j| &mut j.stream).collect();
            transcriber.step(&mut rows, policy)
        };
        let elapsed = started.elapsed();
        let audio_seconds = match result {
            Ok(_) => self.decoded_seconds() - decoded_before,
            Err(_) => 0.0,
        };
        self.shared
            .stats
            .record_batch(self.running.len(), elapsed, audio_seconds);
        span.record("batch.model_time_s", elapsed.as_secs_f64());
        span.record("batch.audio_s", audio_seconds);
        tracing::debug!(
            batch = self.running.len(),
            model_ms = elapsed.as_secs_f64() * 1e3,
            queued = self.shared.queued(),
            "engine batch"
        );
        match result {
            Ok(first_new) => self.report(&first_new),
            Err(e) => {
                tracing::error!(error = %e, batch = self.running.len(), "engine batch failed");
                self.shared.stats.record_failed(self.running.len());
                for job in self.running.drain(..) {
                    let _ = job
                        .events
                        .send(JobEvent::Failed(EngineError::Model(e.to_string())));
                }
            }
        }
    }

    /// The span of one batch: a root of its own (it serves many callers) that links to the
    /// span of every job in it, so a trace of one RPC leads to the batches that served it.
    fn batch_span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "engine.batch",
            // i64: the OpenTelemetry bridge records unsigned integers as strings.
            batch.size = self.running.len() as i64,
            batch.model_time_s = tracing::field::Empty,
            batch.audio_s = tracing::field::Empty,
        );
        for job in &self.running {
            span.follows_from(&job.span);
        }
        span
    }

    /// Seconds of audio decoded so far, summed over the running jobs.
    fn decoded_seconds(&self) -> f64 {
        self.running.iter().map(|j| j.stream.done_seconds()).sum()
    }

    /// Sends each job its new segments; finished jobs get their transcript and leave.
    fn report(&mut self, first_new: &[usize]) {
        let mut still_running = Vec::with_capacity(self.running.len());
        for (mut job, &first) in self.running.drain(..).zip(first_new) {
            job.started = true;
            let update = WindowUpdate {
                segments: job.stream.segments()[first..].to_vec(),
                done_seconds: job.stream.done_seconds(),
                total_seconds: job.stream.total_seconds(),
                language: job.stream.language().unwrap_or("en").to_string(),
            };
            let _ = job.events.send(JobEvent::Window(update));
            if job.stream.is_done() {
                self.shared.stats.record_done();
                let _ = job
                    .events
                    .send(JobEvent::Done(job.stream.into_transcript()));
            } else {
                still_running.push(job);
            }
        }
        self.running = still_running;
    }
}
