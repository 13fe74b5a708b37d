//! The worker thread: carries out the [`BatchPolicy`]'s decisions on a [`Backend`] (waits,
//! admissions, model steps) and reports each job's windows back to its handle.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::backend::{Backend, JobStream};
use super::batcher::{BatchPolicy, Entry, Next, Queue, Refusal};
use super::job::{JobEvent, JobHandle, WindowUpdate};
use super::stats::Counters;
use super::{EngineConfig, EngineError};
use crate::telemetry::EngineMetrics;

/// A job's stream and its way back to the caller.
pub(super) struct Job<S> {
    stream: S,
    events: mpsc::UnboundedSender<JobEvent>,
    /// The submitter's span (its RPC): every batch the job runs in links to it.
    span: tracing::Span,
}

impl<S> Job<S> {
    fn is_cancelled(&self) -> bool {
        self.events.is_closed()
    }
}

/// While live and file rows both run, live-only steps get this many times the model time of
/// the steps with file rows: files keep a quarter of the model, and a live stream's requests
/// rarely meet a file's window (which costs seconds on a CPU) on their way.
const LIVE_SHARE: u32 = 3;

/// State shared by the engine handle, job handles and the worker.
pub(super) struct Shared<S> {
    pub(super) config: EngineConfig,
    pub(super) stats: Counters,
    queue: Mutex<Queue<Job<S>>>,
    wake: Condvar,
    next_id: AtomicU64,
    prefer_live: AtomicBool,
    /// Workers in [`Worker::admit`] (not stepping), changed under the queue's lock.
    idle_workers: AtomicUsize,
}

/// What a [`JobHandle`] needs of the engine: taking its job out of the queue.
pub(super) trait Cancel: Send + Sync {
    /// Removes a queued job at once; a running one notices its closed channel next step.
    fn cancel(&self, id: u64);
}

impl<S: Send + 'static> Cancel for Shared<S> {
    fn cancel(&self, id: u64) {
        if let Some(started) = self.lock().remove(id) {
            self.stats.record_cancelled(started);
        }
    }
}

impl<S: Send + 'static> Shared<S> {
    pub(super) fn new(config: EngineConfig, metrics: EngineMetrics) -> Self {
        Self {
            queue: Mutex::new(Queue::new(config.max_queued)),
            config,
            stats: Counters::new(metrics),
            wake: Condvar::new(),
            next_id: AtomicU64::new(1),
            prefer_live: AtomicBool::new(false),
            idle_workers: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<Job<S>>> {
        // A panic while holding the lock leaves the queue itself consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_batch: self.config.max_batch,
            max_wait: self.config.max_wait,
            live_priority: self.config.live_priority,
            idle_workers: self.idle_workers.load(Ordering::Relaxed),
        }
    }

    pub(super) fn enqueue(
        self: &Arc<Self>,
        stream: S,
        live: bool,
    ) -> Result<JobHandle, EngineError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            stream,
            events: tx,
            span: tracing::Span::current(),
        };
        self.lock()
            .push(id, job, live, Instant::now())
            .map_err(|refusal| match refusal {
                Refusal::Closed => EngineError::ShuttingDown,
                Refusal::Full { queued } => EngineError::Saturated { queued },
            })?;
        self.wake.notify_one();
        Ok(JobHandle::new(id, rx, Arc::clone(self) as Arc<dyn Cancel>))
    }

    pub(super) fn queued(&self) -> usize {
        self.lock().len()
    }

    pub(super) fn close(&self) {
        self.lock().close();
        self.wake.notify_all();
    }

    pub(super) fn prefer_live(&self) {
        self.prefer_live.store(true, Ordering::Relaxed);
    }
}

/// Owns the backend for the lifetime of the engine thread.
pub(super) struct Worker<B: Backend> {
    backend: Arc<B>,
    shared: Arc<Shared<B::Stream>>,
    running: Vec<Entry<Job<B::Stream>>>,
    /// Model time of steps with file rows minus that of live-only steps, while both kinds
    /// run (see [`BatchPolicy::files_sit_out`]).
    files_ahead: Duration,
}

impl<B: Backend> Worker<B> {
    pub(super) fn new(backend: Arc<B>, shared: Arc<Shared<B::Stream>>) -> Self {
        Self {
            backend,
            shared,
            running: Vec::new(),
            files_ahead: Duration::ZERO,
        }
    }

    /// Serves until the engine is closed and all admitted and queued work is done.
    pub(super) fn run(mut self) {
        while self.admit() {
            self.drop_cancelled();
            if !self.running.is_empty() {
                let benched = self.bench_files();
                let files_run = self.running.iter().any(|e| !e.live);
                let live_run = self.running.iter().any(|e| e.live);
                let started = Instant::now();
                self.step();
                self.account(files_run, live_run, !benched.is_empty(), started.elapsed());
                self.running.extend(benched);
            }
        }
    }

    /// Fills the running set as the policy says, sleeping while it says wait; false when the
    /// engine is closed and nothing is left to do.
    fn admit(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let mut queue = shared.lock();
        shared.idle_workers.fetch_add(1, Ordering::Relaxed);
        loop {
            let now = Instant::now();
            let (next, admitted) = shared.policy().admit(&mut queue, &mut self.running, now);
            if queue.len() > 0 && shared.idle_workers.load(Ordering::Relaxed) > 1 {
                // The rest of the waiting jobs are another idle worker's share.
                shared.wake.notify_all();
            }
            let from = self.running.len() - admitted;
            // A file readmitted after stepping back for live work was counted the first time.
            for entry in self.running[from..].iter_mut().filter(|e| !e.admitted) {
                entry.admitted = true;
                self.shared
                    .stats
                    .record_admitted(now.saturating_duration_since(entry.enqueued));
            }
            let wait = match next {
                Next::Step => {
                    shared.idle_workers.fetch_sub(1, Ordering::Relaxed);
                    return true;
                }
                Next::Exit => {
                    shared.idle_workers.fetch_sub(1, Ordering::Relaxed);
                    return false;
                }
                Next::WaitUntil(deadline) => deadline - now,
                Next::WaitForWork => Duration::from_secs(3600),
            };
            queue = shared
                .wake
                .wait_timeout(queue, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes the whole-file rows out of the running set when this step is for live rows only
    /// (see [`BatchPolicy::files_sit_out`]); the caller puts them back after the step.
    fn bench_files(&mut self) -> Vec<Entry<Job<B::Stream>>> {
        let prefer_live = self.shared.prefer_live.load(Ordering::Relaxed);
        let sit_out =
            self.shared
                .policy()
                .files_sit_out(&self.running, self.files_ahead, prefer_live);
        if !sit_out {
            return Vec::new();
        }
        let (live, files) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|e| e.live);
        self.running = live;
        files
    }

    /// Keeps the live/file time share: a step with live and file rows puts files ahead by
    /// [`LIVE_SHARE`] times its time, and a files-only step leaves them ahead by that much for
    /// that step alone (live work arriving then runs first, without a credit built up while
    /// it was absent); a live-only step while files wait brings them back.
    fn account(&mut self, files_ran: bool, live_ran: bool, files_sat_out: bool, elapsed: Duration) {
        let owed = elapsed * LIVE_SHARE;
        self.files_ahead = match (files_ran, live_ran) {
            (true, true) => self.files_ahead + owed,
            (true, false) => owed,
            (false, _) if files_sat_out => self.files_ahead.saturating_sub(elapsed),
            (false, _) => Duration::ZERO,
        };
    }

    fn drop_cancelled(&mut self) {
        let before = self.running.len();
        self.running.retain(|e| !e.job.is_cancelled());
        for _ in self.running.len()..before {
            self.shared.stats.record_cancelled(true);
        }
    }

    /// One window of every running job, in one batched model call.
    fn step(&mut self) {
        let span = self.batch_span();
        let _entered = span.enter();
        let decoded_before = self.decoded_seconds();
        let first_new: Vec<usize> = self
            .running
            .iter()
            .map(|e| e.job.stream.segments().len())
            .collect();
        let started = Instant::now();
        let result = {
            let mut batch: Vec<&mut B::Stream> =
                self.running.iter_mut().map(|e| &mut e.job.stream).collect();
            self.backend.step(&mut batch, &self.shared.config.policy)
        };
        let elapsed = started.elapsed();
        let audio_seconds = match result {
            Ok(()) => self.decoded_seconds() - decoded_before,
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
            Ok(()) => self.report(&first_new),
            Err(e) => self.fail_batch(&*e),
        }
    }

    /// Every job of a failed batch fails with the model's message (which the front ends log
    /// and do not send to clients).
    fn fail_batch(&mut self, error: &(dyn std::error::Error + Send + Sync)) {
        tracing::error!(error = %error, batch = self.running.len(), "engine batch failed");
        self.shared.stats.record_failed(self.running.len());
        for entry in self.running.drain(..) {
            let _ = entry
                .job
                .events
                .send(JobEvent::Failed(EngineError::Model(error.to_string())));
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
        for entry in &self.running {
            span.follows_from(&entry.job.span);
        }
        span
    }

    /// Seconds of audio decoded so far, summed over the running jobs.
    fn decoded_seconds(&self) -> f64 {
        self.running
            .iter()
            .map(|e| e.job.stream.done_seconds())
            .sum()
    }

    /// Sends each job its new segments; finished jobs get their transcript and leave.
    fn report(&mut self, first_new: &[usize]) {
        let mut still_running = Vec::with_capacity(self.running.len());
        for (mut entry, &first) in self.running.drain(..).zip(first_new) {
            entry.started = true;
            let job = &entry.job;
            let update = WindowUpdate {
                segments: job.stream.segments()[first..].to_vec(),
                done_seconds: job.stream.done_seconds(),
                total_seconds: job.stream.total_seconds(),
                language: job.stream.language().unwrap_or("en").to_string(),
            };
            let _ = job.events.send(JobEvent::Window(update));
            if job.stream.is_done() {
                self.shared.stats.record_done();
                let Job { stream, events, .. } = entry.job;
                let _ = events.send(JobEvent::Done(stream.into_transcript()));
            } else {
                still_running.push(entry);
            }
        }
        self.running = still_running;
    }
}
